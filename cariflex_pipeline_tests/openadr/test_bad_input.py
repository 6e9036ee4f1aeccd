"""Every bad input of issue 3: the error it raises (naming the event where there is one), and that nothing of
the bad event is written (neither beliefs nor audit rows), while good events of the same message are."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cariflex_pipeline.openadr.errors import MalformedMessageError, UnsafeXmlError, VtnError
from cariflex_pipeline.openadr.http import RetryPolicy
from cariflex_pipeline.openadr.ingest import ingest_events
from cariflex_pipeline.openadr.oadr3 import parse_events_json
from cariflex_pipeline.openadr.oadr20b import events_from_distribute, parse_vtn_message
from cariflex_pipeline.openadr.ven20b import Ven20b, sync
from cariflex_pipeline_tests.openadr.helpers import SITE_ID, audit_rows, belief_count, next_day_start, series, slots
from cariflex_pipeline_tests.openadr.messages import (
    DR_CONTEXT,
    PRICE_CONTEXT,
    H,
    distribute_xml,
    event_20b,
    event_301,
    iso,
)

GOOD_ID = "good-price"


def _ingest_xml(xml: str, site, store):
    message_type, payload, tree = parse_vtn_message(xml)
    assert message_type == "oadrDistributeEvent"
    return ingest_events(events_from_distribute(payload, tree), site, store, site_id=SITE_ID)


def _good(start: datetime):
    return event_20b(GOOD_ID, PRICE_CONTEXT, "ELECTRICITY_PRICE", "price", [(start, H, 123.0)])


def _assert_only_good_written(store, start) -> None:
    assert series(store, 84) == slots(start, [123.0], 4)
    assert belief_count(store) == 4
    assert audit_rows(store) == 1


def _assert_nothing_written(store) -> None:
    assert belief_count(store) == 0 and audit_rows(store) == 0


# --- malformed and unsafe XML -------------------------------------------------------------------------------
def test_malformed_xml_is_refused(store):
    xml = distribute_xml(_good(next_day_start()))
    with pytest.raises(MalformedMessageError, match="malformed XML"):
        parse_vtn_message(xml[: len(xml) // 2])
    _assert_nothing_written(store)


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<oadr:oadrPayload xmlns:oadr="http://openadr.org/oadr-2.0b/2012/07">&lol2;</oadr:oadrPayload>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<oadr:oadrPayload xmlns:oadr="http://openadr.org/oadr-2.0b/2012/07">&xxe;</oadr:oadrPayload>"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE oadrPayload SYSTEM "http://127.0.0.1:9/evil.dtd">
<oadr:oadrPayload xmlns:oadr="http://openadr.org/oadr-2.0b/2012/07"/>"""


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD],
                         ids=["entity-declarations", "external-entity", "external-dtd"])
def test_entities_and_dtds_are_refused(xml, store):
    with pytest.raises(UnsafeXmlError, match="refused XML"):
        parse_vtn_message(xml)
    _assert_nothing_written(store)


def test_entity_inside_a_real_message_is_refused(store):
    xml = distribute_xml(_good(next_day_start()))
    body = xml.split("?>", 1)[1]
    evil = ('<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/hostname">]>' +
            body.replace("MARTINIQUE_VTN", "&x;", 1))
    with pytest.raises(UnsafeXmlError):
        parse_vtn_message(evil)
    _assert_nothing_written(store)


# --- values ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad_value", ["NaN", "INF", "-INF"])
def test_nan_or_inf_rejects_that_event_only(bad_value, store, site):
    start = next_day_start()
    bad = event_20b("bad-price", PRICE_CONTEXT, "ELECTRICITY_PRICE", "price", [(start, H, 777.0)])
    xml = distribute_xml(_good(start), bad).replace("<ei:value>777.0</ei:value>", f"<ei:value>{bad_value}</ei:value>")
    report = _ingest_xml(xml, site, store)
    assert set(report.rejected) == {"bad-price"} and "is not finite" in report.rejected["bad-price"]
    _assert_only_good_written(store, start)


def test_wrong_value_type_in_20b_fails_the_schema(store):
    start = next_day_start()
    xml = distribute_xml(_good(start)).replace("<ei:value>123.0</ei:value>", "<ei:value>cheap</ei:value>")
    with pytest.raises(MalformedMessageError, match=r"not a valid OpenADR 2\.0b message"):
        parse_vtn_message(xml)
    _assert_nothing_written(store)


@pytest.mark.parametrize("bad_value", ["0.2", True, None, {"x": 1, "y": 2}, float("nan")])
def test_wrong_value_type_in_301_rejects_that_event_only(bad_value, store, site):
    start = next_day_start()
    good = event_301("good", start, [0.123])
    bad = event_301("bad", start + H, [bad_value])
    events = parse_events_json(json.dumps([good, bad]), "vtn3")
    report = ingest_events(events, site, store, site_id=SITE_ID)
    assert set(report.rejected) == {"bad"}
    assert "is not a number" in report.rejected["bad"] or "is not finite" in report.rejected["bad"]
    assert series(store, 84) == slots(start, [123.0], 4) and audit_rows(store) == 1


def test_malformed_json_is_refused(store):
    with pytest.raises(MalformedMessageError, match="VTN 'vtn3': malformed JSON"):
        parse_events_json('[{"id": "e1", "programID": ', "vtn3")
    with pytest.raises(MalformedMessageError, match="VTN 'vtn3': expected a JSON array"):
        parse_events_json('{"id": "e1"}', "vtn3")
    _assert_nothing_written(store)


def test_out_of_range_level_rejects_the_event(store, site):
    start = next_day_start()
    bad = event_20b("bad-level", DR_CONTEXT, "simple", "level", [(start, H, 7)])
    report = _ingest_xml(distribute_xml(_good(start), bad), site, store)
    assert "above 3" in report.rejected["bad-level"]
    _assert_only_good_written(store, start)


# --- signals, units, currencies ---------------------------------------------------------------------------------
def test_unknown_signal_type_is_ignored_with_a_warning(store, site):
    start = next_day_start()
    odd = event_20b("odd", PRICE_CONTEXT, "ELECTRICITY_PRICE", "priceRelative", [(start, H, 0.1)])
    report = _ingest_xml(distribute_xml(_good(start), odd), site, store)
    assert report.rejected == {} and any("priceRelative" in warning for warning in report.warnings)
    assert series(store, 84) == slots(start, [123.0], 4)


def test_unknown_payload_type_is_ignored_with_a_warning(store, site):
    start = next_day_start()
    events = parse_events_json(json.dumps([event_301("good", start, [0.123]),
                                           event_301("odd", start, [5], payload_type="GHG")]), "vtn3")
    report = ingest_events(events, site, store, site_id=SITE_ID)
    assert report.rejected == {} and any("GHG" in warning for warning in report.warnings)
    assert series(store, 84) == slots(start, [123.0], 4)


@pytest.mark.parametrize(
    ("measurement", "reason"),
    [
        ({"name": "customUnit", "description": "therm price", "unit": "EUR/therm", "scale": "none"}, "unknown unit"),
        ({"name": "currencyPerKWh", "description": "currencyPerKWh", "unit": "USD", "scale": "none"},
         "unknown currency 'USD'"),
        ({"name": "currencyPerKWh", "description": "currencyPerKWh", "unit": "EUR", "scale": "k"}, "unknown unit"),
    ],
    ids=["unit", "currency", "scale"],
)
def test_unknown_unit_or_currency_rejects_that_event_naming_it(measurement, reason, store, site):
    start = next_day_start()
    bad = event_20b("bad-unit", PRICE_CONTEXT, "ELECTRICITY_PRICE", "price", [(start + H, H, 0.2)],
                    measurement=measurement)
    report = _ingest_xml(distribute_xml(_good(start), bad), site, store)
    assert set(report.rejected) == {"bad-unit"} and reason in report.rejected["bad-unit"]
    _assert_only_good_written(store, start)


def test_eur_per_kwh_item_base_is_converted(store, site):
    start = next_day_start()
    event = event_20b("kwh-price", PRICE_CONTEXT, "ELECTRICITY_PRICE", "price", [(start, H, 0.2125)],
                      measurement={"name": "currencyPerKWh", "description": "currencyPerKWh", "unit": "EUR",
                                   "scale": "none"})
    _ingest_xml(distribute_xml(event), site, store)
    assert series(store, 84) == slots(start, [212.5], 4)


@pytest.mark.parametrize(("units", "currency", "reason"),
                         [("KWH", "USD", "unknown currency 'USD'"), ("BTU", "EUR", "unknown unit")])
def test_unknown_unit_or_currency_in_301(units, currency, reason, store, site):
    start = next_day_start()
    events = parse_events_json(json.dumps([event_301("good", start, [0.123]),
                                           event_301("bad", start + H, [0.2], units=units, currency=currency)]),
                               "vtn3")
    report = ingest_events(events, site, store, site_id=SITE_ID)
    assert set(report.rejected) == {"bad"} and reason in report.rejected["bad"]
    assert series(store, 84) == slots(start, [123.0], 4) and audit_rows(store) == 1


# --- times --------------------------------------------------------------------------------------------------------
def test_naive_datetime_in_20b_rejects_the_event(store, site):
    start = next_day_start()
    bad = event_20b("naive", PRICE_CONTEXT, "ELECTRICITY_PRICE", "price", [(start + 2 * H, H, 1.0)])
    stamp = (start + 2 * H).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    xml = distribute_xml(_good(start), bad).replace(stamp, stamp[:-1])
    report = _ingest_xml(xml, site, store)
    assert set(report.rejected) == {"naive"} and "naive datetime" in report.rejected["naive"]
    _assert_only_good_written(store, start)


def test_naive_datetime_in_301_rejects_the_event(store, site):
    start = next_day_start()
    bad = event_301("naive", start + H, [0.2])
    bad["intervalPeriod"]["start"] = iso(start + H).removesuffix("Z")
    report = ingest_events(parse_events_json(json.dumps([event_301("good", start, [0.123]), bad]), "vtn3"),
                           site, store, site_id=SITE_ID)
    assert set(report.rejected) == {"naive"} and "naive datetime" in report.rejected["naive"]
    assert series(store, 84) == slots(start, [123.0], 4) and audit_rows(store) == 1


def test_overlapping_intervals_reject_the_event(store, site):
    start = next_day_start()
    bad = event_20b("overlap", PRICE_CONTEXT, "ELECTRICITY_PRICE", "price",
                    [(start + H, H, 1.0), (start + H + timedelta(minutes=30), H, 2.0)])
    report = _ingest_xml(distribute_xml(_good(start), bad), site, store)
    assert set(report.rejected) == {"overlap"} and "overlaps" in report.rejected["overlap"]
    _assert_only_good_written(store, start)


def test_overlapping_intervals_in_301_reject_the_event(store, site):
    start = next_day_start()
    bad = event_301("overlap", start + H, [0.2, 0.3])
    bad["intervals"][1]["intervalPeriod"] = {"start": iso(start + H + timedelta(minutes=15)), "duration": "PT1H"}
    report = ingest_events(parse_events_json(json.dumps([event_301("good", start, [0.123]), bad]), "vtn3"),
                           site, store, site_id=SITE_ID)
    assert set(report.rejected) == {"overlap"} and "overlaps" in report.rejected["overlap"]
    assert audit_rows(store) == 1


# --- a misbehaving 2.0b VTN over HTTP ----------------------------------------------------------------------------
class ScriptedVtn:
    """A 2.0b endpoint answering from a script: (status, body, delay) per request, for faults OpenLEADR won't make."""

    def __init__(self) -> None:
        self.script: list[tuple[int, str, float]] = []
        self.requests = 0
        self.release = threading.Event()
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                return

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                scripted.requests += 1
                status, body, delay = scripted.script.pop(0) if scripted.script else (200, "", 0.0)
                if delay:
                    scripted.release.wait(delay)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/OpenADR2/Simple/2.0b"

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[ScriptedVtn]:
    server = ScriptedVtn()
    yield server
    server.stop()


def _registered_ven(scripted, store, **kwargs) -> Ven20b:
    ven = Ven20b(scripted.url, "cariflex", store.engine, **kwargs)
    from cariflex_pipeline.openadr.repository import VenState

    ven.states.save(VenState(vtn_url=ven.vtn_url, ven_name=ven.ven_name, protocol="2.0b", vtn_id="MARTINIQUE_VTN",
                             ven_id="ven_1", registration_id="reg_1", poll_freq_seconds=1.0))
    return ven


def test_vtn_5xx_retried_then_clear_failure_and_values_stay(scripted, store, site):
    start = next_day_start()
    ven = _registered_ven(scripted, store, retry=RetryPolicy(attempts=3, sleep=lambda _s: None))
    scripted.script = [(200, distribute_xml(_good(start)), 0.0)]
    sync(ven, site, store, site_id=SITE_ID)
    _assert_only_good_written(store, start)
    scripted.script = [(503, "VTN overloaded", 0.0)] * 3
    with pytest.raises(VtnError, match=r"failed after 3 attempts: HTTP 503: VTN overloaded"):
        sync(ven, site, store, site_id=SITE_ID)
    _assert_only_good_written(store, start)


def test_vtn_timeout_retried_then_clear_failure(scripted, store, site):
    sleeps: list[float] = []
    ven = _registered_ven(scripted, store, timeout_seconds=0.2,
                          retry=RetryPolicy(attempts=2, backoff_seconds=0.25, sleep=sleeps.append))
    scripted.script = [(200, "", 2.0), (200, "", 2.0)]
    with pytest.raises(VtnError, match="timed out"):
        sync(ven, site, store, site_id=SITE_ID)
    assert sleeps == [0.25] and scripted.requests >= 1
    _assert_nothing_written(store)


def test_vtn_answering_with_entities_is_refused(scripted, store, site):
    ven = _registered_ven(scripted, store)
    scripted.script = [(200, EXTERNAL_ENTITY, 0.0)]
    with pytest.raises(UnsafeXmlError):
        sync(ven, site, store, site_id=SITE_ID)
    _assert_nothing_written(store)
