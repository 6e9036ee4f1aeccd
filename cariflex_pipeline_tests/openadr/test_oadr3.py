"""The 3.0.1 VEN against a local test VTN whose answers follow openadr3-3.0.1.yaml."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cariflex_pipeline.openadr.durations import parse_duration, parse_moment
from cariflex_pipeline.openadr.errors import VtnAuthError, VtnError
from cariflex_pipeline.openadr.http import RetryPolicy
from cariflex_pipeline.openadr.ingest import source_name
from cariflex_pipeline.openadr.ven301 import DELETE_AFTER, Ven301, sync
from cariflex_pipeline_tests.openadr.helpers import SITE_ID, Q, audit_rows, belief_count, next_day_start, series, slots
from cariflex_pipeline_tests.openadr.messages import event_301, iso
from cariflex_pipeline_tests.openadr.vtn301 import problem

PROGRAMS = ["martinique-price", "martinique-load-control", "martinique-demand-response"]


class FakeClock:
    """Monotonic clock the test moves by hand (token expiry without waiting)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _ven(vtn3, **kwargs) -> Ven301:
    kwargs.setdefault("retry", RetryPolicy(attempts=3, sleep=lambda _seconds: None))
    return Ven301(vtn3.url, vtn3.client_id, vtn3.client_secret, vtn_id="vtn3", programs=PROGRAMS, **kwargs)


def test_token_flow_and_values_of_price_load_control_and_simple(vtn3, store, site):
    start = next_day_start()
    vtn3.events = [
        event_301("price-1", start, [0.25, 0.3125]),  # EUR/kWh -> EUR/MWh
        event_301("load-1", start, [100, 55.5], program="martinique-load-control",
                  payload_type="DISPATCH_SETPOINT_RELATIVE", units="PERCENT", currency=None, duration="PT30M"),
        event_301("dr-1", start, [0, 2, 1], program="martinique-demand-response", payload_type="SIMPLE",
                  units=None, currency=None, duration="PT15M"),
    ]
    ven = _ven(vtn3)
    report = sync(ven, site, store, site_id=SITE_ID)
    assert sorted(report.new) == ["dr-1", "load-1", "price-1"] and report.rejected == {}
    assert series(store, 84) == slots(start, [250.0, 312.5], 4)
    assert series(store, 86) == slots(start, [100.0, 55.5], 2)
    assert series(store, 87) == slots(start, [0.0, 2.0, 1.0], 1)
    sources = set(store.read_latest([84, 86, 87])["source"])
    assert sources == {source_name("vtn3", event_id) for event_id in ("price-1", "load-1", "dr-1")}
    # one token for all requests, each filtered by program
    assert vtn3.token_requests == 1
    assert sorted(query["programID"][0] for query in vtn3.event_requests) == sorted(PROGRAMS)
    assert all(query["limit"] == ["50"] for query in vtn3.event_requests)
    again = sync(ven, site, store, site_id=SITE_ID)
    assert sorted(again.unchanged) == ["dr-1", "load-1", "price-1"] and again.values_written == 0
    assert vtn3.token_requests == 1


def test_token_refreshed_on_expiry(vtn3):
    vtn3.expires_in = 60
    clock = FakeClock()
    ven = _ven(vtn3, clock=clock, token_margin_seconds=10)
    ven.fetch_event_objects()
    clock.now += 49  # still valid (60 s minus a 10 s margin)
    ven.fetch_event_objects()
    assert vtn3.token_requests == 1
    clock.now += 2
    ven.fetch_event_objects()
    assert vtn3.token_requests == 2


def test_token_refreshed_on_401(vtn3):
    ven = _ven(vtn3)
    ven.fetch_event_objects()
    vtn3.revoke_tokens()  # the VTN forgets the token before it expires
    assert ven.fetch_event_objects() == []
    assert vtn3.token_requests == 2


def test_bad_credentials_named_without_the_secret(vtn3):
    ven = Ven301(vtn3.url, "ven_client", "wrong-secret", programs=PROGRAMS)
    with pytest.raises(VtnAuthError) as error:
        ven.fetch_event_objects()
    assert "unknown client or bad secret" in str(error.value) and "ven_client" in str(error.value)
    assert "wrong-secret" not in str(error.value) and "wrong-secret" not in repr(ven)


def test_more_than_50_events_over_several_pages_deduplicated(vtn3, store, site):
    start = next_day_start()
    vtn3.events = [event_301(f"price-{index:03d}", start + index * timedelta(hours=1), [0.1 + index / 1000])
                   for index in range(120)]
    vtn3.overlap_pages = True  # no order promised: a repeat across pages
    report = sync(_ven(vtn3), site, store, site_id=SITE_ID)
    price_requests = [query for query in vtn3.event_requests if query["programID"] == ["martinique-price"]]
    assert [query["skip"] for query in price_requests] == [["0"], ["50"], ["100"]]
    assert len(report.new) == 120
    values = series(store, 84)
    assert len(values) == 120 * 4
    assert values[0] == (start, pytest.approx(100.0)) and values[-1] == (start + 120 * timedelta(hours=1) - Q,
                                                                          pytest.approx(219.0))


def test_interval_periods_inherited_and_overridden(vtn3, store, site):
    start = next_day_start()
    event = event_301("price-x", start, [0.2, 0.3, 0.4], duration="PT30M")
    event["intervals"][2]["intervalPeriod"] = {"start": iso(start + timedelta(hours=2)), "duration": "PT1H"}
    vtn3.events = [event]
    sync(_ven(vtn3), site, store, site_id=SITE_ID)
    assert series(store, 84) == slots(start, [200.0, 300.0], 2) + slots(start + timedelta(hours=2), [400.0], 4)


def test_iso_8601_durations():
    assert parse_duration("PT15M") == timedelta(minutes=15)
    assert parse_duration("P1DT2H") == timedelta(days=1, hours=2)
    assert parse_duration("P1W") == timedelta(weeks=1)
    assert parse_duration("PT0S") == timedelta(0)
    assert parse_duration("PT1.5S") == timedelta(seconds=1.5)
    for bad in ("P1M", "P1Y", "PT", "15M", "", "P"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_problem_bodies_are_surfaced(vtn3, store):
    vtn3.fail_next = [(403, problem(403, "Forbidden", "VEN ven_client may not read program martinique-price"))]
    with pytest.raises(VtnError) as error:
        _ven(vtn3).fetch_event_objects()
    assert error.value.status == 403
    assert "Forbidden: VEN ven_client may not read program martinique-price" in str(error.value)
    assert error.value.problem["title"] == "Forbidden"
    assert audit_rows(store) == 0


def test_5xx_retried_with_backoff_then_succeeds(vtn3, store, site):
    start = next_day_start()
    vtn3.events = [event_301("price-1", start, [0.2])]
    sleeps: list[float] = []
    vtn3.fail_next = [(503, problem(503, "Service Unavailable", "maintenance")),
                      (500, problem(500, "Internal Server Error", "database down"))]
    ven = _ven(vtn3, retry=RetryPolicy(attempts=4, backoff_seconds=0.5, sleep=sleeps.append))
    sync(ven, site, store, site_id=SITE_ID)
    assert sleeps == [0.5, 1.0]
    assert series(store, 84) == slots(start, [200.0], 4)


def test_5xx_persisting_fails_clearly_and_stored_values_stay(vtn3, store, site):
    start = next_day_start()
    vtn3.events = [event_301("price-1", start, [0.2])]
    ven = _ven(vtn3, retry=RetryPolicy(attempts=3, sleep=lambda _seconds: None))
    sync(ven, site, store, site_id=SITE_ID)
    vtn3.fail_next = [(503, problem(503, "Service Unavailable", "maintenance"))] * 3
    with pytest.raises(VtnError) as error:
        sync(ven, site, store, site_id=SITE_ID)
    assert "failed after 3 attempts" in str(error.value) and "Service Unavailable: maintenance" in str(error.value)
    assert series(store, 84) == slots(start, [200.0], 4)


def test_timeout_retried_then_clear_failure(vtn3, store, site):
    start = next_day_start()
    vtn3.events = [event_301("price-1", start, [0.2])]
    sync(_ven(vtn3), site, store, site_id=SITE_ID)
    vtn3.delay_seconds = 1.0
    ven = _ven(vtn3, timeout_seconds=0.2, retry=RetryPolicy(attempts=2, sleep=lambda _seconds: None))
    with pytest.raises(VtnError) as error:
        sync(ven, site, store, site_id=SITE_ID)
    assert "timed out" in str(error.value) and "failed after 2 attempts" in str(error.value)
    assert series(store, 84) == slots(start, [200.0], 4)
    assert belief_count(store) == 4


def test_deleted_event_withdraws_its_future_values(vtn3, store, site):
    start = next_day_start()
    vtn3.events = [event_301("price-1", start, [0.2]), event_301("price-2", start + timedelta(hours=1), [0.3])]
    ven = _ven(vtn3)
    now = datetime.now(UTC)
    sync(ven, site, store, now=now, site_id=SITE_ID)
    vtn3.events = vtn3.events[1:]
    assert sync(ven, site, store, now=now, site_id=SITE_ID).cancelled == []  # absent from one listing: not deleted yet
    report = sync(ven, site, store, now=now + DELETE_AFTER, site_id=SITE_ID)
    assert report.cancelled == ["price-1"]
    assert series(store, 84) == slots(start + timedelta(hours=1), [300.0], 4)


def test_modified_event_replaces_values(vtn3, store, site):
    start = next_day_start()
    vtn3.events = [event_301("price-1", start, [0.2, 0.25])]
    ven = _ven(vtn3)
    sync(ven, site, store, site_id=SITE_ID)
    vtn3.events = [event_301("price-1", start, [0.18], modified=start - timedelta(hours=3))]
    report = sync(ven, site, store, site_id=SITE_ID)
    assert report.modified == ["price-1"]
    assert series(store, 84) == slots(start, [180.0], 4)


def test_targets_filter_is_sent(vtn3, store, site):
    start = next_day_start()
    ours = event_301("price-ours", start, [0.2])
    ours["targets"] = [{"type": "GROUP", "values": ["cariflex-martinique"]}]
    theirs = event_301("price-theirs", start, [0.9])
    theirs["targets"] = [{"type": "GROUP", "values": ["guadeloupe"]}]
    vtn3.events = [ours, theirs]
    report = sync(_ven(vtn3, targets=[("GROUP", ["cariflex-martinique"])]), site, store, site_id=SITE_ID)
    assert report.new == ["price-ours"]
    assert all(query["targetType"] == ["GROUP"] and query["targetValues"] == ["cariflex-martinique"]
               for query in vtn3.event_requests)
    assert series(store, 84) == slots(start, [200.0], 4)


def test_date_times_of_both_protocols_are_read_by_one_rule():
    problems: list[str] = []
    aware = parse_moment("2026-11-28T10:00:00Z", "createdDateTime", problems)
    assert aware == datetime(2026, 11, 28, 10, tzinfo=UTC) and problems == []
    assert parse_moment(aware, "dtstart", problems) is aware and problems == []  # 2.0b: openleadr parsed it already
    assert parse_moment(None, "modificationDateTime", problems) is None and problems == []
    assert parse_moment("yesterday", "intervalPeriod.start", problems) is None
    naive = parse_moment(datetime(2026, 11, 28, 10), "activePeriod dtstart", problems)
    assert naive == datetime(2026, 11, 28, 10)
    assert problems == ["intervalPeriod.start 'yesterday' is not an ISO 8601 date-time",
                        "activePeriod dtstart: naive datetime '2026-11-28 10:00:00' (no time zone)"]
