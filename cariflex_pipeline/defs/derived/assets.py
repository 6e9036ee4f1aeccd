"""The seed dashboard's derived series as day-partitioned assets: computed by cariflex_pipeline.derived from the
plan, the sessions and the measurements in the store, and written back as sensors 101-105 and the SoC sensors
(151-160 batteries, 171-180 V2G EVs; cariflex_pipeline/derived/sensors.py).

Each run replaces what it computed before for the day (the series is a recomputation, not a history of beliefs),
in one transaction per day. A range of days runs as one run, day after day, so each battery's state of charge
starts where the previous day ended. The 15-minute re-plan refreshes today's partition (defs/scheduling).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from cariflex_pipeline import derived
from cariflex_pipeline.defs.derived.inputs import LOOKBACK, Grid, day_plug_ins, device_power, known_slots
from cariflex_pipeline.defs.groups import DERIVED_GROUP
from cariflex_pipeline.defs.partitions import DAY_BACKFILL, daily_partitions, partition_day_windows
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.derived.sensors import (
    DERIVED_SOURCE,
    DerivedSensors,
)
from cariflex_pipeline.site_model import Site
from cariflex_pipeline.store import TimeSeriesStore

PLAN_AND_MEASUREMENTS = [dg.AssetKey("ev_charging_schedule"), dg.AssetKey("site_measurements")]


class DerivedConfig(dg.Config):
    sessions_file: str | None = Field(
        default=None, description="Session day template (JSON) used before the bus has brought any session; "
        "default: the bundled day, as ev_charging_schedule's default.")


@dataclass(frozen=True)
class _Day:
    key: str
    site: Site
    series: TimeSeriesStore
    sensors: DerivedSensors
    grid: Grid  # from LOOKBACK before the day to its end
    devices_elsewhere: frozenset[str]  # a fleet's other sites' devices (RunSite)


def _days(context: dg.AssetExecutionContext, site: SiteResource, store: TimeSeriesStoreResource) -> list[_Day]:
    """The run's days, in order, with the store ready to take the derived sensors."""
    run_site = site.for_run(context)
    site_model = run_site.model
    series = store.open(run_site.portfolio)
    sensors = derived.derived_sensors(site_model)
    series.register_sensors(sensors.sensors, owners=dict.fromkeys((s.id for s in sensors.sensors), run_site.id))
    return [_Day(key, site_model, series, sensors, Grid.of(site_model, start - LOOKBACK, start, end),
                 run_site.devices_elsewhere)
           for key, start, end in partition_day_windows(context, site_model.tz)]


def _replace(day: _Day, values: dict[int, np.ndarray]) -> int:
    """Write the day's slots of each derived sensor in place of what was there; NaN slots are left empty."""
    if not values:  # a site without batteries or V2G chargers has no SoC to write
        return 0
    slots = day.grid.slots[day.grid.day]
    now = datetime.now(UTC)
    frame = pd.concat([pd.DataFrame({"sensor_id": sensor_id, "event_start": slots, "value": series[day.grid.day],
                                     "belief_time": now}) for sensor_id, series in values.items()])
    frame = frame[frame["value"].notna()]
    end = slots[-1] + timedelta(hours=day.grid.dt_h)
    with day.series.transaction() as connection:
        day.series.delete_beliefs(list(values), slots[0], end, DERIVED_SOURCE, connection=connection)
        return day.series.write_beliefs(frame, source=DERIVED_SOURCE, source_type="derived", connection=connection)


def _charge_points(site: Site) -> dict[str, int]:
    return {cp.id: cp.sensor_id for cp in site.charge_points}


def _storage(site: Site) -> dict[str, int]:
    devices = {battery.name: battery.sensor_id for battery in site.batteries}
    devices.update({charger.name: charger.sensor_id for charger in site.v2g_chargers})
    return devices


def _figures(values: np.ndarray, unit: str, name: str) -> dict[str, float]:
    """The day's extremes over the slots with a value; NaN when none has one (no plan, no meter yet)."""
    known = values[~np.isnan(values)]
    if not len(known):
        return {f"{name}_max_{unit}": float("nan"), f"{name}_min_{unit}": float("nan")}
    return {f"{name}_max_{unit}": round(float(known.max()), 3), f"{name}_min_{unit}": round(float(known.min()), 3)}


@dg.asset(group_name=DERIVED_GROUP, partitions_def=daily_partitions, backfill_policy=DAY_BACKFILL,
          deps=[dg.AssetKey("ev_charging_schedule"), dg.AssetKey("sensor_registry")], kinds={"numpy"})
def ev_session_series(context: dg.AssetExecutionContext, config: DerivedConfig, site: SiteResource,
                      store: TimeSeriesStoreResource) -> dg.MaterializeResult:
    """Active charging sessions (104) and EV flexibility potential (105, kWh), per slot of the day."""
    written = 0
    for day in _days(context, site, store):
        source, plug_ins = day_plug_ins(day.series, day.site, day.grid, config.sessions_file, day.devices_elsewhere)
        power = device_power(day.series, day.grid, _charge_points(day.site))
        sessions = derived.active_sessions(plug_ins, day.grid.slots)
        potential = derived.ev_flexibility_potential(plug_ins, power, day.grid.slots, day.grid.dt_h)
        written += _replace(day, {day.sensors.active_sessions: sessions,
                                  day.sensors.ev_flexibility_potential: potential})
        context.add_asset_metadata({"session_source": source, "sessions": len(plug_ins),
                                    "active_sessions_max": float(sessions[day.grid.day].max()),
                                    **_figures(potential[day.grid.day], "kwh", "ev_flexibility_potential")},
                                   partition_key=day.key)
    return dg.MaterializeResult(metadata={"rows_written_in_run": float(written)})


@dg.asset(group_name=DERIVED_GROUP, partitions_def=daily_partitions, backfill_policy=DAY_BACKFILL,
          deps=[*PLAN_AND_MEASUREMENTS, dg.AssetKey("sensor_registry")], kinds={"numpy"})
def storage_state_of_charge(context: dg.AssetExecutionContext, config: DerivedConfig, site: SiteResource,
                            store: TimeSeriesStoreResource) -> dg.MaterializeResult:
    """Stored energy (kWh) at the end of each slot: each battery (151-160) and each V2G charger's EV (171-180)."""
    written = 0
    for day in _days(context, site, store):
        power = device_power(day.series, day.grid, _storage(day.site))
        previous_slot = day.grid.slots[day.grid.day.start - 1]  # the previous day's last: where today starts
        values: dict[int, np.ndarray] = {}
        started_from_store = 0
        for battery in day.site.batteries:
            sensor_id = day.sensors.battery_soc[battery.name]
            start = _soc_at(day.series, sensor_id, previous_slot)
            started_from_store += start is not None
            efficiency = float(np.sqrt(battery.round_trip_efficiency))
            curve = derived.end_of_slot_soc(battery.initial_soc_kwh if start is None else start,
                                            power[battery.name][day.grid.day], day.grid.dt_h, efficiency,
                                            efficiency)
            values[sensor_id] = np.concatenate([np.full(day.grid.day.start, np.nan), curve])
        _, plug_ins = day_plug_ins(day.series, day.site, day.grid, config.sessions_file, day.devices_elsewhere)
        for charger in day.site.v2g_chargers:
            at_charger = [plug_in for plug_in in plug_ins if plug_in.device == charger.name]
            values[day.sensors.v2g_soc[charger.name]] = derived.v2g_soc(
                at_charger, power[charger.name], day.grid.slots, day.grid.dt_h)
        written += _replace(day, values)
        context.add_asset_metadata({"batteries_started_from_previous_day": started_from_store,
                                    "batteries_started_from_site_initial_soc":
                                        len(day.site.batteries) - started_from_store,
                                    "v2g_sessions_with_soc": sum(p.soc_at_arrival_kwh is not None and
                                                                 p.device in day.sensors.v2g_soc
                                                                 for p in plug_ins)},
                                   partition_key=day.key)
    return dg.MaterializeResult(metadata={"rows_written_in_run": float(written)})


def _soc_at(series: TimeSeriesStore, sensor_id: int, slot_start: datetime) -> float | None:
    """The derived SoC stored for one slot (the previous day's last): where today's curve starts. Only the derived
    source: the S2 CEM's reported and expected fill levels share the sensor, with another meaning of the slot."""
    frame = series.read_latest([sensor_id], slot_start, slot_start + timedelta(seconds=1), sources=[DERIVED_SOURCE])
    return float(frame["value"].iloc[0]) if len(frame) else None


@dg.asset(group_name=DERIVED_GROUP, partitions_def=daily_partitions, backfill_policy=DAY_BACKFILL,
          deps=[*PLAN_AND_MEASUREMENTS, dg.AssetKey("sensor_registry")], kinds={"numpy"})
def grid_impact_series(context: dg.AssetExecutionContext, config: DerivedConfig, site: SiteResource,
                       store: TimeSeriesStoreResource) -> dg.MaterializeResult:
    """Grid impact (102, kW, import > 0) and the flexibility's impact on it (103, kW), per slot of the day."""
    written = 0
    for day in _days(context, site, store):
        devices = {**_charge_points(day.site), **_storage(day.site)}
        # A slot without the charge points' power (before the first plan, no meter) has no grid impact rather
        # than one made of idle charge points; storage and PV without a value are idle.
        power = {**device_power(day.series, day.grid, _charge_points(day.site), unknown=np.nan),
                 **device_power(day.series, day.grid, _storage(day.site))}
        pv_ids = {pv.name: pv.sensor_id for pv in day.site.pv_installations}
        pv = np.sum(list(device_power(day.series, day.grid, pv_ids).values()) or [np.zeros(len(day.grid.slots))],
                    axis=0)
        _, plug_ins = day_plug_ins(day.series, day.site, day.grid, config.sessions_file, day.devices_elsewhere)
        ev_plug_ins = [plug_in for plug_in in plug_ins if plug_in.device in _charge_points(day.site)]
        uncontrolled = derived.uncontrolled_charging(ev_plug_ins, day.grid.slots, day.grid.dt_h)
        impact = derived.grid_impact(list(power.values()), pv)
        flexibility = derived.flexibility_impact(list(power.values()), uncontrolled)
        written += _replace(day, {day.sensors.grid_impact: impact, day.sensors.flexibility_impact: flexibility})
        context.add_asset_metadata({
            "device_values_known": known_slots(day.series, day.grid, sorted(devices.values())),
            "pv_values_known": known_slots(day.series, day.grid, sorted(pv_ids.values())),
            **_figures(impact[day.grid.day], "kw", "grid_impact"),
            **_figures(flexibility[day.grid.day], "kw", "flexibility_impact")}, partition_key=day.key)
    return dg.MaterializeResult(metadata={"rows_written_in_run": float(written)})


@dg.asset(group_name=DERIVED_GROUP, partitions_def=daily_partitions, backfill_policy=DAY_BACKFILL,
          deps=[ev_session_series, storage_state_of_charge], kinds={"numpy"})
def total_flexibility_series(context: dg.AssetExecutionContext, config: DerivedConfig, site: SiteResource,
                             store: TimeSeriesStoreResource) -> dg.MaterializeResult:
    """Total flexibility (101, kWh): the EVs' flexibility potential plus the storage's room up to its maximum."""
    written = 0
    for day in _days(context, site, store):
        storage_max = {day.sensors.battery_soc[b.name]: b.soc_max_kwh or b.capacity_kwh
                       for b in day.site.batteries}
        v2g_capacity = _v2g_capacity(day, config.sessions_file)
        soc = _derived_values(day, [*storage_max, *v2g_capacity])
        potential_id = day.sensors.ev_flexibility_potential
        potential = _derived_values(day, [potential_id])[potential_id]
        total = derived.total_flexibility(np.nan_to_num(potential, nan=0.0), [soc[s] for s in soc],
                                          [storage_max.get(s, v2g_capacity.get(s)) for s in soc])
        written += _replace(day, {day.sensors.total_flexibility: total})
        context.add_asset_metadata(_figures(total[day.grid.day], "kwh", "total_flexibility"),
                                   partition_key=day.key)
    return dg.MaterializeResult(metadata={"rows_written_in_run": float(written)})


def _v2g_capacity(day: _Day, sessions_file: str | None) -> dict[int, np.ndarray]:
    """Per V2G SoC sensor, the battery capacity of the EV plugged in at each slot (NaN: none)."""
    _, plug_ins = day_plug_ins(day.series, day.site, day.grid, sessions_file, day.devices_elsewhere)
    capacities = {}
    for name, sensor_id in day.sensors.v2g_soc.items():
        capacity = np.full(len(day.grid.slots), np.nan)
        for plug_in in plug_ins:
            if plug_in.device == name and plug_in.battery_capacity_kwh is not None:
                capacity = np.where(plug_in.connected(day.grid.slots), plug_in.battery_capacity_kwh, capacity)
        capacities[sensor_id] = capacity
    return capacities


def _derived_values(day: _Day, sensor_ids: list[int]) -> dict[int, np.ndarray]:
    """Derived sensors as stored, on the day's grid; NaN where nothing is stored."""
    frame = day.series.read_latest(sensor_ids, day.grid.slots[0],
                                   day.grid.slots[-1] + timedelta(hours=day.grid.dt_h), sources=[DERIVED_SOURCE])
    index = {slot: position for position, slot in enumerate(day.grid.slots)}
    values = {sensor_id: np.full(len(day.grid.slots), np.nan) for sensor_id in sensor_ids}
    for sensor_id, start, value in zip(frame["sensor_id"], frame["event_start"], frame["value"], strict=True):
        values[int(sensor_id)][index[start.to_pydatetime()]] = value
    return values
