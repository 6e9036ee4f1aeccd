"""Ingestion writes each event version whole or not at all, and withdrawing one event spares the others."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from cariflex_pipeline.openadr.ingest import IngestReport, ingest_events, withdraw_deleted
from cariflex_pipeline.openadr.oadr3 import parse_events_json
from cariflex_pipeline.openadr.repository import AbsenceLog, EventLog
from cariflex_pipeline.openadr.source import changes_of
from cariflex_pipeline_tests.openadr.helpers import SITE_ID, audit_rows, series
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
    ingest_events(_events(first, second), site, store, site_id=SITE_ID)
    assert series(store, 84) == _hourly(T, 1, 100.0) + _hourly(T + HOUR, 2, 200.0)

    [event_b] = _events(second)
    cancelled = dataclasses.replace(event_b, status="cancelled", modification_number=event_b.modification_number + 1)
    report = ingest_events([cancelled], site, store, site_id=SITE_ID)

    assert report.cancelled == ["B"]
    assert series(store, 84) == _hourly(T, 2, 100.0)  # A's 13:00-14:00 values survive B's withdrawal


def test_a_failure_while_logging_an_event_leaves_none_of_its_values(store, site, monkeypatch):
    accepted = event_301("A", T, [0.10])
    ingest_events(_events(accepted), site, store, site_id=SITE_ID)

    def disk_full(self, *args, **kwargs):  # stands in for a database failure after the values were written
        raise RuntimeError("disk full")

    monkeypatch.setattr(EventLog, "record_all", disk_full)
    modified = event_301("A", T, [0.30], modified=datetime(2026, 11, 28, 16, tzinfo=UTC))
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_events(_events(modified, event_301("C", T + 2 * HOUR, [0.25])), site, store, site_id=SITE_ID)

    assert series(store, 84) == _hourly(T, 1, 100.0)  # the accepted version stays, nothing of the others
    assert audit_rows(store) == 1

    monkeypatch.undo()
    ingest_events(_events(modified), site, store, site_id=SITE_ID)  # the next sync applies it
    assert series(store, 84) == _hourly(T, 1, 300.0)
    assert audit_rows(store) == 2


def test_figures_are_counted_per_local_day(store, site):
    # 02:00-06:00 UTC is 22:00-02:00 in Martinique: two hours on each local day
    start = datetime(2026, 12, 2, 2, tzinfo=UTC)
    payload = event_301("A", start, [0.1, 0.1, 0.1, 0.1])
    report = ingest_events(_events(payload), site, store, site_id=SITE_ID)
    first, second = date(2026, 12, 1), date(2026, 12, 2)
    assert sorted(report.days) == [first, second]
    assert [report.day(day).values_written for day in (first, second)] == [8, 8]
    assert [report.day(day).events["new"] for day in (first, second)] == [1, 1]
    assert report.day(date(2026, 12, 3)).events_seen == 0

    [event] = _events(payload)
    cancelled = dataclasses.replace(event, status="cancelled", modification_number=event.modification_number + 1,
                                    signals=())  # a cancellation need not repeat the intervals
    report = ingest_events([cancelled], site, store, site_id=SITE_ID)
    assert [report.day(day).values_withdrawn for day in (first, second)] == [8, 8]
    assert [report.day(day).events["cancelled"] for day in (first, second)] == [1, 1]


def test_a_cancelled_event_reruns_only_the_days_it_covered(store, site):
    # one whole local day: 2026-12-01 00:00 to 2026-12-02 00:00 in Martinique (04:00 UTC to 04:00 UTC)
    payload = event_301("A", datetime(2026, 12, 1, 4, tzinfo=UTC), [0.1], duration="P1D")
    ingest_events(_events(payload), site, store, site_id=SITE_ID)
    [event] = _events(payload)
    cancelled = dataclasses.replace(event, status="cancelled", modification_number=event.modification_number + 1,
                                    signals=())  # a cancellation without intervals: days come from the store
    [change] = changes_of([cancelled], site, store, site_id=SITE_ID)
    assert change.kind == "cancelled" and change.days == (date(2026, 12, 1),)


def test_a_deleted_event_is_withdrawn_counted_and_logged_with_its_mark(store, site, caplog):
    ingest_events(_events(event_301("A", T, [0.10, 0.10]), event_301("B", T + 2 * HOUR, [0.20])), site, store,
                  site_id=SITE_ID)
    [record_a] = [record for record in EventLog(store.engine, site_id=SITE_ID).all() if record.event_id == "A"]
    with caplog.at_level("INFO", logger="cariflex_pipeline.openadr.ingest"):
        report = withdraw_deleted([record_a], site, store, now=T, site_id=SITE_ID)
    assert series(store, 84) == _hourly(T + 2 * HOUR, 1, 200.0)
    local_day = T.astimezone(site.tz).date()
    assert (report.cancelled, report.values_withdrawn) == (["A"], 8)
    assert (report.day(local_day).events["cancelled"], report.day(local_day).values_withdrawn) == (1, 8)
    assert "event 'A' of VTN 'vtn3' deleted: values withdrawn" in caplog.messages
    assert AbsenceLog(store.engine, site_id=SITE_ID).withdrawn_events() == {("vtn3", "A"): T}


def test_a_withdrawal_and_its_mark_land_together(store, site, monkeypatch):
    """Should marking the deletion fail, the values stay: the next listing withdraws them again, rather than the
    values being gone with nothing to say so (and nothing to give them back when the event reappears)."""
    ingest_events(_events(event_301("A", T, [0.10])), site, store, site_id=SITE_ID)
    [record] = EventLog(store.engine, site_id=SITE_ID).all()

    def lost_connection(self, *args, **kwargs):
        raise RuntimeError("connection lost while marking the withdrawal")

    monkeypatch.setattr(AbsenceLog, "withdrawn", lost_connection)
    with pytest.raises(RuntimeError, match="marking the withdrawal"):
        withdraw_deleted([record], site, store, now=T, site_id=SITE_ID)
    assert series(store, 84) == _hourly(T, 1, 100.0)


def test_reports_merge_by_adding_up(store, site):
    """A VEN merges the report of each poll (and of the deletions) into the one its asset shows."""
    first = ingest_events(_events(event_301("A", T, [0.10])), site, store, site_id=SITE_ID)
    second = ingest_events(_events(event_301("B", T + 2 * HOUR, [0.20]), event_301("A", T, [0.10])), site, store,
                           site_id=SITE_ID)
    total = IngestReport()
    total.merge(first)
    total.merge(second)
    local_day = T.astimezone(site.tz).date()
    assert (total.events_seen, total.new, total.unchanged) == (3, ["A", "B"], ["A"])
    assert (total.values_written, total.values_withdrawn) == (8, 0)
    day = total.day(local_day)
    assert (dict(day.events), day.values_written, day.values_withdrawn) == ({"new": 2, "unchanged": 1}, 8, 0)
    withdrawn = withdraw_deleted(EventLog(store.engine, site_id=SITE_ID).all(), site, store, now=T, site_id=SITE_ID)
    total.merge(withdrawn)
    assert (total.values_withdrawn, total.day(local_day).values_withdrawn) == (8, 8)
    assert sorted(total.cancelled) == ["A", "B"]
    ingest_events(_events(event_301("C", T + 4 * HOUR, [0.30])), site, store, site_id=SITE_ID)
    total.merge(withdraw_deleted([EventLog(store.engine, site_id=SITE_ID).latest("vtn3", "C")], site, store, now=T,
                                 site_id=SITE_ID))
    assert (total.values_withdrawn, total.day(local_day).values_withdrawn) == (12, 12)  # added, not replaced


def test_one_version_listed_twice_in_one_batch_is_ingested_once_as_first_listed(store, site):
    first, again = event_301("A", T, [0.10]), event_301("A", T, [0.90])  # same version, other values: a VTN's bug
    report = ingest_events(_events(first, again), site, store, site_id=SITE_ID)
    assert (report.events_seen, report.new, report.unchanged) == (2, ["A"], [])
    assert series(store, 84) == _hourly(T, 1, 100.0)
    assert audit_rows(store) == 1


def test_a_deletion_is_counted_on_the_local_day_of_the_values_it_withdrew(store, site):
    evening = datetime(2026, 12, 2, 1, tzinfo=UTC)  # 21:00 on 1 December in Martinique
    ingest_events(_events(event_301("A", evening, [0.10])), site, store, site_id=SITE_ID)
    report = withdraw_deleted([EventLog(store.engine, site_id=SITE_ID).latest("vtn3", "A")], site, store, now=T,
                              site_id=SITE_ID)
    assert {day: dict(figures.events) for day, figures in report.days.items()} == {date(2026, 12, 1): {"cancelled": 1}}
    assert report.day(date(2026, 12, 1)).values_withdrawn == 4


def test_a_2_0b_event_sent_again_is_unchanged_not_restored(store, site):
    """Only a 3.0.1 event can be withdrawn for being absent from listings; the same 2.0b version twice changes
    nothing."""
    [event] = _events(event_301("A", T, [0.10]))
    twice = dataclasses.replace(event, protocol="2.0b", program="oadr://martinique/price",
                                signals=tuple(dataclasses.replace(signal, signal_name="ELECTRICITY_PRICE",
                                                                  signal_type="price", unit="EUR/MWh",
                                                                  currency="EUR") for signal in event.signals))
    assert ingest_events([twice], site, store, site_id=SITE_ID).new == ["A"]
    assert ingest_events([twice], site, store, site_id=SITE_ID).unchanged == ["A"]


def test_a_rejected_event_is_logged_by_vtn_event_and_reason_and_counted_on_its_day(store, site, caplog):
    bad = event_301("bad", T, [0.10, "0.20"])
    also_bad = event_301("worse", T + 13 * HOUR, ["x"])  # 01:00 UTC, still the evening before in Martinique
    with caplog.at_level("ERROR", logger="cariflex_pipeline.openadr.ingest"):
        report = ingest_events(_events(bad, also_bad, event_301("good", T + 2 * HOUR, [0.30])), site, store,
                               site_id=SITE_ID)
    assert report.new == ["good"] and sorted(report.rejected) == ["bad", "worse"]
    assert ("VTN 'vtn3': event 'bad' rejected: signal PRICE, interval 1: value '0.20' is not a number"
            in caplog.messages)
    day = report.day(T.astimezone(site.tz).date())
    assert (day.events["rejected"], day.events["new"]) == (2, 1)


def test_an_event_whose_days_cannot_be_counted_is_rejected_on_no_day(store, site):
    """Times a parser let through but no arithmetic can hold (an interval ending past the year 9999) reject
    their event, counted on no day, and the others are ingested."""
    [good] = _events(event_301("good", T, [0.30]))
    signal = good.signals[0]
    edge = datetime.max.replace(tzinfo=UTC) - QUARTER
    beyond = dataclasses.replace(good, event_id="beyond", signals=(dataclasses.replace(
        signal, intervals=(dataclasses.replace(signal.intervals[0], start=edge, duration=2 * HOUR),)),))
    report = ingest_events([beyond, good], site, store, site_id=SITE_ID)
    assert report.new == ["good"]
    assert report.rejected["beyond"].startswith("cannot be ingested (OverflowError: ")
    assert {day: dict(figures.events) for day, figures in report.days.items()} == {
        T.astimezone(site.tz).date(): {"new": 1}}


def test_an_event_without_modification_time_is_numbered_0_then_1_when_it_changes(store, site):
    """A 3.0.1 VTN that gives no modificationDateTime: versions are numbered locally, from 0, one up per change
    of content, and the same content again is the same version."""
    def listing(value: float):
        payload = event_301("A", T, [value])
        del payload["modificationDateTime"]
        return _events(payload)

    log = EventLog(store.engine, site_id=SITE_ID)
    assert ingest_events(listing(0.10), site, store, site_id=SITE_ID).new == ["A"]
    assert log.latest("vtn3", "A").modification_number == 0
    assert ingest_events(listing(0.10), site, store, site_id=SITE_ID).unchanged == ["A"]
    assert ingest_events(listing(0.20), site, store, site_id=SITE_ID).modified == ["A"]
    assert log.latest("vtn3", "A").modification_number == 1
    assert series(store, 84) == _hourly(T, 1, 200.0)


def test_an_event_that_cannot_be_looked_up_is_rejected_with_every_reason_before_any_query(store, site):
    """Ids, program and version key the lookups and the audit row: an event whose own are unusable is refused with
    all its reasons, counted on its local day, and the event beside it is ingested."""
    [good] = _events(event_301("good", T, [0.30]))
    unusable = dataclasses.replace(good, event_id="x" * 190, program=["martinique-price"], modification_number=2**64)
    report = ingest_events([unusable, good], site, store, site_id=SITE_ID)
    assert report.new == ["good"] and report.events_seen == 2
    assert report.rejected["x" * 190] == "; ".join([
        "program ['martinique-price'] is not a string",
        "VTN id and event id are 194 characters together; at most 191 fit the event's data source name",
        "modification number 18446744073709551616 is not a 64-bit integer"])
    assert report.day(T.astimezone(site.tz).date()).events["rejected"] == 1
    assert audit_rows(store) == 1


def test_an_event_that_cannot_be_looked_up_is_counted_on_its_local_day(store, site):
    [evening] = _events(event_301("evening", datetime(2026, 12, 2, 1, tzinfo=UTC), [0.30]))  # 1 Dec, 21:00 local
    report = ingest_events([dataclasses.replace(evening, program=7)], site, store, site_id=SITE_ID)
    assert report.rejected == {"evening": "program 7 is not a string"}
    assert {day: dict(figures.events) for day, figures in report.days.items()} == {date(2026, 12, 1): {"rejected": 1}}
