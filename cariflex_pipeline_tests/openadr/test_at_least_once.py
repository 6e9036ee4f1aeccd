"""At least once, in order: a change survives a crash between poll and commit; a 3.0.1 event is deleted only
after complete listings have missed it for a while, and gets its values back when it returns; versions are
ordered by full-precision modification times or by a stored local sequence."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cariflex_pipeline.openadr import ven20b
from cariflex_pipeline.openadr.http import RetryPolicy
from cariflex_pipeline.openadr.ingest import ingest_events
from cariflex_pipeline.openadr.oadr3 import parse_events_json
from cariflex_pipeline.openadr.ven20b import Ven20b, poll_and_ingest
from cariflex_pipeline.openadr.ven301 import DELETE_AFTER, Ven301, sync
from cariflex_pipeline_tests.openadr.helpers import SITE_ID, next_day_start, series, slots
from cariflex_pipeline_tests.openadr.messages import event_301
from cariflex_pipeline_tests.openadr.vtn20b import PRICE_CONTEXT

H = timedelta(hours=1)
PROGRAMS = ["martinique-price"]


def test_a_crash_between_poll_and_commit_costs_one_poll_not_the_change(vtn, store, site, monkeypatch):
    ven = Ven20b(vtn.url, "cariflex-martinique", store.engine)
    ven_id = ven.register().ven_id
    poll_and_ingest(ven, site, store, site_id=SITE_ID)  # the first fetch resyncs (nothing yet); the next ones poll
    start = next_day_start()
    event_id = vtn.add_event(ven_id, "ELECTRICITY_PRICE", "price", PRICE_CONTEXT, [(start, H, 150.0)])
    ingest = ven20b.ingest_events

    def crash(*args, **kwargs):
        raise RuntimeError("killed after the poll")

    monkeypatch.setattr(ven20b, "ingest_events", crash)
    with pytest.raises(RuntimeError, match="killed after the poll"):
        poll_and_ingest(ven, site, store, site_id=SITE_ID)  # the VTN handed the event over, once
    assert vtn.opt_answers == []  # nothing promised for values that were never committed
    monkeypatch.setattr(ven20b, "ingest_events", ingest)

    report = poll_and_ingest(ven, site, store, site_id=SITE_ID)  # a restarted VEN: its next fetch resyncs
    assert report.new == [event_id]
    assert series(store, 84) == slots(start, [150.0], 4)
    assert vtn.opt_answers == [(ven_id, event_id, "optIn")]
    assert ven.state.open_poll is None


def test_a_periodic_resync_reconciles_what_polls_missed(vtn, store, site):
    ven = Ven20b(vtn.url, "cariflex-martinique", store.engine, resync_interval=timedelta(minutes=15))
    ven_id = ven.register().ven_id
    now = datetime.now(UTC)
    poll_and_ingest(ven, site, store, now=now, site_id=SITE_ID)
    start = next_day_start()
    event_id = vtn.add_event(ven_id, "ELECTRICITY_PRICE", "price", PRICE_CONTEXT, [(start, H, 150.0)])
    ven.poll(now)  # a poll whose answer some other process took and lost
    assert poll_and_ingest(ven, site, store, now=now + timedelta(minutes=1), site_id=SITE_ID).new == []
    assert poll_and_ingest(ven, site, store, now=now + timedelta(minutes=15), site_id=SITE_ID).new == [event_id]


def _ven(vtn3) -> Ven301:
    return Ven301(vtn3.url, vtn3.client_id, vtn3.client_secret, vtn_id="vtn3", programs=PROGRAMS,
                  retry=RetryPolicy(attempts=2, sleep=lambda _seconds: None))


def test_an_event_absent_from_one_listing_keeps_its_values(vtn3, store, site):
    start = next_day_start()
    listed = [event_301("price-1", start, [0.2]), event_301("price-2", start + H, [0.3])]
    vtn3.events = list(listed)
    ven, now = _ven(vtn3), datetime.now(UTC)
    sync(ven, site, store, now=now, site_id=SITE_ID)
    vtn3.events = listed[1:]  # one listing without price-1 (a VTN that lost it for a moment)
    assert sync(ven, site, store, now=now + timedelta(minutes=1), site_id=SITE_ID).cancelled == []
    vtn3.events = listed
    report = sync(ven, site, store, now=now + 2 * DELETE_AFTER, site_id=SITE_ID)
    assert report.cancelled == [] and report.unchanged == ["price-1", "price-2"]
    assert series(store, 84) == slots(start, [200.0, 300.0], 4)


def test_a_reappearing_event_gets_its_values_back(vtn3, store, site):
    start = next_day_start()
    listed = [event_301("price-1", start, [0.2]), event_301("price-2", start + H, [0.3])]
    vtn3.events = list(listed)
    ven, now = _ven(vtn3), datetime.now(UTC)
    sync(ven, site, store, now=now, site_id=SITE_ID)
    vtn3.events = listed[1:]
    sync(ven, site, store, now=now, site_id=SITE_ID)
    # unlisted for the configured time: deleted
    deleted = sync(ven, site, store, now=now + DELETE_AFTER, site_id=SITE_ID)
    assert deleted.cancelled == ["price-1"] and series(store, 84) == slots(start + H, [300.0], 4)

    vtn3.events = listed  # the same version again
    back = sync(ven, site, store, now=now + 2 * DELETE_AFTER, site_id=SITE_ID)
    assert back.new == ["price-1"] and back.cancelled == []
    assert series(store, 84) == slots(start, [200.0, 300.0], 4)
    assert sync(ven, site, store, now=now + 3 * DELETE_AFTER, site_id=SITE_ID).unchanged == ["price-1", "price-2"]


def test_a_page_of_junk_does_not_make_real_events_look_deleted(vtn3, store, site):
    start = next_day_start()
    vtn3.events = [event_301("price-1", start, [0.2])]
    ven, now = _ven(vtn3), datetime.now(UTC)
    sync(ven, site, store, now=now, site_id=SITE_ID)
    vtn3.raw_events = json.dumps([{"programID": "martinique-price"}] * 40 + [7, None])  # junk instead of events
    for minutes in (0, 30, 60):
        assert sync(ven, site, store, now=now + timedelta(minutes=minutes), site_id=SITE_ID).cancelled == []
    assert series(store, 84) == slots(start, [200.0], 4)


def _events(*payloads: dict):
    return parse_events_json(json.dumps(list(payloads)), "vtn3")


def test_a_change_a_fraction_of_a_second_later_is_newer(store, site):
    start = next_day_start()
    first = event_301("price-1", start, [0.2], modified=datetime(2026, 11, 27, 16, 0, 0, 100_000, tzinfo=UTC))
    second = event_301("price-1", start, [0.25], modified=datetime(2026, 11, 27, 16, 0, 0, 900_000, tzinfo=UTC))
    ingest_events(_events(first), site, store, site_id=SITE_ID)
    report = ingest_events(_events(second), site, store, site_id=SITE_ID)
    assert report.modified == ["price-1"]
    assert series(store, 84) == slots(start, [250.0], 4)
    assert ingest_events(_events(first), site, store, site_id=SITE_ID).stale == ["price-1"]  # the older one, seen late


def test_without_modification_times_versions_follow_a_stored_sequence(store, site):
    start = next_day_start()

    def version(value: float) -> dict:
        payload = event_301("price-1", start, [value])
        del payload["modificationDateTime"]
        return payload

    values = [0.2, 0.21, 0.2, 0.3]  # every one a change of content, in this order
    for value in values:
        report = ingest_events(_events(version(value)), site, store, site_id=SITE_ID)
        assert report.modified == ["price-1"] or report.new == ["price-1"]
        assert series(store, 84) == slots(start, [value * 1000], 4)
    assert ingest_events(_events(version(0.3)), site, store, site_id=SITE_ID).unchanged == ["price-1"]
