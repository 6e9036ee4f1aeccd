"""A listing is written in one transaction; what makes that transaction fail is one event's problem, not the
listing's: the events are then written one by one, and the others land."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event as sqlalchemy_event

from cariflex_pipeline.openadr import ingest
from cariflex_pipeline.openadr.ingest import ingest_events
from cariflex_pipeline.openadr.oadr3 import parse_events_json
from cariflex_pipeline.openadr.repository import EventLog
from cariflex_pipeline_tests.openadr.helpers import SITE_ID, audit_rows, series
from cariflex_pipeline_tests.openadr.messages import event_301

T = datetime(2026, 12, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
QUARTER = timedelta(minutes=15)


def _listing(count: int) -> list:
    """`count` one-hour price events, event n at T + n hours with n/100 EUR/kWh."""
    payloads = [event_301(f"E{number}", T + number * HOUR, [number / 100]) for number in range(count)]
    return parse_events_json(json.dumps(payloads), vtn_id="vtn3")


def _expected(numbers: list[int]) -> list[tuple[datetime, float]]:
    """Event n's values in EUR/MWh: n/100 EUR/kWh over four quarter hours."""
    return [(T + number * HOUR + slot * QUARTER, pytest.approx(number * 10.0))
            for number in numbers for slot in range(4)]


def test_a_listing_of_events_commits_once(store, site):
    commits = []
    sqlalchemy_event.listen(store.engine, "commit", lambda connection: commits.append(1))

    report = ingest_events(_listing(40), site, store, site_id=SITE_ID)

    assert len(report.new) == 40 and report.values_written == 160 and report.rejected == {}
    assert len(commits) == 1  # values, audit rows and data sources of all 40 events: one transaction
    assert series(store, 84) == _expected(list(range(40)))
    assert audit_rows(store) == 40


def test_a_version_logged_meanwhile_by_another_run_spares_the_rest(store, site, monkeypatch):
    events = _listing(3)
    ingest_events(events[1:2], site, store, site_id=SITE_ID)  # another run got E1 in first...
    hidden = EventLog.latest_of

    def before_the_other_run(self, vtn_id, event_ids):  # ...after this run had looked it up
        return {event_id: record for event_id, record in hidden(self, vtn_id, event_ids).items()
                if event_id != "E1"}

    monkeypatch.setattr(EventLog, "latest_of", before_the_other_run)
    report = ingest_events(events, site, store, site_id=SITE_ID)

    # the batch's audit row for E1 collides with the other run's, so the batch rolls back and each event is
    # written on its own: E1 is found applied, the others land, nothing twice
    assert sorted(report.new) == ["E0", "E2"] and report.unchanged == ["E1"] and report.rejected == {}
    assert series(store, 84) == _expected([0, 1, 2])
    assert audit_rows(store) == 3


def test_a_value_that_slipped_past_the_checks_rejects_only_its_event(store, site, monkeypatch):
    checked = ingest.normalize_event

    def with_a_hole(event, site):  # stands in for a normalization bug: a NaN reaches the store's own check
        normalized = checked(event, site)
        if event.event_id == "E1":
            normalized.values[2] = math.nan
        return normalized

    monkeypatch.setattr(ingest, "normalize_event", with_a_hole)
    events = _listing(3)
    report = ingest_events(events, site, store, site_id=SITE_ID)

    assert sorted(report.new) == ["E0", "E2"]
    assert list(report.rejected) == ["E1"]
    assert "BeliefValidationError" in report.rejected["E1"] and "not a finite number" in report.rejected["E1"]
    assert report.opt[events[1].key] == "optOut" and report.opt[events[0].key] == "optIn"
    assert series(store, 84) == _expected([0, 2])  # nothing of E1, all of the others
    assert audit_rows(store) == 2

