"""The site's devices an RM can be: each battery (power 51-60) and V2G charger (power 71-80), with the SoC sensor
its fill level is kept on (power sensor id + 100: 151-160, 171-180), and the series the CEM writes.

The CEM writes what the devices report under its own data source, beside the scheduler's plan on the same power
sensors: actual power (from PowerMeasurement, else the power the reported operation mode and factor give) on the
device's power sensor, and the fill level (kWh) on its SoC sensor, per 15-minute slot, the latest report winning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from cariflex_pipeline.derived.sensors import soc_sensor
from cariflex_pipeline.site_model import Portfolio, Sensor, Site
from cariflex_pipeline.store import TimeSeriesStore

S2_SOURCE = "cariflex-s2-cem"
SOC_SENSOR_OFFSET = 100
SLOT = timedelta(minutes=15)


@dataclass(frozen=True)
class S2Device:
    name: str
    kind: str  # battery | v2g
    power_sensor_id: int
    soc_sensor_id: int
    site_id: str  # its portfolio site: the RM's rows and messages carry it


def site_devices(site: Site, site_id: str) -> dict[str, S2Device]:
    """The RM names the CEM controls at one site (`site_id`'s `site`): each battery and V2G charger, by name."""
    devices = [S2Device(b.name, "battery", b.sensor_id, b.sensor_id + SOC_SENSOR_OFFSET, site_id)
               for b in site.batteries]
    devices += [S2Device(v.name, "v2g", v.sensor_id, v.sensor_id + SOC_SENSOR_OFFSET, site_id)
                for v in site.v2g_chargers]
    return {device.name: device for device in devices}


def portfolio_devices(portfolio: Portfolio) -> dict[str, S2Device]:
    """The devices of every site (names are unique across a portfolio): what the one CEM process serves."""
    return {name: device for site_id in portfolio.site_ids
            for name, device in site_devices(portfolio.site(site_id), site_id).items()}


def soc_sensors(devices: Iterable[S2Device]) -> list[Sensor]:
    """The fill-level sensors of the seed's SoC panels, registered by the CEM when it starts."""
    return [soc_sensor(device.name, device.soc_sensor_id, device.kind, SLOT) for device in devices]


def _slot(moment: datetime) -> datetime:
    seconds = SLOT.total_seconds()
    return datetime.fromtimestamp(math.floor(moment.timestamp() / seconds) * seconds, tz=moment.tzinfo)


def write_reported(store: TimeSeriesStore, sensor_id: int, value: float, now: datetime) -> int:
    """One reported value on the slot that holds `now`."""
    frame = pd.DataFrame({"sensor_id": [sensor_id], "event_start": [_slot(now)], "value": [value],
                          "belief_time": [now]})
    return store.write_beliefs(frame, source=S2_SOURCE, source_type="s2")
