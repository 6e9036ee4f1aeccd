"""Live EV sessions from the bus (real RabbitMQ): TransactionEvent, MeterValues, StatusNotification and
NotifyEVChargingNeeds become sessions and measured power; bad messages go to the dead-letter queue. EV needs count
only once CitrineOS answered Accepted or Processing to them."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pika
import pytest

from cariflex_pipeline.dispatch import (
    METER_SOURCE,
    SessionBook,
    SessionConsumer,
    SessionDefaults,
    active_sessions,
    active_transactions,
    station_message,
    stations_from_portfolio,
)
from cariflex_pipeline.dispatch.envelope import BusMessage
from cariflex_pipeline.dispatch.sessions import SessionMessageError, unapplied_needs
from cariflex_pipeline.site_model import Portfolio

T0 = datetime(2026, 11, 28, 13, 2, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _meter(at: datetime, watts: float | None = None, register_wh: float | None = None) -> list[dict]:
    sampled = []
    if watts is not None:
        sampled.append({"value": watts, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}})
    if register_wh is not None:
        sampled.append({"value": register_wh, "measurand": "Energy.Active.Import.Register"})
    return [{"timestamp": _iso(at), "sampledValue": sampled}]


def transaction_event(event_type: str, tx: str, at: datetime, seq: int, **extra) -> dict:
    payload = {"eventType": event_type, "timestamp": _iso(at), "triggerReason": "CablePluggedIn" if
               event_type == "Started" else "MeterValuePeriodic", "seqNo": seq,
               "transactionInfo": {"transactionId": tx}, "evse": {"id": 1, "connectorId": 1}}
    payload.update(extra)
    return payload


def citrineos_answer(request_headers: dict, request_body: bytes, payload: dict) -> tuple[dict, bytes]:
    """CitrineOS 1.8.3's answer to a station request, as `sendCallResultWithMessage` builds it: the request message
    with origin csms, state 2 and the answer as payload; headers from it as `RabbitMqSender.send` sets them
    (origin, eventGroup, action, state, the context's stationId/correlationId/timestamp, tenantId as a string)."""
    message = json.loads(request_body)
    message.update(origin="csms", state=2, payload=payload)
    headers = {"origin": "csms", "eventGroup": message["eventGroup"], "action": message["action"], "state": "2",
               **message["context"], "tenantId": str(message["context"]["tenantId"])}
    return headers, json.dumps(message).encode("utf-8")


class Bus:
    """Publishes station requests as CitrineOS 1.8 does (origin=cs, state="1", eventGroup=router), and
    CitrineOS's answers to them (origin=csms, state="2", same correlationId)."""

    def __init__(self, amqp_url: str, exchange: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        self.exchange = exchange
        self.count = 0

    def send(self, station: str, action: str, payload: dict) -> tuple[dict, bytes]:
        self.count += 1
        headers, body = station_message(station_id=station, tenant_id="1", action=action, state=1,
                                        payload=payload, correlation_id=f"c{self.count}")
        self.channel.basic_publish(self.exchange, "", body, pika.BasicProperties(headers=headers))
        return headers, body

    def answer(self, request: tuple[dict, bytes], payload: dict) -> None:
        headers, body = citrineos_answer(*request, payload)
        self.channel.basic_publish(self.exchange, "", body, pika.BasicProperties(
            headers=headers, content_type="application/json", content_encoding="utf-8"))

    def raw(self, queue: str, body: bytes, headers: dict | None = None) -> None:
        self.channel.basic_publish("", queue, body, pika.BasicProperties(headers=headers or {}))

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def consumer(amqp_url, exchange, names, store, site):
    book = SessionBook(store.engine, stations_from_portfolio(Portfolio.from_site(site)),
                       SessionDefaults(dwell=timedelta(hours=6), energy_kwh=18.0))
    consumer = SessionConsumer(amqp_url, book, exchange=exchange, queue=names["sessions"],
                               write_beliefs=lambda frame: store.write_beliefs(frame, source=METER_SOURCE,
                                                                               source_type="meter"),
                               read_beliefs=lambda ids, start, end: store.read_latest(ids, start, end,
                                                                                      sources=[METER_SOURCE]))
    consumer.ensure_queue()
    return consumer


def _dead_letters(amqp_url: str, queue: str) -> list[tuple[dict, bytes]]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    out = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        out.append((properties.headers, body))
    connection.close()
    return out


def test_session_lifecycle_defaults_needs_and_measured_power(amqp_url, exchange, consumer, store) -> None:
    bus = Bus(amqp_url, exchange)
    bus.send("CP001", "StatusNotification", {"timestamp": _iso(T0), "connectorStatus": "Occupied", "evseId": 1,
                                             "connectorId": 1})
    bus.send("CP001", "TransactionEvent", transaction_event(
        "Started", "tx-1", T0, 0, meterValue=_meter(T0, watts=7200, register_wh=1000)))
    bus.send("CP002", "TransactionEvent", transaction_event("Started", "tx-2", T0, 0))
    report = consumer.drain()
    assert report.processed == 3 and report.dead_lettered == 0
    assert sorted((c.kind, c.station_id) for c in report.changes) == [("started", "CP001"), ("started", "CP002")]
    sessions = {s["station_id"]: s for s in active_sessions(store.engine)}
    assert sessions["CP001"] == {
        "site_id": "cariflex-martinique", "station_id": "CP001", "evse_id": 1, "transaction_id": "tx-1", "arrival": T0,
        "departure": T0 + timedelta(hours=6), "energy_needed_kwh": 18.0, "energy_requested_kwh": 18.0,
        "energy_delivered_kwh": 0.0, "defaults": True, "departure_is_default": True, "energy_is_default": True}
    assert active_transactions(store.engine) == {"CP001": "tx-1", "CP002": "tx-2"}

    # the EV tells its needs (ISO 15118), then meters 5 kWh at 11 kW
    departure = T0 + timedelta(hours=3)
    needs = {"evseId": 1, "chargingNeeds": {
        "requestedEnergyTransfer": "AC_three_phase", "departureTime": _iso(departure),
        "acChargingParameters": {"energyAmount": 30000, "evMinCurrent": 6, "evMaxCurrent": 32,
                                 "evMaxVoltage": 400}}}
    bus.answer(bus.send("CP001", "NotifyEVChargingNeeds", needs), {"status": "Accepted"})
    t1 = T0 + timedelta(minutes=20)
    bus.send("CP001", "TransactionEvent", transaction_event(
        "Updated", "tx-1", t1, 1, meterValue=_meter(t1, watts=11000, register_wh=6000)))
    report = consumer.drain()
    assert [(c.kind, c.station_id) for c in report.changes] == [("needs_changed", "CP001")]
    assert (report.processed, report.needs_answers, report.needs_rejected) == (3, 1, [])
    cp1 = {s["station_id"]: s for s in active_sessions(store.engine)}["CP001"]
    assert (cp1["departure"], cp1["energy_requested_kwh"], cp1["energy_delivered_kwh"]) == (departure, 30.0, 5.0)
    assert cp1["energy_needed_kwh"] == pytest.approx(25.0)
    assert cp1["defaults"] is False

    # the same needs again change nothing; Ended closes the session
    bus.answer(bus.send("CP001", "NotifyEVChargingNeeds", needs), {"status": "Accepted"})
    t2 = T0 + timedelta(minutes=40)
    bus.send("CP001", "TransactionEvent", transaction_event(
        "Ended", "tx-1", t2, 2, meterValue=_meter(t2, watts=0, register_wh=9000)))
    report = consumer.drain()
    assert [(c.kind, c.transaction_id) for c in report.changes] == [("ended", "tx-1")]
    assert [s["station_id"] for s in active_sessions(store.engine)] == ["CP002"]

    # measured power of sensor 61, one value per 15-minute slot (one sample each here)
    measured = store.read_latest([61], sources=[METER_SOURCE])
    assert [(row.event_start.to_pydatetime(), row.value) for row in measured.itertuples()] == [
        (datetime(2026, 11, 28, 13, 0, tzinfo=UTC), 7.2),
        (datetime(2026, 11, 28, 13, 15, tzinfo=UTC), 11.0),
        (datetime(2026, 11, 28, 13, 30, tzinfo=UTC), 0.0),
    ]
    bus.close()


def test_needs_before_start_are_kept_and_applied(amqp_url, exchange, consumer, store) -> None:
    bus = Bus(amqp_url, exchange)
    request = bus.send("CP005", "NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": {
        "requestedEnergyTransfer": "DC", "departureTime": _iso(T0 + timedelta(hours=2)),
        "dcChargingParameters": {"evMaxCurrent": 100, "evMaxVoltage": 400, "energyAmount": 12000}}})
    bus.answer(request, {"status": "Accepted"})
    bus.send("CP005", "TransactionEvent", transaction_event("Started", "tx-5", T0, 0))
    consumer.drain()
    [session] = active_sessions(store.engine)
    assert (session["departure"], session["energy_requested_kwh"], session["defaults"]) == (
        T0 + timedelta(hours=2), 12.0, False)
    bus.close()


def test_malformed_messages_dead_lettered_unknown_station_logged_consumer_goes_on(
        amqp_url, exchange, names, consumer, store, caplog) -> None:
    bus = Bus(amqp_url, exchange)
    bus.raw(names["sessions"], b"{not json", {"action": "TransactionEvent"})
    bus.send("CP001", "TransactionEvent", {"eventType": "Started", "timestamp": _iso(T0)})  # fields missing
    bus.raw(names["sessions"], json.dumps({"action": "Heartbeat", "state": 1, "origin": "cs", "payload": {},
                                           "context": {"stationId": "CP001", "tenantId": 1}}).encode())
    bus.send("CP999", "TransactionEvent", transaction_event("Started", "tx-x", T0, 0))
    bus.send("CP003", "TransactionEvent", transaction_event("Started", "tx-3", T0, 0))
    with caplog.at_level(logging.WARNING):
        report = consumer.drain()
    assert (report.processed, report.dead_lettered, report.unknown_station) == (1, 3, 1)
    assert "station CP999 is in no site of the portfolio (site ''): message ignored" in caplog.text
    assert [s["transaction_id"] for s in active_sessions(store.engine)] == ["tx-3"]
    dead = _dead_letters(amqp_url, names["sessions"] + ".dead")
    reasons = [headers["x-cariflex-reason"] for headers, _ in dead]
    assert len(reasons) == 3
    assert "body is not JSON" in reasons[0]
    assert "TransactionEvent from station CP001 breaks the OCPP 2.0.1 schema" in reasons[1]
    assert "unexpected action 'Heartbeat'" in reasons[2]
    assert dead[0][1] == b"{not json"
    # nothing left behind on our queue
    assert consumer.drain().processed == 0
    bus.close()


def test_measured_power_is_the_energy_weighted_slot_average_across_drains(amqp_url, exchange, consumer,
                                                                          store) -> None:
    """Each sample stands for the power since the previous one (clipped to its slot), so a slot's value is its
    energy divided by the time covered - also when its samples arrive over several drains."""
    bus = Bus(amqp_url, exchange)
    t = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
    bus.send("CP004", "MeterValues", {"evseId": 1, "meterValue": [
        *_meter(t + timedelta(minutes=3), watts=7200), *_meter(t + timedelta(minutes=10), watts=11000)]})
    consumer.drain()
    # 13:00-13:03 at 7.2 kW, 13:03-13:10 at 11 kW: (7.2*3 + 11*7) / 10
    [first] = store.read_latest([64], sources=[METER_SOURCE])["value"]
    assert first == pytest.approx((7.2 * 3 + 11 * 7) / 10)
    # a later drain: 13:10-13:14 at 0 kW is added to what the slot already holds; a redelivered old sample is
    # not counted twice; 13:17 opens the next slot (13:15-13:17)
    bus.send("CP004", "MeterValues", {"evseId": 1, "meterValue": [
        *_meter(t + timedelta(minutes=14), watts=0), *_meter(t + timedelta(minutes=10), watts=11000),
        *_meter(t + timedelta(minutes=17), watts=3000)]})
    consumer.drain()
    measured = store.read_latest([64], sources=[METER_SOURCE])
    assert list(measured["value"]) == pytest.approx([(7.2 * 3 + 11 * 7 + 0 * 4) / 14, 3.0])
    bus.close()


@pytest.mark.parametrize(("action", "state", "payload", "expected"), [
    ("TransactionEvent", 1, {**transaction_event("Started", "tx-t", T0, 0), "timestamp": "yesterday"},
     "station CP006: TransactionEvent.timestamp: 'yesterday' is not an ISO 8601 date-time"),
    ("MeterValues", 1, {"evseId": 1, "meterValue": [{"timestamp": "soon", "sampledValue": [{"value": 1.0}]}]},
     "station CP006: meterValue.timestamp: 'soon' is not an ISO 8601 date-time"),
    ("TransactionEvent", 2, transaction_event("Started", "tx-t", T0, 0),
     "station CP006: unexpected state 2 for TransactionEvent (expected 1)"),
])
def test_a_rejected_station_message_names_the_station(action, state, payload, expected, store, site) -> None:
    """The reason goes to the dead-letter queue and the log: it must say which station sent the message."""
    from cariflex_pipeline.dispatch.envelope import BusMessage
    from cariflex_pipeline.dispatch.sessions import SessionMessageError

    book = SessionBook(store.engine, stations_from_portfolio(Portfolio.from_site(site)))
    message = BusMessage(station_id="CP006", tenant_id="1", action=action, state=state, origin="cs",
                         correlation_id="c-1", payload=payload)
    with pytest.raises(SessionMessageError) as caught:
        book.apply(message, now=T0)
    assert str(caught.value) == expected
    assert active_sessions(store.engine) == []


def test_consumer_and_transport_report_a_missing_exchange_alike(amqp_url, names, store, site) -> None:
    """Both connect through one setup: the same error naming the exchange and the broker, never the password."""
    from urllib.parse import urlsplit

    from cariflex_pipeline.dispatch import AmqpTransport
    from cariflex_pipeline.dispatch.connections import safe_url

    parts = urlsplit(amqp_url)
    missing = f"missing.{names['sessions']}"
    book = SessionBook(store.engine, stations_from_portfolio(Portfolio.from_site(site)))
    consumer = SessionConsumer(amqp_url, book, exchange=missing, queue=names["sessions"])
    transport = AmqpTransport(amqp_url, exchange=missing, answer_queue=names["answers"])
    messages = []
    for call in (consumer.ensure_queue, consumer.drain, transport.ensure_answer_queue):
        with pytest.raises(ConnectionError) as caught:
            call()
        messages.append(str(caught.value).split(": NOT_FOUND")[0])
    expected = f"exchange '{missing}' not found on {safe_url(amqp_url)} (is CitrineOS running?)"
    assert messages == [expected] * 3
    assert not parts.password or all(parts.password not in message for message in messages)


def test_a_new_transaction_closes_an_open_one_whose_end_was_lost(store, site) -> None:
    from cariflex_pipeline.dispatch.envelope import BusMessage

    book = SessionBook(store.engine, stations_from_portfolio(Portfolio.from_site(site)))

    def started(tx: str, at: datetime, station: str = "CP003") -> list:
        message = BusMessage(station_id=station, tenant_id="1", action="TransactionEvent", state=1, origin="cs",
                             correlation_id=f"c-{tx}", payload=transaction_event("Started", tx, at, 0))
        changes, _ = book.apply(message, now=at)
        return [(change.kind, change.transaction_id) for change in changes]

    assert started("tx-a", T0) == [("started", "tx-a")]
    assert started("tx-other", T0, station="CP004") == [("started", "tx-other")]
    later = T0 + timedelta(hours=3)
    assert started("tx-b", later) == [("ended", "tx-a"), ("started", "tx-b")]
    open_sessions = {(s["station_id"], s["transaction_id"]) for s in active_sessions(store.engine)}
    assert open_sessions == {("CP003", "tx-b"), ("CP004", "tx-other")}


# --- EV needs stand only when CitrineOS accepts them -----------------------------------------------------------

DEPARTURE = T0 + timedelta(hours=3)
DEFAULTS = SessionDefaults(dwell=timedelta(hours=6), energy_kwh=18.0)


def _needs_payload(departure: datetime = DEPARTURE, energy_wh: int = 30000) -> dict:
    return {"evseId": 1, "chargingNeeds": {
        "requestedEnergyTransfer": "AC_three_phase", "departureTime": _iso(departure),
        "acChargingParameters": {"energyAmount": energy_wh, "evMinCurrent": 6, "evMaxCurrent": 32,
                                 "evMaxVoltage": 400}}}


def _request(station: str, correlation_id: str, payload: dict | None = None) -> BusMessage:
    return BusMessage(station_id=station, tenant_id="1", action="NotifyEVChargingNeeds", state=1, origin="cs",
                      correlation_id=correlation_id, payload=payload or _needs_payload())


def _answer(station: str, correlation_id: str, payload: dict) -> BusMessage:
    return BusMessage(station_id=station, tenant_id="1", action="NotifyEVChargingNeeds", state=2, origin="csms",
                      correlation_id=correlation_id, payload=payload)


def _start(book: SessionBook, station: str, tx: str, at: datetime = T0) -> list[tuple[str, str]]:
    message = BusMessage(station_id=station, tenant_id="1", action="TransactionEvent", state=1, origin="cs",
                         correlation_id=f"start-{tx}", payload=transaction_event("Started", tx, at, 0))
    changes, _ = book.apply(message, now=at)
    return [(change.kind, change.transaction_id) for change in changes]


def _kinds(result: tuple[list, list]) -> list[tuple[str, str, str]]:
    return [(change.kind, change.station_id, change.transaction_id) for change in result[0]]


def _needs_of(store, station: str) -> tuple:
    [session] = [s for s in active_sessions(store.engine) if s["station_id"] == station]
    return (session["departure"], session["energy_requested_kwh"], session["departure_is_default"],
            session["energy_is_default"])


DEFAULT_NEEDS = (T0 + timedelta(hours=6), 18.0, True, True)
ASKED_NEEDS = (DEPARTURE, 30.0, False, False)


@pytest.mark.parametrize("status", ["Accepted", "Processing"])
def test_needs_apply_only_once_citrineos_accepts_them(status, store, site) -> None:
    """The request alone changes nothing (and reruns nothing); Accepted or Processing apply it, once."""
    book = SessionBook(store.engine, stations_from_portfolio(Portfolio.from_site(site)), DEFAULTS)
    assert _start(book, "CP001", "tx-1") == [("started", "tx-1")]
    t1 = T0 + timedelta(minutes=5)
    assert _kinds(book.apply(_request("CP001", "n-1"), now=t1)) == []
    assert _needs_of(store, "CP001") == DEFAULT_NEEDS
    assert [(n["station_id"], n["status"], n["answer"]) for n in unapplied_needs(store.engine, t1)] == [
        ("CP001", "awaiting", None)]

    t2 = t1 + timedelta(seconds=1)
    assert _kinds(book.apply(_answer("CP001", "n-1", {"status": status}), now=t2)) == [
        ("needs_changed", "CP001", "tx-1")]
    assert _needs_of(store, "CP001") == ASKED_NEEDS
    assert unapplied_needs(store.engine, t2) == []
    # redelivered request and answer (a drain cut short before its ack) change nothing
    assert _kinds(book.apply(_request("CP001", "n-1"), now=t2)) == []
    assert _kinds(book.apply(_answer("CP001", "n-1", {"status": status}), now=t2)) == []
    assert _needs_of(store, "CP001") == ASKED_NEEDS
    # accepted needs equal to those in force change nothing either: no rerun
    book.apply(_request("CP001", "n-2"), now=t2)
    assert _kinds(book.apply(_answer("CP001", "n-2", {"status": "Accepted"}), now=t2)) == []


def test_rejected_needs_are_not_applied_and_the_operator_sees_why(store, site, caplog) -> None:
    book = SessionBook(store.engine, stations_from_portfolio(Portfolio.from_site(site)), DEFAULTS)
    _start(book, "CP002", "tx-2")
    t1 = T0 + timedelta(minutes=5)
    book.apply(_request("CP002", "n-7"), now=t1)
    rejected = {"status": "Rejected", "statusInfo": {"reasonCode": "NoProfile",
                                                     "additionalInfo": "profile in force gives 0 W now"}}
    with caplog.at_level(logging.WARNING):
        assert _kinds(book.apply(_answer("CP002", "n-7", rejected), now=t1 + timedelta(seconds=1))) == []
    assert _needs_of(store, "CP002") == DEFAULT_NEEDS
    assert unapplied_needs(store.engine, t1) == [{
        "station_id": "CP002", "evse_id": 1, "correlation_id": "n-7", "status": "rejected", "answer": "Rejected",
        "reason": "NoProfile: profile in force gives 0 W now", "departure": DEPARTURE, "energy_kwh": 30.0,
        "requested_at": t1, "answered_at": t1 + timedelta(seconds=1)}]
    assert "CP002 EVSE 1: CitrineOS answered Rejected to NotifyEVChargingNeeds n-7" in caplog.text
    # a redelivered request after the answer does not bring the rejected needs back
    book.apply(_request("CP002", "n-7"), now=t1 + timedelta(seconds=2))
    assert [n["status"] for n in unapplied_needs(store.engine, t1)] == ["rejected"]
    # CitrineOS 1.8.3 rejects without statusInfo; later needs it accepts replace the rejected ones in the view
    book.apply(_request("CP002", "n-8", _needs_payload(energy_wh=25000)), now=t1 + timedelta(minutes=1))
    assert _kinds(book.apply(_answer("CP002", "n-8", {"status": "Accepted"}), now=t1 + timedelta(minutes=1))) == [
        ("needs_changed", "CP002", "tx-2")]
    assert _needs_of(store, "CP002") == (DEPARTURE, 25.0, False, False)
    assert unapplied_needs(store.engine, t1) == []


def test_a_call_error_in_place_of_the_answer_leaves_the_needs_out(store, site) -> None:
    """When CitrineOS's handler fails it publishes a serialized OcppError as the answer (the station gets a
    CALLERROR): the needs do not stand."""
    book = SessionBook(store.engine, stations_from_portfolio(Portfolio.from_site(site)), DEFAULTS)
    _start(book, "CP003", "tx-3")
    book.apply(_request("CP003", "n-1"), now=T0)
    error = {"name": "OcppError", "_messageId": "n-1", "_errorCode": "InternalError", "_errorDetails": {},
             "message": "Failed handling message: db down"}
    assert _kinds(book.apply(_answer("CP003", "n-1", error), now=T0)) == []
    assert _needs_of(store, "CP003") == DEFAULT_NEEDS
    assert [(n["status"], n["answer"], n["reason"]) for n in unapplied_needs(store.engine, T0)] == [
        ("rejected", "CallError", "InternalError: Failed handling message: db down")]


def test_needs_before_the_transaction_accepted_then_started_apply_at_the_start(store, site) -> None:
    book = SessionBook(store.engine, stations_from_portfolio(Portfolio.from_site(site)), DEFAULTS)
    before = T0 - timedelta(minutes=2)
    book.apply(_request("CP004", "n-1"), now=before)
    assert _kinds(book.apply(_answer("CP004", "n-1", {"status": "Accepted"}), now=before)) == []
    assert unapplied_needs(store.engine, before) == []
    assert _start(book, "CP004", "tx-4") == [("started", "tx-4")]
    assert _needs_of(store, "CP004") == ASKED_NEEDS


def test_needs_before_the_transaction_awaiting_at_the_start_apply_when_accepted(store, site) -> None:
    book = SessionBook(store.engine, stations_from_portfolio(Portfolio.from_site(site)), DEFAULTS)
    book.apply(_request("CP004", "n-1"), now=T0 - timedelta(minutes=2))
    _start(book, "CP004", "tx-4")
    assert _needs_of(store, "CP004") == DEFAULT_NEEDS
    assert _kinds(book.apply(_answer("CP004", "n-1", {"status": "Accepted"}), now=T0)) == [
        ("needs_changed", "CP004", "tx-4")]
    assert _needs_of(store, "CP004") == ASKED_NEEDS


def test_needs_rejected_before_the_start_leave_the_defaults(store, site) -> None:
    """CitrineOS 1.8.3 rejects needs for which it knows no active transaction: the session keeps its defaults."""
    book = SessionBook(store.engine, stations_from_portfolio(Portfolio.from_site(site)), DEFAULTS)
    before = T0 - timedelta(minutes=2)
    book.apply(_request("CP005", "n-1"), now=before)
    book.apply(_answer("CP005", "n-1", {"status": "Rejected"}), now=before)
    _start(book, "CP005", "tx-5")
    assert _needs_of(store, "CP005") == DEFAULT_NEEDS
    assert [(n["station_id"], n["status"], n["reason"]) for n in unapplied_needs(store.engine, T0)] == [
        ("CP005", "rejected", "")]
    # once the car has left, its rejected needs are no longer news
    ended = BusMessage(station_id="CP005", tenant_id="1", action="TransactionEvent", state=1, origin="cs",
                       correlation_id="end", payload=transaction_event("Ended", "tx-5", T0 + timedelta(hours=1), 1))
    book.apply(ended, now=T0 + timedelta(hours=1))
    assert unapplied_needs(store.engine, T0 + timedelta(hours=1)) == []


def test_an_orphan_answer_is_logged_and_decides_its_request_if_that_comes_later(store, site, caplog) -> None:
    book = SessionBook(store.engine, stations_from_portfolio(Portfolio.from_site(site)), DEFAULTS)
    _start(book, "CP006", "tx-6")
    with caplog.at_level(logging.WARNING):
        assert _kinds(book.apply(_answer("CP006", "n-9", {"status": "Accepted"}), now=T0)) == []
    assert ("CP006: CitrineOS answered Accepted to NotifyEVChargingNeeds n-9, whose request we have not seen"
            in caplog.text)
    assert _needs_of(store, "CP006") == DEFAULT_NEEDS
    assert unapplied_needs(store.engine, T0) == []
    # the request after its answer (a redelivery can reorder them): decided at once, nothing lost
    assert _kinds(book.apply(_request("CP006", "n-9"), now=T0)) == [("needs_changed", "CP006", "tx-6")]
    assert _needs_of(store, "CP006") == ASKED_NEEDS
    # a Rejected answer first, then its request: not applied, visible
    book.apply(_answer("CP006", "n-10", {"status": "Rejected"}), now=T0)
    assert _kinds(book.apply(_request("CP006", "n-10", _needs_payload(energy_wh=5000)), now=T0)) == []
    assert _needs_of(store, "CP006") == ASKED_NEEDS
    assert [(n["correlation_id"], n["status"]) for n in unapplied_needs(store.engine, T0)] == [("n-10", "rejected")]


@pytest.mark.parametrize(("message", "expected"), [
    (_answer("CP007", "n-1", {"status": "Maybe"}),
     "NotifyEVChargingNeeds answer for station CP007 breaks the schema: $.status: 'Maybe' is not one of"),
    (_answer("CP007", "", {"status": "Accepted"}),
     "NotifyEVChargingNeeds answer for station CP007 has no correlationId: it cannot be matched to its request"),
    (BusMessage(station_id="CP007", tenant_id="1", action="NotifyEVChargingNeeds", state=2, origin="cs",
                correlation_id="n-1", payload={"status": "Accepted"}),
     "station CP007: unexpected state 2 for NotifyEVChargingNeeds from origin 'cs' (expected CitrineOS's answer"),
])
def test_a_malformed_answer_is_refused_with_its_reason(message, expected, store, site) -> None:
    book = SessionBook(store.engine, stations_from_portfolio(Portfolio.from_site(site)), DEFAULTS)
    with pytest.raises(SessionMessageError) as caught:
        book.apply(message, now=T0)
    assert str(caught.value).startswith(expected)


def test_citrineos_answers_on_the_bus_decide_the_needs(amqp_url, exchange, names, consumer, store) -> None:
    """Through the real RabbitMQ: our queue receives CitrineOS's answers (origin csms, state 2) beside the
    station requests; accepted needs change the session (one rerun), rejected ones do not and are reported."""
    bus = Bus(amqp_url, exchange)
    bus.send("CP008", "TransactionEvent", transaction_event("Started", "tx-8", T0, 0))
    bus.send("CP009", "TransactionEvent", transaction_event("Started", "tx-9", T0, 0))
    accepted = bus.send("CP008", "NotifyEVChargingNeeds", _needs_payload())
    rejected = bus.send("CP009", "NotifyEVChargingNeeds", _needs_payload())
    report = consumer.drain()
    assert [c.kind for c in report.changes] == ["started", "started"]
    assert sorted((n["station_id"], n["status"]) for n in unapplied_needs(store.engine)) == [
        ("CP008", "awaiting"), ("CP009", "awaiting")]

    bus.answer(accepted, {"status": "Accepted"})
    bus.answer(rejected, {"status": "Rejected", "statusInfo": {"reasonCode": "NoActiveTx"}})
    # an answer whose request never reached our queue: logged and acked
    orphan_headers, orphan_body = citrineos_answer(*station_message(
        station_id="CP010", tenant_id="1", action="NotifyEVChargingNeeds", state=1, payload=_needs_payload(),
        correlation_id="never-seen"), {"status": "Accepted"})
    bus.channel.basic_publish(exchange, "", orphan_body, pika.BasicProperties(headers=orphan_headers))
    report = consumer.drain()
    assert (report.processed, report.dead_lettered, report.needs_answers) == (3, 0, 3)
    assert [(c.kind, c.station_id) for c in report.changes] == [("needs_changed", "CP008")]
    assert report.needs_rejected == ["CP009: Rejected (NoActiveTx)"]
    sessions = {s["station_id"]: s for s in active_sessions(store.engine)}
    assert (sessions["CP008"]["departure"], sessions["CP008"]["energy_requested_kwh"]) == (DEPARTURE, 30.0)
    assert (sessions["CP009"]["departure"], sessions["CP009"]["energy_requested_kwh"]) == (
        T0 + timedelta(hours=6), 18.0)
    assert [(n["station_id"], n["status"], n["reason"]) for n in unapplied_needs(store.engine)] == [
        ("CP009", "rejected", "NoActiveTx")]
    assert consumer.drain().processed == 0  # all acked
    bus.close()


def test_the_schedule_metadata_names_needs_rejected_by_citrineos_and_awaiting_it(store, site) -> None:
    """The plan runs on the defaults of CP001 (needs rejected) and CP002 (no answer yet); its metadata says so."""
    import dagster as dg

    from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
    from cariflex_pipeline.defs.scheduling.assets import ev_charging_schedule

    book = SessionBook(store.engine, stations_from_portfolio(Portfolio.from_site(site)), DEFAULTS)
    for station in ("CP001", "CP002", "CP003"):
        _start(book, station, f"tx-{station}")
        book.apply(_request(station, f"n-{station}"), now=T0)
    book.apply(_answer("CP001", "n-CP001", {"status": "Rejected", "statusInfo": {"reasonCode": "NoProfile"}}),
               now=T0)
    book.apply(_answer("CP003", "n-CP003", {"status": "Accepted"}), now=T0)
    url = store.engine.url.render_as_string(hide_password=False)
    result = dg.materialize(
        [ev_charging_schedule],
        resources={"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=url)},
        run_config={"ops": {"ev_charging_schedule": {"config": {"now": _iso(T0 + timedelta(minutes=1))}}}})
    metadata = result.asset_materializations_for_node("ev_charging_schedule")[0].metadata
    assert metadata["sessions_with_default_needs"].value == 2
    assert metadata["ev_needs_rejected_by_citrineos"].value == "CP001"
    assert metadata["ev_needs_awaiting_citrineos"].value == "CP002"
    rows = metadata["ev_needs_not_applied"].value.splitlines()
    assert rows[2:] == ["| CP001 | 1 | rejected | Rejected | NoProfile | 2026-11-28 12:02 | 30.0 | 2026-11-28 09:02 |",
                        "| CP002 | 1 | awaiting | - | - | 2026-11-28 12:02 | 30.0 | 2026-11-28 09:02 |"]


def test_an_older_transaction_event_never_puts_an_older_meter_reading_back(store, site) -> None:
    """A message requeued behind newer ones (or taken by a second consumer) arrives late: the session keeps the
    newest reading by seqNo, and a late Ended still ends it, reported once."""
    book = SessionBook(store.engine, stations_from_portfolio(Portfolio.from_site(site)))

    def event(event_type: str, seq: int, register_wh: float, minutes: int) -> list[tuple[str, str]]:
        at = T0 + timedelta(minutes=minutes)
        message = BusMessage(station_id="CP003", tenant_id="1", action="TransactionEvent", state=1, origin="cs",
                             correlation_id=f"c-{seq}-{event_type}", payload=transaction_event(
                                 event_type, "tx-a", at, seq, meterValue=_meter(at, 7000, register_wh)))
        changes, _ = book.apply(message, now=at)
        return [(change.kind, change.transaction_id) for change in changes]

    def delivered_kwh() -> float:
        [session] = [s for s in active_sessions(store.engine) if s["transaction_id"] == "tx-a"]
        return session["energy_delivered_kwh"]

    assert event("Started", 0, 1000, 0) == [("started", "tx-a")]
    assert event("Updated", 2, 6000, 30) == []
    assert delivered_kwh() == 5.0
    assert event("Updated", 1, 3000, 15) == []  # late: older than seqNo 2
    assert delivered_kwh() == 5.0
    assert event("Updated", 2, 6000, 30) == []  # the same again (at-least-once delivery): nothing changes
    assert delivered_kwh() == 5.0
    assert event("Ended", 4, 9000, 60) == [("ended", "tx-a")]
    assert event("Ended", 4, 9000, 60) == []  # redelivered: already ended, not reported twice
    assert "tx-a" not in {s["transaction_id"] for s in active_sessions(store.engine)}
