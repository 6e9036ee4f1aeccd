"""Ingestion writes each event version whole or not at all, and withdrawing one event spares the others."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from cariflex_pipeline.openadr.ingest import ingest_events
from cariflex_pipeline.openadr.oadr3 import parse_events_json
from cariflex_pipeline.openadr.repository import EventLog
from cariflex_pipeline.openadr.source import changes_of
from cariflex_pipeline_tests.openadr.helpers import audit_rows, series
from cariflex_pipeline_tests.openadr.messages import event_301

T = datetime(2026, 12, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
QUARTER = timedelta(minutes=15)


def _events(*payloads: dict):
    return parse_events_json(json.dumps(list(payloads)), vtn_id="vtn3")


def _hourly(start: datetime, hours: int, value: float) -> list[tuple[datetime, float]]:
    return [(start + n * QUARTER, value) for n in range(4 * hours)]


def test_cancelling_one_event_keeps_an_overlapping_event_values(store, site):
    # A: 100 EUR/MWh over [12:00, 14:00); B, modified later: 200 EUR/MWh over [13:00, 15:00).
    first = event_301("A", T, [0.10, 0.10], modified=datetime(2026, 11, 30, 10, tzinfo=UTC))
    second = event_301("B", T + HOUR, [0.20, 0.20], modified=datetime(2026, 11, 30, 11, tzinfo=UTC))
    ingest_events(_events(first, second), site, store)
    assert series(store, 84) == _hourly(T, 1, 100.0) + _hourly(T + HOUR, 2, 200.0)

    [event_b] = _events(second)
    cancelled = dataclasses.replace(event_b, status="cancelled", modification_number=event_b.modification_number + 1)
    report = ingest_events([cancelled], site, store)

    assert report.cancelled == ["B"]
    assert series(store, 84) == _hourly(T, 2, 100.0)  # A's 13:00-14:00 values survive B's withdrawal


def test_a_failure_while_logging_an_event_leaves_none_of_its_values(store, site, monkeypatch):
    accepted = event_301("A", T, [0.10])
    ingest_events(_events(accepted), site, store)

    def disk_full(self, *args, **kwargs):  # stands in for a database failure after the values were written
        raise RuntimeError("disk full")

    monkeypatch.setattr(EventLog, "record_all", disk_full)
    modified = event_301("A", T, [0.30], modified=datetime(2026, 11, 28, 16, tzinfo=UTC))
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_events(_events(modified, event_301("C", T + 2 * HOUR, [0.25])), site, store)

    assert series(store, 84) == _hourly(T, 1, 100.0)  # the accepted version stays, nothing of the others
    assert audit_rows(store) == 1

    monkeypatch.undo()
    ingest_events(_events(modified), site, store)  # the next sync applies it
    assert series(store, 84) == _hourly(T, 1, 300.0)
    assert audit_rows(store) == 2


def test_figures_are_counted_per_local_day(store, site):
    # 02:00-06:00 UTC is 22:00-02:00 in Martinique: two hours on each local day
    start = datetime(2026, 12, 2, 2, tzinfo=UTC)
    payload = event_301("A", start, [0.1, 0.1, 0.1, 0.1])
    report = ingest_events(_events(payload), site, store)
    first, second = date(2026, 12, 1), date(2026, 12, 2)
    assert sorted(report.days) == [first, second]
    assert [report.day(day).values_written for day in (first, second)] == [8, 8]
    assert [report.day(day).events["new"] for day in (first, second)] == [1, 1]
    assert report.day(date(2026, 12, 3)).events_seen == 0

    [event] = _events(payload)
    cancelled = dataclasses.replace(event, status="cancelled", modification_number=event.modification_number + 1,
                                    signals=())  # a cancellation need not repeat the intervals
    report = ingest_events([cancelled], site, store)
    assert [report.day(day).values_withdrawn for day in (first, second)] == [8, 8]
    assert [report.day(day).events["cancelled"] for day in (first, second)] == [1, 1]


def test_a_cancelled_event_reruns_only_the_days_it_covered(store, site):
    # one whole local day: 2026-12-01 00:00 to 2026-12-02 00:00 in Martinique (04:00 UTC to 04:00 UTC)
    payload = event_301("A", datetime(2026, 12, 1, 4, tzinfo=UTC), [0.1], duration="P1D")
    ingest_events(_events(payload), site, store)
    [event] = _events(payload)
    cancelled = dataclasses.replace(event, status="cancelled", modification_number=event.modification_number + 1,
                                    signals=())  # a cancellation without intervals: days come from the store
    [change] = changes_of([cancelled], site, store)
    assert change.kind == "cancelled" and change.days == (date(2026, 12, 1),)
