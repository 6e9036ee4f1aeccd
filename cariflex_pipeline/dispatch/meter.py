"""Measured power per slot from a station's Power.Active.Import samples (a pure function: no bus, no store)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import pandas as pd

from cariflex_pipeline.dispatch.profiles import floor_to_grid

SlotCoverage = dict[tuple[int, datetime], tuple[float, datetime]]  # (sensor, slot) -> (average kW, covered to)


def power_frame(samples: Iterable[tuple[int, datetime, float]], resolution: timedelta,
                previous: SlotCoverage | None = None) -> pd.DataFrame:
    """Samples -> belief frame: one value per sensor and slot, the slot's energy-weighted average power.

    The slot's latest sample alone is not what the slot consumed: a car that charged at 11 kW for 14 minutes
    and stopped a minute before the slot ended would show 0 kW. So each sample stands for the power since the
    sample before it, clipped to its slot (as the energy register's difference between two readings would),
    and a slot's value is its energy over the time covered so far, from the slot's start to its latest
    sample. That time is the belief time, so a later drain continues a slot from `previous` (the slot's
    stored average and belief time) without counting a sample twice: samples at or before it are ignored.
    A lone sample exactly on the slot's start covers no time and stands for itself.
    """
    coverage: SlotCoverage = dict(previous or {})
    energy: dict[tuple[int, datetime], float] = {}  # kW*s since the slot start
    touched: set[tuple[int, datetime]] = set()
    last_at: dict[int, datetime] = {}
    for sensor_id, at, kw in sorted(samples, key=lambda sample: (sample[0], sample[1])):
        slot = floor_to_grid(at, resolution)
        key = (sensor_id, slot)
        if key not in energy:
            average, covered = coverage.get(key, (0.0, slot))
            energy[key] = average * (covered - slot).total_seconds()
        _, covered = coverage.get(key, (0.0, slot))
        if key in coverage and at <= covered:
            continue  # counted by an earlier drain (a redelivery or a late sample)
        start = max(slot, covered, last_at.get(sensor_id, slot))
        energy[key] += kw * (at - start).total_seconds()
        span = (at - slot).total_seconds()
        coverage[key] = (energy[key] / span if span > 0 else kw, at)
        last_at[sensor_id] = at
        touched.add(key)
    rows = [{"sensor_id": s, "event_start": slot, "value": coverage[(s, slot)][0],
             "belief_time": coverage[(s, slot)][1]} for s, slot in sorted(touched)]
    frame = pd.DataFrame(rows, columns=["sensor_id", "event_start", "value", "belief_time"])
    if not frame.empty:
        frame["event_start"] = pd.to_datetime(frame["event_start"], utc=True)
        frame["belief_time"] = pd.to_datetime(frame["belief_time"], utc=True)
    return frame
