"""Each crash of issue 9 through the real parse-and-store path: refused with the project's own error, naming the
VTN, the event and the field, and one bad event never stops the others of its page or message."""

from __future__ import annotations

import json

import pytest

from cariflex_pipeline.openadr.errors import MalformedMessageError, VtnAuthError, VtnError
from cariflex_pipeline.openadr.http import RetryPolicy
from cariflex_pipeline.openadr.ingest import ingest_events
from cariflex_pipeline.openadr.oadr3 import parse_events_json
from cariflex_pipeline.openadr.oadr20b import events_from_distribute, parse_vtn_message
from cariflex_pipeline.openadr.ven301 import Ven301, sync
from cariflex_pipeline_tests.openadr.helpers import SITE_ID, audit_rows, belief_count, next_day_start, series, slots
from cariflex_pipeline_tests.openadr.messages import PRICE_CONTEXT, H, distribute_xml, event_20b, event_301

VTN = "vtn3"


def _page(store, site, *items, text: str | None = None):
    return ingest_events(parse_events_json(text if text is not None else json.dumps(list(items)), VTN), site, store,
                         site_id=SITE_ID)


def _good_and(bad: dict, store, site, text: str | None = None):
    """A page of one good price event and `bad`: the report, after checking the good one landed alone."""
    start = next_day_start()
    good = event_301("good", start, [0.123])
    report = _page(store, site, good, bad, text=text)
    assert report.new == ["good"]
    assert series(store, 84) == slots(start, [123.0], 4) and belief_count(store) == 4 and audit_rows(store) == 1
    return report


def _bad(**fields) -> dict:
    event = event_301("bad", next_day_start() + 2 * H, [0.2])
    for name, value in fields.items():
        event[name] = value
    return event


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("programID", ["martinique-price"], "programID ['martinique-price'] is not a string"),
        ("programID", 10**30, "programID 1000000000000000000000000000000 is not a string"),
        ("payloadDescriptors", 7, "payloadDescriptors 7 is not a list"),
        ("intervalPeriod", {"start": "2026-12-01T00:00:00Z", "duration": "PT99999999999999999H"},
         "event intervalPeriod.duration: duration 'PT99999999999999999H' is out of range"),
        ("intervalPeriod", {"start": "9999-12-31T23:00:00Z", "duration": "PT2H"},
         "event intervalPeriod.start 9999-12-31T23:00:00+00:00 is not between 1970 and 2200"),
        ("intervalPeriod", {"start": "0001-01-01T00:00:00+01:00", "duration": "PT1H"},
         "event intervalPeriod.start 0001-01-01T00:00:00+01:00 is not between 1970 and 2200"),
        ("modificationDateTime", "9999-12-31T23:59:59-05:00", "modificationDateTime 9999-12-31T23:59:59-05:00"),
    ],
    ids=["programID-list", "programID-huge-int", "descriptors-number", "huge-duration", "year-9999", "year-0001",
         "modified-year-9999"],
)
def test_a_field_of_the_wrong_type_or_range_rejects_that_event_naming_the_field(field, value, reason, store, site):
    report = _good_and(_bad(**{field: value}), store, site)
    assert set(report.rejected) == {"bad"} and reason in report.rejected["bad"]
    assert [opt for (event_id, _version), opt in report.opt.items() if event_id == "bad"] == ["optOut"]


def test_an_event_id_longer_than_the_column_is_rejected_before_the_database(store, site):
    report = _good_and(event_301("x" * 201, next_day_start() + 2 * H, [0.2]), store, site)
    assert report.rejected == {"#1": "id has 201 characters (1..200 allowed)"}


@pytest.mark.parametrize("text", ["1" * 400, "1e308"], ids=["huge-int", "1e308-eur-per-kwh"])
def test_a_price_beyond_any_float_once_in_eur_per_mwh_is_rejected(text, store, site):
    bad = json.dumps(_bad()).replace("[0.2]", f"[{text}]")
    good = json.dumps(event_301("good", next_day_start(), [0.123]))
    report = _good_and({}, store, site, text=f"[{good}, {bad}]")
    assert report.rejected == {"bad": f"signal PRICE, interval 0: value {float(text)!r} is not finite in EUR/MWh"}


@pytest.mark.parametrize("levels", [255, 300, 900])
def test_deep_nesting_in_one_event_rejects_that_event(levels, store, site):
    report = _good_and(_bad(eventName=json.loads("[" * levels + "]" * levels)), store, site)
    assert report.rejected == {"bad": "event #1 nests deeper than 254 levels"}


@pytest.mark.parametrize(("levels", "rejected"), [(253, {}), (254, {"bad": "event #0 nests deeper than 254 levels"})])
def test_the_depth_bound_counts_the_event_itself(levels, rejected, store, site):
    """The event object is one level: a field nested 253 deep makes an event of exactly 254."""
    report = _page(store, site, _bad(eventName=json.loads("[" * levels + "]" * levels)))
    assert report.rejected == rejected and report.new == ([] if rejected else ["bad"])


def test_deep_nesting_beside_a_huge_integer_is_still_refused_by_its_depth(store, site):
    """orjson refuses both; json writes the huge integer only after the depth is known to be safe."""
    report = _good_and(_bad(eventName=json.loads("[" * 300 + "]" * 300), huge=10**30), store, site)
    assert report.rejected == {"bad": "event #1 nests deeper than 254 levels"}


def test_deeply_nested_json_from_the_vtn_is_malformed_not_a_recursion_error(vtn3, store, site):
    vtn3.raw_events = "[" * 100_000 + "]" * 100_000
    ven = Ven301(vtn3.url, vtn3.client_id, vtn3.client_secret, vtn_id=VTN, programs=["martinique-price"])
    with pytest.raises(MalformedMessageError, match="malformed JSON"):
        sync(ven, site, store, site_id=SITE_ID)
    assert belief_count(store) == 0 and audit_rows(store) == 0


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"expires_in": 10**400}, "expires_in inf is not a number of seconds in 0..316224000"),
        ({"expires_in": "3600"}, "expires_in '3600' is not a number of seconds"),
        ({"access_token": {"token": "x"}}, "access_token is not a bearer token (a dict"),
        ({"access_token": "abc\r\nX-Injected: 1"}, "access_token is not a bearer token (a str"),
        ({"token_type": ["Bearer"]}, "token_type ['Bearer'] is not Bearer"),
    ],
    ids=["expires-huge", "expires-string", "token-object", "token-header-injection", "type-list"],
)
def test_token_fields_are_type_checked(fields, reason, vtn3):
    vtn3.token_fields = fields
    ven = Ven301(vtn3.url, vtn3.client_id, vtn3.client_secret, vtn_id=VTN, programs=["martinique-price"])
    with pytest.raises(VtnAuthError, match="token at") as error:
        ven.fetch_event_objects()
    assert reason in str(error.value)


def test_paging_stops_with_a_clear_error_when_the_vtn_ignores_skip(vtn3):
    vtn3.events = [event_301(f"price-{index}", next_day_start(), [0.1]) for index in range(3)]
    vtn3.ignore_skip = True
    ven = Ven301(vtn3.url, vtn3.client_id, vtn3.client_secret, vtn_id=VTN, programs=["martinique-price"],
                 page_size=2, retry=RetryPolicy(attempts=1))
    with pytest.raises(VtnError, match=r"the page at skip=2 repeats an earlier page \(the VTN ignores skip\?\)"):
        ven.fetch_event_objects()
    assert len(vtn3.event_requests) == 2


def test_paging_stops_at_the_bound(vtn3):
    vtn3.events = [event_301(f"price-{index}", next_day_start(), [0.1]) for index in range(7)]
    ven = Ven301(vtn3.url, vtn3.client_id, vtn3.client_secret, vtn_id=VTN, programs=["martinique-price"],
                 page_size=2, max_pages=3)
    with pytest.raises(VtnError, match="more than 3 pages of 2; listing stopped"):
        ven.fetch_event_objects()


# --- 2.0b ---------------------------------------------------------------------------------------------------------
def _message(*events) -> str:
    return distribute_xml(*events)


def test_an_xml_encoding_expat_cannot_read_is_malformed_not_a_value_error(store):
    start = next_day_start()
    xml = _message(event_20b("a", PRICE_CONTEXT, "ELECTRICITY_PRICE", "price", [(start, H, 1.0)]))
    utf7 = xml.replace('encoding="utf-8"', 'encoding="utf-7"', 1)
    assert utf7 != xml
    with pytest.raises(MalformedMessageError, match="unsupported XML encoding"):
        parse_vtn_message(utf7)
    assert audit_rows(store) == 0


def test_one_20b_event_openleadr_cannot_read_rejects_that_event_only(store, site):
    start = next_day_start()
    good = event_20b("good", PRICE_CONTEXT, "ELECTRICITY_PRICE", "price", [(start, H, 123.0)])
    bad = event_20b("bad", PRICE_CONTEXT, "ELECTRICITY_PRICE", "price", [(start + 2 * H, H, 1.0)])
    xml = _message(good, bad)
    bad_part = xml[xml.index("<ei:eventID>bad</ei:eventID>"):]
    # a duration beyond any timedelta (schema-valid), and a start in year 9999, in the bad event only
    evil = bad_part.replace("<ei:duration>PT1H</ei:duration>", "<ei:duration>P999999999D</ei:duration>", 1)
    evil = evil.replace(str((start + 2 * H).year), "9999")
    assert evil != bad_part
    _type, payload, tree = parse_vtn_message(xml.replace(bad_part, evil))
    report = ingest_events(events_from_distribute(payload, tree), site, store, site_id=SITE_ID)
    assert report.new == ["good"] and set(report.rejected) == {"bad"}
    assert series(store, 84) == slots(start, [123.0], 4) and audit_rows(store) == 1
    assert report.opt[("bad", 0)] == "optOut"


def test_rejections_name_the_vtn_in_the_log(store, site, caplog):
    _good_and(_bad(programID=["x"]), store, site)
    assert any("VTN 'vtn3': event 'bad' rejected: programID ['x'] is not a string" in record.getMessage()
               for record in caplog.records)
