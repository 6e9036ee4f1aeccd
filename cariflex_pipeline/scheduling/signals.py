"""Between the store's belief frames and the scheduler: signals onto the slot grid, schedules back to beliefs."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pandas as pd

from cariflex_pipeline.scheduling.result import ScheduleResult

# The data source of planned power in the store; dispatch reads the plan back under this name.
SCHEDULER_SOURCE = "cariflex-scheduler"


def current_slot(now: datetime, resolution: timedelta = timedelta(minutes=15)) -> datetime:
    """The start of the slot that contains `now` (tz-aware), on the UTC grid."""
    if now.tzinfo is None:
        raise ValueError(f"time {now.isoformat()} has no time zone")
    seconds = resolution.total_seconds()
    return datetime.fromtimestamp(math.floor(now.timestamp() / seconds) * seconds, tz=now.tzinfo)


def on_slots(frame: pd.DataFrame, sensor_ids: list[int], start: datetime, n_slots: int,
             resolution: timedelta = timedelta(minutes=15)) -> list[float | None]:
    """Sum of the sensors' latest values per slot of [start, start + n·resolution); None where none is known.

    `frame` is what TimeSeriesStore.read_latest returns (event_start in UTC). An event whose resolution spans
    several slots (an hourly price, say) fills each of them.
    """
    values: list[float | None] = [None] * n_slots
    if frame.empty:
        return values
    origin = pd.Timestamp(start).tz_convert("UTC")
    step = resolution.total_seconds()
    rows = frame[frame["sensor_id"].isin(sensor_ids)]
    for event_start, event_resolution, value in zip(rows["event_start"], rows["event_resolution"], rows["value"],
                                                    strict=True):
        offset = (pd.Timestamp(event_start) - origin).total_seconds() / step
        span = max(1, round(pd.Timedelta(event_resolution).total_seconds() / step))
        first = math.floor(offset + 1e-9)
        for slot in range(max(first, 0), min(first + span, n_slots)):
            values[slot] = float(value) + (values[slot] or 0.0)
    return values


def schedule_beliefs(result: ScheduleResult, sensor_by_device: dict[str, int], belief_time: datetime) -> pd.DataFrame:
    """The planned power of every device that has a sensor, as a belief frame for TimeSeriesStore.write_beliefs."""
    rows = []
    starts = result.slot_starts()
    for device, series in [*result.power_kw.items(), *result.battery_power_kw.items()]:
        sensor_id = sensor_by_device.get(device)
        if sensor_id is None:
            continue
        rows += [(sensor_id, slot_start, float(value), belief_time) for slot_start, value in zip(starts, series,
                                                                                                   strict=True)]
    return pd.DataFrame(rows, columns=["sensor_id", "event_start", "value", "belief_time"])
