"""Live EV sessions from the bus (real RabbitMQ): TransactionEvent, MeterValues, StatusNotification and
NotifyEVChargingNeeds become sessions and measured power; bad messages go to the dead-letter queue."""

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
    stations_from_site,
)

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


class Bus:
    """Publishes station requests as CitrineOS 1.8 does (origin=cs, state="1", eventGroup=router)."""

    def __init__(self, amqp_url: str, exchange: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        self.exchange = exchange
        self.count = 0

    def send(self, station: str, action: str, payload: dict) -> None:
        self.count += 1
        headers, body = station_message(station_id=station, tenant_id="1", action=action, state=1,
                                        payload=payload, correlation_id=f"c{self.count}")
        self.channel.basic_publish(self.exchange, "", body, pika.BasicProperties(headers=headers))

    def raw(self, queue: str, body: bytes, headers: dict | None = None) -> None:
        self.channel.basic_publish("", queue, body, pika.BasicProperties(headers=headers or {}))

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def consumer(amqp_url, exchange, names, store, site):
    book = SessionBook(store.engine, stations_from_site(site),
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
        "station_id": "CP001", "evse_id": 1, "transaction_id": "tx-1", "arrival": T0,
        "departure": T0 + timedelta(hours=6), "energy_needed_kwh": 18.0, "energy_requested_kwh": 18.0,
        "energy_delivered_kwh": 0.0, "defaults": True, "departure_is_default": True, "energy_is_default": True}
    assert active_transactions(store.engine) == {"CP001": "tx-1", "CP002": "tx-2"}

    # the EV tells its needs (ISO 15118), then meters 5 kWh at 11 kW
    departure = T0 + timedelta(hours=3)
    needs = {"evseId": 1, "chargingNeeds": {
        "requestedEnergyTransfer": "AC_three_phase", "departureTime": _iso(departure),
        "acChargingParameters": {"energyAmount": 30000, "evMinCurrent": 6, "evMaxCurrent": 32,
                                 "evMaxVoltage": 400}}}
    bus.send("CP001", "NotifyEVChargingNeeds", needs)
    t1 = T0 + timedelta(minutes=20)
    bus.send("CP001", "TransactionEvent", transaction_event(
        "Updated", "tx-1", t1, 1, meterValue=_meter(t1, watts=11000, register_wh=6000)))
    report = consumer.drain()
    assert [(c.kind, c.station_id) for c in report.changes] == [("needs_changed", "CP001")]
    cp1 = {s["station_id"]: s for s in active_sessions(store.engine)}["CP001"]
    assert (cp1["departure"], cp1["energy_requested_kwh"], cp1["energy_delivered_kwh"]) == (departure, 30.0, 5.0)
    assert cp1["energy_needed_kwh"] == pytest.approx(25.0)
    assert cp1["defaults"] is False

    # the same needs again change nothing; Ended closes the session
    bus.send("CP001", "NotifyEVChargingNeeds", needs)
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
    bus.send("CP005", "NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": {
        "requestedEnergyTransfer": "DC", "departureTime": _iso(T0 + timedelta(hours=2)),
        "dcChargingParameters": {"evMaxCurrent": 100, "evMaxVoltage": 400, "energyAmount": 12000}}})
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
    assert "station CP999 is not in the site model" in caplog.text
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

    book = SessionBook(store.engine, stations_from_site(site))
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
    consumer = SessionConsumer(amqp_url, SessionBook(store.engine, stations_from_site(site)), exchange=missing,
                               queue=names["sessions"])
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

    book = SessionBook(store.engine, stations_from_site(site))

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
