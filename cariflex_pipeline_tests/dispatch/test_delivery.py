"""Delivery you can trust over the bus (real RabbitMQ, the CitrineOS-shaped router with CitrineOS's own schemas,
`ocpp` stations): what is lost on the way times out and is sent again from the current plan, once in effect; and
the stations' composite schedules, read back, show whether they follow our plan or CitrineOS's own TxProfile."""

from __future__ import annotations

from datetime import timedelta

import pika
import pytest

from cariflex_pipeline.defs.dispatch.checks import follow_plan_check
from cariflex_pipeline.dispatch import (
    AmqpTransport,
    DeliveryPolicy,
    Outbox,
    dispatch_profiles,
    profiles_from_plan,
)
from cariflex_pipeline_tests.conftest import require_tool
from cariflex_pipeline_tests.dispatch.citrineos_sim import CitrineRouter, declare_citrineos_exchange
from cariflex_pipeline_tests.dispatch.conftest import NOW, SITE_ID, Clock, plan_frame
from cariflex_pipeline_tests.dispatch.rabbit_node import RabbitNode

START = NOW.replace(minute=0, second=0)
POLICY = DeliveryPolicy(answer_deadline=timedelta(minutes=2))
LATER = NOW + timedelta(minutes=3)  # past the answer deadline


def _transport(url: str, exchange: str, names: dict[str, str]) -> AmqpTransport:
    return AmqpTransport(url, exchange=exchange, answer_queue=names["answers"],
                         connection_name=f"cariflex-test-{names['answers']}")


def _run(outbox, transport, site, plan, *, now, run_id, **build):
    built = profiles_from_plan(site, plan_frame(site, START, plan), now=now, in_force=outbox.last_in_force(now),
                               outlast=outbox.valid_to_to_outlast(now), **build)
    assert built.invalid == {}
    return dispatch_profiles(outbox, transport, built.profiles, site_id=SITE_ID,
                                                                run_id=run_id, now=now, answer_timeout=10,
                             policy=POLICY)


def test_a_lost_message_times_out_and_the_current_plan_is_delivered_once(amqp_url, exchange, names, make_router,
                                                                          store, site) -> None:
    router = make_router("1.8")
    station = router.connect("CP001")
    router.drop_next("CP001")  # lost between the broker and the station: no answer will ever come
    outbox = Outbox(store.engine)
    first = _run(outbox, _transport(amqp_url, exchange, names), site, {"CP001": [5.0] * 8}, now=NOW, run_id="r1")
    lost = first.entries["CP001"]
    assert lost.status == "sent" and router.lost == [("CP001", lost.correlation_id)]
    # the plan changed meanwhile: the retry carries the current plan, not the lost payload
    second = _run(outbox, _transport(amqp_url, exchange, names), site, {"CP001": [6.0] * 8}, now=LATER,
                  run_id="r2")
    assert [e.id for e in second.unanswered] == [lost.id]
    delivered = second.entries["CP001"]
    assert (delivered.status, delivered.attempts, delivered.profile_id) == ("accepted", 2, lost.profile_id)
    assert [r.message_id for r in station.received] == [delivered.correlation_id]
    [(_, held)] = station.profiles.installed()
    assert held["chargingSchedule"][0]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 6000.0}]
    assert [event for _, event, _ in outbox.events(lost.id)] == ["pending", "sent", "unanswered", "superseded"]


def test_a_payload_citrineos_drops_is_not_believed_sent_forever(amqp_url, exchange, names, make_router, store,
                                                                site) -> None:
    """What a real CitrineOS 1.8.3 did to 9 of 10 profiles: its AJV check refused 8967.3 W and dropped the message,
    acked, without an answer. (The payload is broken by hand here: our own validation never lets it through.)"""
    router = make_router("1.8")
    station = router.connect("CP002")
    outbox = Outbox(store.engine)
    built = profiles_from_plan(site, plan_frame(site, START, {"CP002": [8.9673] * 8}), now=NOW)
    [profile] = built.profiles
    profile.payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] = 8967.3
    first = dispatch_profiles(outbox, _transport(amqp_url, exchange, names), built.profiles, site_id=SITE_ID,
                                                                                             run_id="r1", now=NOW,
                              answer_timeout=2, policy=POLICY)
    assert first.entries["CP002"].status == "sent"
    [(dropped_station, dropped_id, problems)] = router.dropped
    assert (dropped_station, dropped_id) == ("CP002", first.entries["CP002"].correlation_id)
    assert any("8967.3 is not a multiple of 0.1" in problem for problem in problems)
    second = _run(outbox, _transport(amqp_url, exchange, names), site, {"CP002": [8.9673] * 8}, now=LATER,
                  run_id="r2")
    assert second.entries["CP002"].status == "accepted"
    assert second.entries["CP002"].limits == [(0, 8967.0)]
    assert len(station.received) == 1


def test_a_broker_restart_with_profiles_queued_is_recovered_by_the_next_run(names, store, site) -> None:
    """RabbitMQ stops while the profiles wait in CitrineOS's station queues (transient, as 1.8.x declares them):
    they are gone when it is back. Nothing answers them; the next run finds them unanswered and delivers the
    plan, each station getting it once."""
    require_tool("rabbitmq-server", "a broker of the test's own to restart")
    require_tool("rabbitmqctl", "to stop that broker")
    node = RabbitNode().start()
    router: CitrineRouter | None = None
    try:
        exchange = "citrineos"
        declare_citrineos_exchange(node.url, exchange)
        stations = ["CP003", "CP004"]
        connection = pika.BlockingConnection(pika.URLParameters(node.url))
        channel = connection.channel()
        for station_id in stations:  # connected to CitrineOS, which has not consumed yet
            queue = channel.queue_declare(f"citrine.{station_id}", durable=False).method.queue
            channel.queue_bind(queue, exchange, arguments={"x-match": "all", "tenantId": "1", "stationId": station_id,
                                                           "state": "1", "origin": "csms"})
        connection.close()
        outbox = Outbox(store.engine)
        plan = {station_id: [7.0] * 8 for station_id in stations}
        first = _run(outbox, _transport(node.url, exchange, names), site, plan, now=NOW, run_id="r1")
        assert {s: e.status for s, e in first.entries.items()} == dict.fromkeys(stations, "sent")
        node.stop()
        node.start()
        declare_citrineos_exchange(node.url, exchange)  # CitrineOS declares its exchange again on reconnect
        router = CitrineRouter(node.url, exchange).start()
        simulated = {station_id: router.connect(station_id) for station_id in stations}
        second = _run(outbox, _transport(node.url, exchange, names), site, plan, now=LATER, run_id="r2")
        assert sorted(e.station_id for e in second.unanswered) == stations
        assert {s: (e.status, e.attempts) for s, e in second.entries.items()} == dict.fromkeys(
            stations, ("accepted", 2))
        assert {s: [r.message_id for r in sim.received] for s, sim in simulated.items()} == {
            s: [second.entries[s].correlation_id] for s in stations}
    finally:
        if router is not None:
            router.stop()
        node.remove()


def test_our_tx_profile_outranks_citrineos_own_and_the_read_back_shows_it(amqp_url, exchange, names, make_router,
                                                                          store, site) -> None:
    """CitrineOS sends its own stack-level-0 TxProfile (32 A, 22 kW at this station) after an accepted
    NotifyEVChargingNeeds. Our
    TxProfile at stack level 1 outranks it: the station's composite schedule is our plan. A TxDefaultProfile
    would not (a TxProfile overrides it whatever the stack level), and the read-back check says so."""
    router = make_router("1.8")
    for station_id in ("CP005", "CP006"):
        station = router.connect(station_id, transactions={1: f"tx-{station_id[-1]}"})
        station.clock = Clock(NOW)
        router.citrineos_tx_profile(station_id, f"tx-{station_id[-1]}", now=START)
    outbox = Outbox(store.engine)
    # the bus told us of CP005's transaction, not (yet) of CP006's: CP006 gets our TxDefaultProfile
    report = _run(outbox, _transport(amqp_url, exchange, names), site, {"CP005": [4.0] * 8, "CP006": [4.0] * 8},
                  now=NOW, run_id="r1", transactions={"CP005": "tx-5"})
    ours, default = report.entries["CP005"], report.entries["CP006"]
    assert (ours.purpose, ours.status, ours.readback_status) == ("TxProfile", "accepted", "matches")
    assert (default.purpose, default.status, default.readback_status) == ("TxDefaultProfile", "accepted", "differs")
    assert default.readback_detail.startswith("13:07:30Z-15:00Z: station 22000 W, plan 4000 W")
    check = follow_plan_check(outbox.delivery(["CP005", "CP006"], NOW))
    assert not check.passed
    assert check.metadata["differs"].value == 1 and check.metadata["matches"].value == 1
    assert "**CP006** (differs): 13:07:30Z-15:00Z: station 22000 W, plan 4000 W" in check.metadata["stations"].value


@pytest.mark.parametrize("version", ["1.8"])
def test_an_unroutable_profile_names_the_likely_causes(version, amqp_url, exchange, names, store, site) -> None:
    outbox = Outbox(store.engine)
    report = _run(outbox, _transport(amqp_url, exchange, names), site, {"CP007": [3.0] * 8}, now=NOW, run_id="r1")
    reason = report.entries["CP007"].status_reason
    assert reason.startswith(f"no CitrineOS queue bound for station CP007 on exchange {exchange!r} (312 NO_ROUTE);")
    assert "the station is not connected to CitrineOS" in reason
    assert f"sent {version}, header stationId" in reason and "CARIFLEX_CITRINEOS_ENVELOPE" in reason
    assert "sent tenantId 1" in reason and "CARIFLEX_CITRINEOS_TENANT" in reason
