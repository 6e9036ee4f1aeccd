"""Reading back a station's composite schedule: the request we send, the comparison with what we sent, and the
simulated CitrineOS router carrying SetChargingProfile, GetCompositeSchedule and ClearChargingProfile (with its
schema drops, fault knobs and its own TxProfile) over the real RabbitMQ."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cariflex_pipeline.dispatch.composite import compare_composite, composite_request
from cariflex_pipeline.dispatch.envelope import BusMessage, csms_request, decode, station_message
from cariflex_pipeline.dispatch.peer_schemas import violations
from cariflex_pipeline_tests.dispatch.station_model import StationProfiles, charging_profile

NOW = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
HOUR = 3600


def _sent(periods: list[tuple], unit: str = "W", start: datetime = NOW, **fields: Any) -> dict[str, Any]:
    fields.setdefault("validTo", start + timedelta(hours=1))
    return {"evseId": 1, "chargingProfile": charging_profile(7, "TxDefaultProfile", 0, periods, unit=unit,
                                                             start=start, **fields)}


SENT = _sent([(0, 7000), (900, 3000), (1800, 5000)])


def _answer(periods: list[tuple], start: datetime = NOW, duration: int = HOUR, unit: str = "W") -> dict[str, Any]:
    return {"status": "Accepted", "schedule": {
        "evseId": 1, "duration": duration, "scheduleStart": start.isoformat().replace("+00:00", "Z"),
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [{"startPeriod": at, "limit": float(limit)} for at, limit in periods]}}


def _station_answer(station: StationProfiles, unit: str = "W", duration: int = 2 * HOUR) -> dict[str, Any]:
    return {"status": "Accepted", "schedule": station.composite(1, duration, unit, NOW)}


# --- composite_request ---------------------------------------------------------------------------------------
def test_composite_request_is_what_citrineos_accepts() -> None:
    request = composite_request(1, HOUR, "W")
    assert request == {"evseId": 1, "duration": 3600, "chargingRateUnit": "W"}
    assert violations("GetCompositeSchedule", request) == []


def test_composite_request_refuses_what_citrineos_would_drop() -> None:
    with pytest.raises(ValueError, match=r"EVSE 1: \$\.chargingRateUnit: 'kW' is not one of \['W', 'A'\]"):
        composite_request(1, HOUR, "kW")
    with pytest.raises(ValueError, match="GetCompositeSchedule for EVSE 2: duration 0 s is not positive"):
        composite_request(2, 0, "A")


# --- compare_composite ---------------------------------------------------------------------------------------
def test_a_station_holding_only_our_profile_agrees_with_it() -> None:
    station = StationProfiles("CP001")
    station.set_profile(1, SENT["chargingProfile"])
    # the composite runs on past our validTo (the station's maximum then): only the time both cover counts
    assert compare_composite(SENT, _station_answer(station)) == []


def test_each_differing_stretch_is_one_line_with_both_limits() -> None:
    assert compare_composite(SENT, _answer([(0, 7000), (1800, 5000)])) == [
        "13:15Z-13:30Z: station 7000 W, plan 3000 W"]
    station = StationProfiles("CP001")
    station.set_profile(0, charging_profile(1, "ChargingStationMaxProfile", 0, [(0, 4000)], start=NOW))
    station.set_profile(1, SENT["chargingProfile"])
    assert compare_composite(SENT, _station_answer(station)) == [
        "13:00Z-13:15Z: station 4000 W, plan 7000 W", "13:30Z-14:00Z: station 4000 W, plan 5000 W"]


def test_equal_neighbouring_differences_merge_into_one_stretch() -> None:
    sent = _sent([(0, 3000), (900, 3000), (1800, 3000)])
    assert compare_composite(sent, _answer([(0, 7000), (2700, 3000)])) == [
        "13:00Z-13:45Z: station 7000 W, plan 3000 W"]


def test_rounding_by_the_station_within_1_w_or_0_1_a_agrees() -> None:
    assert compare_composite(SENT, _answer([(0, 7000.9), (900, 2999.1), (1800, 5001)])) == []
    assert compare_composite(SENT, _answer([(0, 7001.5), (900, 3000), (1800, 5000)])) == [
        "13:00Z-13:15Z: station 7001.5 W, plan 7000 W"]
    amperes = _sent([(0, 16), (900, 10)], unit="A")
    assert compare_composite(amperes, _answer([(0, 16.1), (900, 9.9)], unit="A")) == []
    assert compare_composite(amperes, _answer([(0, 16.2), (900, 10)], unit="A")) == [
        "13:00Z-13:15Z: station 16.2 A, plan 16 A"]


def test_only_the_time_both_cover_is_compared() -> None:
    later = NOW + timedelta(minutes=30)
    assert compare_composite(SENT, _answer([(0, 5000)], start=later)) == []
    assert compare_composite(SENT, _answer([(0, 4000)], start=later)) == ["13:30Z-14:00Z: station 4000 W, plan 5000 W"]
    assert compare_composite(SENT, _answer([(0, 5000)], start=NOW + timedelta(hours=2))) == [
        "no time in common: station 2026-11-28T15:00Z-2026-11-28T16:00Z, plan 2026-11-28T13:00Z-2026-11-28T14:00Z"]


def test_a_schedule_start_with_a_fraction_of_a_second_is_no_difference() -> None:
    """startPeriod counts whole seconds: asked at 13:00:00.4, a station can only change at 13:15:00.4."""
    asked = NOW + timedelta(milliseconds=400)
    assert compare_composite(SENT, _answer([(0, 7000), (900, 3000), (1800, 5000)], start=asked)) == []
    station = StationProfiles("CP001")
    station.set_profile(1, SENT["chargingProfile"])
    assert compare_composite(SENT, {"status": "Accepted", "schedule": station.composite(1, HOUR, "W", asked)}) == []
    assert compare_composite(SENT, _answer([(0, 7000), (902, 3000), (1800, 5000)], start=asked)) == [
        "13:15Z-13:15:02Z: station 7000 W, plan 3000 W"]


def test_a_stretch_on_the_next_day_carries_its_date() -> None:
    evening = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)
    sent = _sent([(0, 3000), (1800, 6000)], start=evening)
    assert compare_composite(sent, _answer([(0, 3000)], start=evening)) == [
        "2026-11-29T00:00Z-2026-11-29T00:30Z: station 3000 W, plan 6000 W"]


@pytest.mark.parametrize(("answer", "line"), [
    ({"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEVSE"}},
     "station answered Rejected (UnknownEVSE), no composite schedule"),
    ({"status": "Rejected"}, "station answered Rejected, no composite schedule"),
    ({"status": "Accepted"}, "station answered Accepted without a composite schedule"),
    (_answer([(0, 16)], unit="A"), "unit: station A, plan W"),
])
def test_an_answer_that_cannot_be_compared_is_one_line(answer, line) -> None:
    assert compare_composite(SENT, answer) == [line]


def test_a_profile_that_is_not_one_absolute_schedule_is_one_line() -> None:
    relative = {"evseId": 1, "chargingProfile": charging_profile(7, "TxDefaultProfile", 0, [(0, 7000)],
                                                                 chargingProfileKind="Relative")}
    assert compare_composite(relative, _answer([(0, 7000)])) == [
        "the sent profile is not one Absolute schedule with a startSchedule: nothing to compare"]


@settings(max_examples=80, deadline=None)
@given(unit=st.sampled_from(["W", "A"]), start_slot=st.integers(-8, 8), valid_slots=st.integers(9, 24),
       steps=st.lists(st.tuples(st.integers(1, 8), st.integers(0, 318)), min_size=1, max_size=8))
def test_the_station_composite_of_any_single_profile_agrees_with_it(unit, start_slot, valid_slots, steps) -> None:
    """Any one Absolute TxDefaultProfile within the station's maximum (31.8 A or 22 kW) and still in force at the
    composite's start, W or A, read back in its own unit, agrees with what was sent."""
    offsets = [0]
    for gap, _ in steps[1:]:
        offsets.append(offsets[-1] + gap * 900)
    limits = [tenths / 10 if unit == "A" else tenths * 69.0 for _, tenths in steps]
    start = NOW + timedelta(minutes=15 * start_slot)
    sent = _sent(list(zip(offsets, limits, strict=True)), unit=unit, start=start,
                 validTo=start + timedelta(minutes=15 * valid_slots))
    station = StationProfiles("CP001")
    assert station.set_profile(1, sent["chargingProfile"]) == ("Accepted", None)
    assert compare_composite(sent, _station_answer(station, unit, duration=6 * HOUR)) == []


# --- over the bus, through the simulated CitrineOS router ----------------------------------------------------
class _Bus:
    """Publishes CSMS requests and station TransactionEvents as CitrineOS does, and collects every answer the
    router publishes (origin cs, state "2")."""

    def __init__(self, amqp_url: str, exchange: str) -> None:
        self.exchange = exchange
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.queue, exchange, arguments={"x-match": "all", "origin": "cs", "state": "2"})

    def send(self, station_id: str, action: str, payload: dict[str, Any]) -> str:
        correlation_id = str(uuid.uuid4())
        self._publish(*csms_request(station_id=station_id, tenant_id="1", action=action, payload=payload,
                                    correlation_id=correlation_id))
        return correlation_id

    def transaction_event(self, station_id: str, event_type: str, transaction_id: str, **extra: Any) -> None:
        payload = {"eventType": event_type, "timestamp": NOW.isoformat(), "triggerReason": "CablePluggedIn",
                   "seqNo": 0, "transactionInfo": {"transactionId": transaction_id}, **extra}
        self._publish(*station_message(station_id=station_id, tenant_id="1", action="TransactionEvent", state=1,
                                       payload=payload, correlation_id=str(uuid.uuid4())))

    def _publish(self, headers: dict[str, str], body: bytes) -> None:
        self.channel.basic_publish(self.exchange, "", body, pika.BasicProperties(headers=headers))

    def answers(self, count: int) -> list[tuple[dict[str, Any], BusMessage]]:
        """The next `count` answers, (headers, message); fails when they do not come within 10 s."""
        got: list[tuple[dict[str, Any], BusMessage]] = []
        for method, properties, body in self.channel.consume(self.queue, inactivity_timeout=10):
            assert method is not None, f"{count} answers expected, got {[m for _, m in got]}"
            self.channel.basic_ack(method.delivery_tag)
            got.append((properties.headers, decode(properties.headers, body)))
            if len(got) == count:
                break
        self.channel.cancel()
        return got


@pytest.fixture
def bus(amqp_url: str, exchange: str) -> Iterator[_Bus]:
    opened = _Bus(amqp_url, exchange)
    yield opened
    opened.connection.close()


def test_our_stack_1_tx_profile_outranks_citrineos_own_in_the_composite_read_over_the_bus(make_router,
                                                                                          bus) -> None:
    router = make_router()
    station = router.connect("CP001", transactions={1: "tx-1"}, max_power_w=50000.0)
    station.clock = lambda: NOW
    citrineos = router.citrineos_tx_profile("CP001", "tx-1", now=NOW - timedelta(minutes=1))
    [(headers, answer)] = bus.answers(1)
    assert (headers["action"], answer.payload) == ("SetChargingProfile", {"status": "Accepted"})
    assert station.profiles.installed() == [(1, citrineos["chargingProfile"])]

    ours = {"evseId": 1, "chargingProfile": charging_profile(40, "TxProfile", 1, [(0, 7000), (900, 3000)],
                                                             start=NOW, duration=1800, transactionId="tx-1")}
    sent = [bus.send("CP001", "SetChargingProfile", ours),
            bus.send("CP001", "GetCompositeSchedule", composite_request(1, HOUR, "W"))]
    answers = bus.answers(2)
    assert [(h["action"], h["state"], h["stationId"], m.correlation_id) for h, m in answers] == [
        ("SetChargingProfile", "2", "CP001", sent[0]), ("GetCompositeSchedule", "2", "CP001", sent[1])]
    composite = answers[1][1].payload
    assert compare_composite(ours, composite) == []
    # after ours ends, CitrineOS's 32 A on 3 phases is in force again
    assert composite["schedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 7000.0}, {"startPeriod": 900, "limit": 3000.0},
        {"startPeriod": 1800, "limit": 22080.0, "numberPhases": 3}]

    clear = bus.send("CP001", "ClearChargingProfile", {"chargingProfileId": 40})
    [(headers, answer)] = bus.answers(1)
    assert (headers["action"], answer.correlation_id, answer.payload) == (
        "ClearChargingProfile", clear, {"status": "Accepted"})
    assert station.profiles.installed() == [(1, citrineos["chargingProfile"])]
    assert (router.errors, router.dropped, router.lost) == ([], [], [])


def test_a_payload_citrineos_schema_refuses_is_dropped_without_an_answer(make_router, bus) -> None:
    router = make_router()
    station = router.connect("CP002")
    refused = bus.send("CP002", "SetChargingProfile", _sent([(0, 8967.3)]))  # 8967.3 / 0.1 is not whole in floats
    probe = bus.send("CP002", "GetCompositeSchedule", composite_request(1, 900, "W"))
    [(headers, answer)] = bus.answers(1)  # the station takes its messages in order: the refused one came first
    assert (headers["action"], answer.correlation_id) == ("GetCompositeSchedule", probe)
    assert router.dropped == [("CP002", refused, [
        "$.chargingProfile.chargingSchedule[0].chargingSchedulePeriod[0].limit: 8967.3 is not a multiple of 0.1 "
        "(CitrineOS 1.8.3 SetChargingProfileRequest schema)"])]
    assert station.received == []
    assert router.errors == []


def test_drop_next_loses_messages_and_delay_answers_holds_them_back(make_router, bus) -> None:
    router = make_router()
    router.connect("CP003")
    router.connect("CP004")
    router.drop_next("CP003", 2)
    router.delay_answers("CP004", 2.0)
    request = composite_request(1, 900, "W")
    lost = [bus.send("CP003", "GetCompositeSchedule", request) for _ in range(2)]
    late = bus.send("CP004", "GetCompositeSchedule", request)
    kept = bus.send("CP003", "GetCompositeSchedule", request)
    assert [message.correlation_id for _, message in bus.answers(2)] == [kept, late]
    assert router.lost == [("CP003", lost[0]), ("CP003", lost[1])]
    assert router.dropped == []


def test_transaction_events_on_the_bus_start_and_end_the_station_transaction(make_router, bus) -> None:
    router = make_router()
    station = router.connect("CP005")
    bus.transaction_event("CP005", "Started", "tx-5", evse={"id": 1})
    tx_profile = {"evseId": 1, "chargingProfile": charging_profile(9, "TxProfile", 1, [(0, 4000)], start=NOW,
                                                                   transactionId="tx-5")}
    bus.send("CP005", "SetChargingProfile", tx_profile)
    [(_, accepted)] = bus.answers(1)
    assert accepted.payload == {"status": "Accepted"}
    assert station.profiles.active_transactions == {1: "tx-5"}
    bus.transaction_event("CP005", "Ended", "tx-5")  # Ended without an evse: found by its transaction
    bus.send("CP005", "SetChargingProfile", tx_profile)
    [(_, refused)] = bus.answers(1)
    assert refused.payload == {"status": "Rejected", "statusInfo": {"reasonCode": "TxNotFound"}}
    assert station.profiles.active_transactions == {}
    assert station.profiles.installed() == []


def test_an_answer_citrineos_schema_refuses_is_dropped_too(make_router, bus) -> None:
    """CitrineOS validates the station's CallResult as well: 207 W is 0.3 A, and 0.3 / 0.1 is not whole in floats."""
    router = make_router()
    router.connect("CP006").clock = lambda: NOW
    accepted = bus.send("CP006", "SetChargingProfile", _sent([(0, 207)]))
    refused = bus.send("CP006", "GetCompositeSchedule", composite_request(1, 900, "A"))
    probe = bus.send("CP006", "GetCompositeSchedule", composite_request(1, 900, "W"))
    assert [message.correlation_id for _, message in bus.answers(2)] == [accepted, probe]
    assert router.dropped == [("CP006", refused, [
        "$.schedule.chargingSchedulePeriod[0].limit: 0.3 is not a multiple of 0.1 "
        "(CitrineOS 1.8.3 GetCompositeScheduleResponse schema)"])]
