"""Slot-average measured power (pure function, hand-computed figures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cariflex_pipeline.dispatch.meter import power_frame

SLOT = timedelta(minutes=15)
T = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)


def _values(frame) -> dict[tuple[int, datetime], float]:
    return {(int(r.sensor_id), r.event_start.to_pydatetime()): r.value for r in frame.itertuples()}


def test_a_sample_covers_the_time_since_the_one_before_clipped_to_its_slot() -> None:
    samples = [(61, T + timedelta(minutes=12), 11.0), (61, T + timedelta(minutes=14), 0.0),
               (61, T + timedelta(minutes=18), 4.0), (62, T, 7.0)]
    values = _values(power_frame(samples, SLOT))
    # sensor 61: 13:00-13:12 at 11 kW, 13:12-13:14 at 0 kW; the next slot 13:15-13:18 at 4 kW
    assert values[(61, T)] == pytest.approx(11.0 * 12 / 14)
    assert values[(61, T + SLOT)] == pytest.approx(4.0)
    # a lone sample on the slot's start covers no time: it stands for itself
    assert values[(62, T)] == 7.0


def test_a_later_batch_continues_the_stored_slot_and_skips_what_it_counted() -> None:
    previous = {(61, T): (6.0, T + timedelta(minutes=10))}  # 6 kW average over 13:00-13:10
    samples = [(61, T + timedelta(minutes=8), 50.0), (61, T + timedelta(minutes=15) - timedelta(seconds=1), 0.0)]
    frame = power_frame(samples, SLOT, previous)
    [row] = frame.itertuples()
    assert row.value == pytest.approx(6.0 * 600 / 899)
    assert row.belief_time.to_pydatetime() == T + timedelta(minutes=15) - timedelta(seconds=1)
