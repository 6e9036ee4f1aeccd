"""What the derived series are computed from, read for one day: device power from the store (the plan where the
scheduler wrote it, measurements where they were read: the latest belief per slot), and the day's EV sessions
(the session table once the bus has brought any session, else the day template, as the scheduler decides)."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from cariflex_pipeline.derived import PlugIn
from cariflex_pipeline.dispatch import has_session_history
from cariflex_pipeline.dispatch.sessions import sessions_between
from cariflex_pipeline.scheduling import EvSession
from cariflex_pipeline.scheduling.horizon import SessionSource, session_source
from cariflex_pipeline.scheduling.resolve import DEFAULT_EFFICIENCY
from cariflex_pipeline.scheduling.sessions import load_day_template, sessions_for_horizon
from cariflex_pipeline.scheduling.signals import on_slots
from cariflex_pipeline.site_model import Site
from cariflex_pipeline.store import TimeSeriesStore

# EVs plugged in at midnight arrived the day before: the EV series are computed from one day earlier on, so that
# what such an EV drew before midnight counts, and then cut to the day.
LOOKBACK = timedelta(days=1)


@dataclass(frozen=True)
class Grid:
    """Consecutive slots of one window, and which of them belong to the partition's day."""

    slots: list[datetime]
    dt_h: float
    day: slice

    @classmethod
    def of(cls, site: Site, origin: datetime, day_start: datetime, day_end: datetime) -> "Grid":
        slots = list(pd.date_range(origin, day_end, freq=site.resolution, inclusive="left").to_pydatetime())
        first = slots.index(day_start)
        return cls(slots, site.resolution.total_seconds() / 3600, slice(first, len(slots)))


def device_power(series: TimeSeriesStore, grid: Grid, sensor_by_device: dict[str, int],
                 unknown: float = 0.0) -> dict[str, np.ndarray]:
    """kW per device and slot; `unknown` where the store has no value (0: idle; NaN: no value, docs/derived.md)."""
    frame = series.read_latest(sorted(set(sensor_by_device.values())), grid.slots[0],
                               grid.slots[-1] + timedelta(hours=grid.dt_h))
    resolution = timedelta(hours=grid.dt_h)
    return {device: np.array([unknown if value is None else value
                              for value in on_slots(frame, [sensor_id], grid.slots[0], len(grid.slots), resolution)])
            for device, sensor_id in sensor_by_device.items()}


def known_slots(series: TimeSeriesStore, grid: Grid, sensor_ids: list[int]) -> int:
    """How many (sensor, slot) values of the day the store has: the metadata's measure of what was defaulted."""
    frame = series.read_latest(sensor_ids, grid.slots[grid.day][0], grid.slots[-1] + timedelta(hours=grid.dt_h))
    return len(frame)


def day_plug_ins(series: TimeSeriesStore, site: Site, grid: Grid, sessions_file: str | None,
                 devices_elsewhere: Collection[str] = ()) -> tuple[SessionSource, list[PlugIn]]:
    """The sessions of the window, from the session table or the day template (scheduling.horizon decides);
    `devices_elsewhere` are a fleet's other sites' devices, whose template sessions are theirs."""
    start, end = grid.slots[0], grid.slots[-1] + timedelta(hours=grid.dt_h)
    source = session_source("auto", has_session_history(series.engine))
    if source == "template":
        sessions = sessions_for_horizon(load_day_template(sessions_file), start, end, devices_elsewhere)
        return source, [_from_template(session, site) for session in sessions]
    points = site.charge_point_by_id
    return source, [PlugIn(device=record["station_id"], arrival=record["arrival"], departure=record["departure"],
                           energy_needed_kwh=record["energy_requested_kwh"] * DEFAULT_EFFICIENCY,
                           max_power_kw=points[record["station_id"]].max_power_kw, efficiency=DEFAULT_EFFICIENCY)
                    for record in sessions_between(series.engine, start, end, station_ids=list(points))]


def _limit_kw(site: Site, device: str) -> float | None:
    limits = {cp.id: cp.max_power_kw for cp in site.charge_points}
    limits.update({charger.name: charger.max_charge_kw for charger in site.v2g_chargers})
    return limits.get(device)


def _from_template(session: EvSession, site: Site) -> PlugIn:
    limit = _limit_kw(site, session.charge_point)
    if limit is None:
        raise ValueError(f"session {session.id!r}: charge point {session.charge_point!r} is not in site "
                         f"{site.name!r}")
    v2g = {charger.name: charger for charger in site.v2g_chargers}.get(session.charge_point)
    default_efficiency = np.sqrt(v2g.round_trip_efficiency) if v2g else DEFAULT_EFFICIENCY
    soc_kwh = (session.soc_now * session.battery_capacity_kwh
               if session.soc_now is not None and session.battery_capacity_kwh is not None else None)
    return PlugIn(device=session.charge_point, arrival=session.arrival, departure=session.departure,
                  energy_needed_kwh=session.energy_kwh(), max_power_kw=min(session.max_power_kw or limit, limit),
                  efficiency=float(session.efficiency or default_efficiency), soc_at_arrival_kwh=soc_kwh,
                  battery_capacity_kwh=session.battery_capacity_kwh)
