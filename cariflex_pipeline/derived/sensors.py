"""Where the derived series live in the store: sensors of their own, beside the site's (41-87).

Site-wide series take 101-105 (the site's `derived_sensors_from` and the four after it: a fleet's sites each have
their own range); the state of charge of each battery and each V2G charger's EV takes its power
sensor's id + 100 (battery 51 -> 151, V2G 71 -> 171), so the seed's numbering still reads across.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from cariflex_pipeline.site_model import Sensor, Site

# The ids of a site whose range starts at 101 (every one-site deployment, and what the Grafana panels chart).
TOTAL_FLEXIBILITY = 101
GRID_IMPACT = 102
FLEXIBILITY_IMPACT = 103
ACTIVE_SESSIONS = 104
EV_FLEXIBILITY_POTENTIAL = 105
SOC_OFFSET = 100
# The data source of every derived value in the store.
DERIVED_SOURCE = "cariflex-derived"


@dataclass(frozen=True)
class DerivedSensors:
    """The derived sensors of one site: the site-wide ones, and one SoC sensor per battery and V2G charger."""

    sensors: list[Sensor]
    battery_soc: dict[str, int]  # battery name -> SoC sensor id
    v2g_soc: dict[str, int]  # V2G charger name -> SoC sensor id
    first: int = TOTAL_FLEXIBILITY  # the site's `derived_sensors_from`

    # The site-wide series, in the order of the module constants (101-105 for a range starting at 101).
    @property
    def total_flexibility(self) -> int:
        return self.first

    @property
    def grid_impact(self) -> int:
        return self.first + GRID_IMPACT - TOTAL_FLEXIBILITY

    @property
    def flexibility_impact(self) -> int:
        return self.first + FLEXIBILITY_IMPACT - TOTAL_FLEXIBILITY

    @property
    def active_sessions(self) -> int:
        return self.first + ACTIVE_SESSIONS - TOTAL_FLEXIBILITY

    @property
    def ev_flexibility_potential(self) -> int:
        return self.first + EV_FLEXIBILITY_POTENTIAL - TOTAL_FLEXIBILITY


def soc_sensor(device: str, sensor_id: int, kind: Literal["battery", "v2g"], resolution: timedelta) -> Sensor:
    """The one definition of a battery's or V2G EV's SoC sensor, whoever registers it first: the derived series
    (source DERIVED_SOURCE) and the S2 CEM (the fill level its RM reports, and the one its plan expects) write
    beliefs of their own sources on the same sensor."""
    name, what = (f"{device}_soc", f"{device} stored energy") if kind == "battery" else (
        f"{device}_ev_soc", f"energy in the EV at {device}")
    return Sensor(id=sensor_id, name=name, unit="kWh", resolution=resolution,
                  description=f"{what} (kWh): derived from plan and meters ({DERIVED_SOURCE}, end of slot) or "
                              "reported over S2")


def derived_sensors(site: Site) -> DerivedSensors:
    """The derived sensors of `site`; ValueError naming both when one would take a site sensor's id."""
    resolution = site.resolution
    ids = DerivedSensors([], {}, {}, first=site.derived_sensors_from)
    sensors = [
        Sensor(id=ids.total_flexibility, name="total_flexibility", unit="kWh", resolution=resolution,
               description="derived: energy the EVs, batteries and V2G EVs could still take up"),
        Sensor(id=ids.grid_impact, name="grid_impact", unit="kW", resolution=resolution,
               description="derived: site exchange with the grid, import > 0 (devices net of PV)"),
        Sensor(id=ids.flexibility_impact, name="flexibility_impact", unit="kW", resolution=resolution,
               description="derived: grid impact minus the same day with uncontrolled charging"),
        Sensor(id=ids.active_sessions, name="active_charging_sessions", unit="dimensionless", resolution=resolution,
               description="derived: EVs connected at the slot start"),
        Sensor(id=ids.ev_flexibility_potential, name="ev_flexibility_potential", unit="kWh", resolution=resolution,
               description="derived: energy the connected EVs could take beyond their needs before departure"),
    ]
    battery_soc = {battery.name: battery.sensor_id + SOC_OFFSET for battery in site.batteries}
    v2g_soc = {charger.name: charger.sensor_id + SOC_OFFSET for charger in site.v2g_chargers}
    sensors += [soc_sensor(name, sensor_id, "battery", resolution) for name, sensor_id in battery_soc.items()]
    sensors += [soc_sensor(name, sensor_id, "v2g", resolution) for name, sensor_id in v2g_soc.items()]
    taken = site.sensor_by_id
    for sensor in sensors:
        if sensor.id in taken:
            raise ValueError(f"site {site.name!r}: derived sensor {sensor.name!r} needs id {sensor.id}, "
                             f"which the site's sensor {taken[sensor.id].name!r} already has")
    return DerivedSensors(sensors, battery_soc, v2g_soc, first=site.derived_sensors_from)
