"""From the plan in the store to staged FRBC instructions, per connected RM (the Dagster asset calls this).

The plan is the planned power of each battery (51-60) and V2G charger (71-80) as the scheduler wrote it, read back
from the store by its data source; only RMs that are connected under FRBC and have declared a system description
get instructions, each setpoint within the power ranges they declared at their present fill level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from s2python.frbc import FRBCFillLevelTargetProfile, FRBCSystemDescription

from cariflex_pipeline.s2 import state
from cariflex_pipeline.s2.devices import S2Device
from cariflex_pipeline.s2.frbc import (
    OutsideRangesError,
    Setpoint,
    fill_trajectory,
    power_limits_kw,
    round_trip_efficiency,
    setpoints_for_plan,
)
from cariflex_pipeline.store import TimeSeriesStore

# the fill level each RM should reach if it follows its instructions, on its SoC sensor beside what it reports
S2_PLAN_SOURCE = "cariflex-s2-plan"


@dataclass(frozen=True)
class DeviceStaging:
    """What one device's part of the plan became."""

    device: str
    resource_id: str | None
    staged: state.Staged | None
    setpoints: int
    reason: str  # why nothing was staged, or what was clamped


def plan_slots(store: TimeSeriesStore, sensor_id: int, start: datetime, end: datetime,
               source: str) -> list[tuple[datetime, float]]:
    """The planned power (kW) of one sensor per slot start in [start, end), from `source`'s latest beliefs."""
    frame = store.read_latest([sensor_id], start, end, sources=[source])
    return [(moment.to_pydatetime(), float(value)) for moment, value in zip(frame["event_start"], frame["value"],
                                                                             strict=True)]


def stage_plan(store: TimeSeriesStore, devices: Mapping[str, S2Device], source: str, slot_start: datetime,
               horizon: timedelta, plan_key: str, now: datetime, *, site_id: str) -> list[DeviceStaging]:
    """Stage `site_id`'s plan from `slot_start` (the current slot) over `horizon` for every RM of that site under
    control, as instructions of that site, and write the fill level each should reach at the coming slot starts
    (S2_PLAN_SOURCE, on its SoC sensor)."""
    results = []
    controlled = {row["device"]: row for row in state.resources(store.engine, site_id=site_id)
                  if row["device"] and row["status"] == "connected"}
    for device, s2_device in sorted(devices.items()):
        sensor_id = s2_device.power_sensor_id
        row = controlled.get(device)
        if row is None or not row["system_description"]:
            reason = "no RM connected" if row is None else "its RM has not sent a system description yet"
            results.append(DeviceStaging(device, None if row is None else row["resource_id"], None, 0, reason))
            continue
        slots = plan_slots(store, sensor_id, slot_start, slot_start + horizon, source)
        if not slots:
            results.append(DeviceStaging(device, row["resource_id"], None, 0, "no planned power in the horizon"))
            continue
        description = FRBCSystemDescription.from_json(row["system_description"])
        try:
            setpoints = setpoints_for_plan(device, description, row["fill_level"], slots)
        except OutsideRangesError as error:
            results.append(DeviceStaging(device, row["resource_id"], None, 0, str(error)))
            continue
        staged = state.stage_setpoints(store.engine, row["resource_id"], device, setpoints, plan_key, now,
                                       site_id=site_id)
        if row["fill_level"] is not None:
            _write_trajectory(store, s2_device, description, setpoints, row["fill_level"], slots, now)
        clamped = [point for point in setpoints if point.clamped_from_kw is not None]
        reason = (f"{len(clamped)} setpoints clamped to the declared ranges" if clamped else "")
        results.append(DeviceStaging(device, row["resource_id"], staged, len(setpoints), reason))
    return results


def _write_trajectory(store: TimeSeriesStore, device: S2Device, description: FRBCSystemDescription,
                      setpoints: list[Setpoint], fill_level: float, slots: list[tuple[datetime, float]],
                      now: datetime) -> None:
    # the plan's slots are the store's 15-minute grid: the last one ends a slot after it starts
    ends = [start for start, _ in slots if start > now] + [slots[-1][0] + timedelta(minutes=15)]
    fill_range = description.storage.fill_level_range
    levels = fill_trajectory(setpoints, fill_level, [now, *ends], (fill_range.start_of_range,
                                                                 fill_range.end_of_range))
    frame = pd.DataFrame({"sensor_id": device.soc_sensor_id, "event_start": ends, "value": levels[1:],
                          "belief_time": now})
    store.write_beliefs(frame, source=S2_PLAN_SOURCE, source_type="scheduler")


def planned_fill(store: TimeSeriesStore, device: S2Device, start: datetime,
                 end: datetime) -> list[tuple[datetime, float]]:
    """The fill levels the device's RM should reach at the slot starts in [start, end)."""
    frame = store.read_latest([device.soc_sensor_id], start, end, sources=[S2_PLAN_SOURCE])
    return [(moment.to_pydatetime(), float(value)) for moment, value in zip(frame["event_start"], frame["value"],
                                                                             strict=True)]


@dataclass(frozen=True)
class RmLimits:
    """What a device's RM declares, for the scheduler; `controllable` False: plan the device at zero."""

    device: str
    controllable: bool
    reason: str
    capacity_kwh: float = 0.0
    fill_level_kwh: float = 0.0
    max_charge_kw: float = 0.0
    max_discharge_kw: float = 0.0
    round_trip_efficiency: float | None = None  # from the declared fill rates, when they give one
    target_kwh: float | None = None  # a car's FillLevelTargetProfile: the fill level it wants...
    target_by: datetime | None = None  # ... by the end of the profile (its departure)


def rm_limits(store: TimeSeriesStore, devices: list[str]) -> dict[str, RmLimits]:
    """The RM state of every device that has ever had an RM (the newest RM per device); a device without one is
    absent, and keeps the site file's defaults. A connected FRBC RM with a description and a fill level gives
    capacity, power limits and fill level; any other state (disconnected, uncontrolled, not yet described, no
    power range) is not controllable."""
    limits = {}
    for device, row in state.newest_by_device(store.engine, devices).items():
        if row["status"] != "connected":
            limits[device] = RmLimits(device, False, f"RM {row['status']}: {row['status_reason'] or 'no reason'}")
            continue
        if not row["system_description"] or row["fill_level"] is None:
            limits[device] = RmLimits(device, False, "RM connected, no system description or fill level yet")
            continue
        description = FRBCSystemDescription.from_json(row["system_description"])
        low, high = power_limits_kw(description, row["fill_level"])
        fill_range = description.storage.fill_level_range
        controllable = high > 0 or low < 0
        target, by = _target(row["fill_level_target"])
        limits[device] = RmLimits(device, controllable, "" if controllable else "RM declares no power range",
                                  fill_range.end_of_range, row["fill_level"], max(high, 0.0), max(-low, 0.0),
                                  round_trip_efficiency(description, row["fill_level"]), target, by)
    return limits


def _target(profile_json: str | None) -> tuple[float | None, datetime | None]:
    """The lowest fill level a FillLevelTargetProfile accepts at its end, and when that end is."""
    if not profile_json:
        return None, None
    profile = FRBCFillLevelTargetProfile.from_json(profile_json)
    end = profile.start_time + sum((element.duration.to_timedelta() for element in profile.elements), timedelta())
    return profile.elements[-1].fill_level_range.start_of_range, end
