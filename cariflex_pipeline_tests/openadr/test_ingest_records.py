"""What ingestion leaves behind besides the values: belief times, data source types, audit rows, log lines and
the report's warnings and days, for new, modified, stale, cancelled and restored versions."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from cariflex_pipeline.openadr.ingest import ingest_events, withdraw_deleted
from cariflex_pipeline.openadr.limits import shown
from cariflex_pipeline.openadr.oadr3 import parse_events_json
from cariflex_pipeline.openadr.repository import EventLog
from cariflex_pipeline.store.schema import data_sources
from cariflex_pipeline_tests.openadr.helpers import SITE_ID, series
from cariflex_pipeline_tests.openadr.messages import event_301

T = datetime(2026, 12, 1, 12, tzinfo=UTC)  # 08:00 in Martinique
QUARTER = timedelta(minutes=15)
LOGGER = "cariflex_pipeline.openadr.ingest"


def _events(*payloads: dict):
    return parse_events_json(json.dumps(list(payloads)), vtn_id="vtn3")


def test_values_carry_the_event_s_modification_time_as_belief_time_and_a_vtn_source(store, site):
    modified = datetime(2026, 11, 30, 9, 30, 15, 250000, tzinfo=UTC)
    ingest_events(_events(event_301("A", T, [0.10], modified=modified)), site, store, site_id=SITE_ID)
    frame = store.read_latest([84])
    assert {moment.to_pydatetime() for moment in frame["belief_time"]} == {modified}
    assert set(frame["source"]) == {"openadr:vtn3/A"}
    with store.engine.connect() as connection:
        assert connection.execute(select(data_sources.c.name, data_sources.c.type)).all() == [
            ("openadr:vtn3/A", "vtn")]


def test_a_modified_event_that_shrinks_withdraws_the_slots_it_no_longer_covers(store, site):
    ingest_events(_events(event_301("A", T, [0.10, 0.10])), site, store, site_id=SITE_ID)
    shorter = event_301("A", T, [0.30], modified=datetime(2026, 11, 28, tzinfo=UTC))
    report = ingest_events(_events(shorter), site, store, site_id=SITE_ID)
    assert (report.modified, report.values_withdrawn, report.values_written) == (["A"], 8, 4)
    assert series(store, 84) == [(T + n * QUARTER, 300.0) for n in range(4)]


def test_a_stale_version_is_ignored_with_a_warning_and_no_answer(store, site, caplog):
    newer = event_301("A", T, [0.20], modified=datetime(2026, 11, 30, tzinfo=UTC))
    ingest_events(_events(newer), site, store, site_id=SITE_ID)
    [stale] = _events(event_301("A", T, [0.10], modified=datetime(2026, 11, 29, tzinfo=UTC)))
    with caplog.at_level("WARNING", logger=LOGGER):
        report = ingest_events([stale], site, store, site_id=SITE_ID)
    stored = EventLog(store.engine, site_id=SITE_ID).latest("vtn3", "A").modification_number
    message = (f"event 'A' of VTN 'vtn3': modification {stale.modification_number} is older than the stored "
               f"{stored}; ignored")
    assert report.stale == ["A"] and report.warnings == [message] and message in caplog.messages
    assert report.opt == {}  # neither opted in (it is not applied) nor out (the newer one stands)
    assert dict(report.day(date(2026, 12, 1)).events) == {"stale": 1}
    assert series(store, 84) == [(T + n * QUARTER, 200.0) for n in range(4)]


def test_a_cancellation_is_logged_and_audited_with_no_values(store, site, caplog):
    ingest_events(_events(event_301("A", T, [0.10])), site, store, site_id=SITE_ID)
    [event] = _events(event_301("A", T, [0.10]))
    cancelled = dataclasses.replace(event, status="cancelled", modification_number=event.modification_number + 1)
    with caplog.at_level("INFO", logger=LOGGER):
        ingest_events(_events(event_301("B", T, [0.10])), site, store,  # a new event: no cancellation line
                      site_id=SITE_ID)
        report = ingest_events([cancelled], site, store, site_id=SITE_ID)
    assert report.cancelled == ["A"]
    info = [record.getMessage() for record in caplog.records if record.levelname == "INFO"]
    assert info == [f"event 'A' of VTN 'vtn3' (modification {cancelled.modification_number}) cancelled: "
                    "values withdrawn"]
    record = EventLog(store.engine, site_id=SITE_ID).latest("vtn3", "A")
    assert (record.status, record.values_written, record.sensor_ids) == ("cancelled", 0, ())


def test_a_reappearing_event_is_logged_as_back(store, site, caplog):
    ingest_events(_events(event_301("A", T, [0.10])), site, store, site_id=SITE_ID)
    withdraw_deleted([EventLog(store.engine, site_id=SITE_ID).latest("vtn3", "A")], site, store, now=T, site_id=SITE_ID)
    with caplog.at_level("INFO", logger=LOGGER):
        report = ingest_events(_events(event_301("A", T, [0.10])), site, store, site_id=SITE_ID)
    assert report.new == ["A"] and report.values_written == 4
    assert "event 'A' of VTN 'vtn3' is listed again: its values are back" in caplog.messages


def test_values_are_counted_on_the_local_day_of_each_slot_start(store, site):
    # 03:45 UTC is 23:45 on 1 December in Martinique, 04:00 UTC already 2 December
    report = ingest_events(_events(event_301("A", datetime(2026, 12, 2, 3, 45, tzinfo=UTC), [0.1, 0.1],
                                             duration="PT15M")), site, store, site_id=SITE_ID)
    assert {day: figures.values_written for day, figures in report.days.items()} == {
        date(2026, 12, 1): 1, date(2026, 12, 2): 1}


def test_a_day_between_two_intervals_has_no_figures(store, site):
    payload = event_301("A", T, [0.1, 0.2])
    payload["intervals"][1]["intervalPeriod"] = {"start": (T + timedelta(days=2)).isoformat(), "duration": "PT15M"}
    payload["intervalPeriod"]["duration"] = "PT15M"
    report = ingest_events(_events(payload), site, store, site_id=SITE_ID)
    assert {day: figures.values_written for day, figures in report.days.items()} == {
        date(2026, 12, 1): 1, date(2026, 12, 3): 1}


def _refusing(store, monkeypatch, event_id: str, reason: str) -> None:
    """The store refuses any write holding `event_id`'s values, with `reason` (a check of its own, say)."""
    write = store.write_beliefs_of_sources

    def refusing(frame, **kwargs):
        if f"openadr:vtn3/{event_id}" in set(frame["source"]):
            raise ValueError(reason)
        return write(frame, **kwargs)

    monkeypatch.setattr(store, "write_beliefs_of_sources", refusing)


def test_a_batch_that_fails_says_why_once_and_each_event_is_then_written_alone(store, site, monkeypatch, caplog):
    reason = "the value of event late is refused: " + "because " * 40  # 356 characters, shown cut to 200
    _refusing(store, monkeypatch, "late", reason)
    evening = datetime(2026, 12, 2, 1, tzinfo=UTC)  # 21:00 on 1 December in Martinique
    with caplog.at_level("WARNING", logger=LOGGER):
        report = ingest_events(_events(event_301("late", evening, [0.1]), event_301("ok", T, [0.2])), site, store,
                               site_id=SITE_ID)
    assert report.new == ["ok"]
    assert report.rejected == {"late": f"cannot be ingested (ValueError: {shown(reason, 200)})"}
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert warnings == [f"writing 2 events together failed ({shown(reason, 200)}); writing each on its own"]
    assert len(shown(reason, 200)) < len(shown(reason, 201))
    assert {day: dict(figures.events) for day, figures in report.days.items()} == {
        date(2026, 12, 1): {"rejected": 1, "new": 1}}  # the evening event on its local day, not the UTC one
    assert series(store, 84) == [(T + n * QUARTER, 200.0) for n in range(4)]


def test_one_event_that_fails_is_written_alone_without_a_batch_warning(store, site, monkeypatch, caplog):
    _refusing(store, monkeypatch, "A", "refused")
    with caplog.at_level("WARNING", logger=LOGGER):
        report = ingest_events(_events(event_301("A", T, [0.1])), site, store, site_id=SITE_ID)
    assert report.rejected == {"A": "cannot be ingested (ValueError: 'refused')"}
    assert [record for record in caplog.records if record.levelname == "WARNING"] == []
