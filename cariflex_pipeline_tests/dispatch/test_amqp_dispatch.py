"""AMQP transport against the real RabbitMQ, a CitrineOS-shaped router and simulated `ocpp` stations:
Accepted, Rejected, offline (unroutable), both envelope versions, a dropped connection mid-dispatch."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pika
import pika.channel
import pytest

from cariflex_pipeline.dispatch import AmqpTransport, Outbox, dispatch_profiles, profiles_from_plan
from cariflex_pipeline_tests.conftest import require_tool
from cariflex_pipeline_tests.dispatch.conftest import NOW, SITE_ID, plan_frame

START = NOW.replace(minute=0, second=0)
LATER = NOW + timedelta(minutes=1)  # past the first retry's backoff (30 s)


def _plan(site, stations: list[str]) -> dict[str, list[float]]:
    # a different, hand-checkable shape per station: 2 kW x index for 4 slots, then 11 kW for 4 slots
    return {cp: [2.0 * (index + 1)] * 4 + [11.0] * 4 for index, cp in enumerate(stations)}


def _transport(amqp_url, exchange, names, version="1.8", **kwargs) -> AmqpTransport:
    return AmqpTransport(amqp_url, exchange=exchange, answer_queue=names["answers"], envelope_version=version,
                         connection_name=f"cariflex-test-{names['answers']}", **kwargs)


@pytest.mark.parametrize("version", ["1.8", "1.9"])
def test_accepted_rejected_and_offline(version, amqp_url, exchange, names, make_router, store, site) -> None:
    router = make_router(version)
    accepting = router.connect("CP001", transactions={1: "tx-1"})  # the station runs the transaction
    rejecting = router.connect("CP002", answer="Rejected")
    # CP003 is not connected: CitrineOS has no queue for it
    per_station = _plan(site, ["CP001", "CP002", "CP003"])
    built = profiles_from_plan(site, plan_frame(site, START, per_station), now=NOW,
                               transactions={"CP001": "tx-1"})
    outbox = Outbox(store.engine)
    report = dispatch_profiles(outbox, _transport(amqp_url, exchange, names, version), built.profiles,
                               site_id=SITE_ID, run_id="run-1", now=NOW, answer_timeout=10)
    statuses = {station: entry.status for station, entry in report.entries.items()}
    assert statuses == {"CP001": "accepted", "CP002": "rejected", "CP003": "unroutable"}
    assert "InvalidSchedule" in report.entries["CP002"].status_reason
    assert "not connected to CitrineOS" in report.entries["CP003"].status_reason
    assert "envelope version (sent " + version in report.entries["CP003"].status_reason
    assert router.errors == []

    # what the station received is what the schedule says, under the outbox's correlation id
    [got] = accepting.received
    assert got.message_id == report.entries["CP001"].correlation_id
    periods = got.charging_profile["charging_schedule"][0]["charging_schedule_period"]
    assert [(p["start_period"], p["limit"]) for p in periods] == [(0, 2000.0), (3600, 11000.0)]
    assert got.charging_profile["charging_profile_purpose"] == "TxProfile"
    assert got.charging_profile["transaction_id"] == "tx-1"
    assert len(rejecting.received) == 1

    # the next run: CP001 unchanged and accepted -> not resent; CP003 (offline) tried again after the backoff,
    # rebuilt from the plan under the same profile id, still unroutable
    again = dispatch_profiles(outbox, _transport(amqp_url, exchange, names, version), built.profiles,
                              site_id=SITE_ID, run_id="run-2", now=LATER, answer_timeout=5)
    assert "identical to last accepted" in again.skipped["CP001"]
    retried = again.entries["CP003"]
    assert (retried.status, retried.attempts, retried.profile_id) == (
        "unroutable", 2, report.entries["CP003"].profile_id)
    assert outbox.get(report.entries["CP003"].correlation_id).status == "superseded"
    assert len(accepting.received) == 1


def test_envelope_version_must_match_the_csms(amqp_url, exchange, names, make_router, store, site) -> None:
    """A 1.8 CitrineOS binds on stationId: a message in the later envelope (ocppConnectionName) reaches no one,
    and mandatory publishing reports it instead of losing it silently."""
    router = make_router("1.8")
    station = router.connect("CP004")
    built = profiles_from_plan(site, plan_frame(site, START, {"CP004": [3.0] * 4}), now=NOW)
    report = dispatch_profiles(Outbox(store.engine), _transport(amqp_url, exchange, names, "1.9"), built.profiles,
                               site_id=SITE_ID, run_id="r", now=NOW, answer_timeout=1)
    assert report.entries["CP004"].status == "unroutable"
    assert station.received == []


def test_missing_exchange_fails_every_profile_and_keeps_them(amqp_url, names, store, site) -> None:
    built = profiles_from_plan(site, plan_frame(site, START, {"CP001": [3.0] * 4}), now=NOW)
    transport = AmqpTransport(amqp_url, exchange=f"missing.{names['answers']}", answer_queue=names["answers"])
    report = dispatch_profiles(Outbox(store.engine), transport, built.profiles, site_id=SITE_ID, run_id="r", now=NOW)
    assert report.entries["CP001"].status == "failed"
    assert "not found" in report.entries["CP001"].status_reason


def test_broker_down_then_up_each_profile_delivered_once(amqp_url, exchange, names, make_router, store,
                                                          site) -> None:
    router = make_router("1.8")
    station = router.connect("CP001")
    built = profiles_from_plan(site, plan_frame(site, START, {"CP001": [3.0] * 4}), now=NOW)
    outbox = Outbox(store.engine)
    down = AmqpTransport("amqp://guest:secret-pw@127.0.0.1:1/%2F", exchange=exchange,
                         answer_queue=names["answers"])
    first = dispatch_profiles(outbox, down, built.profiles, site_id=SITE_ID, run_id="r1", now=NOW)
    entry = first.entries["CP001"]
    assert entry.status == "failed" and "127.0.0.1:1" in entry.status_reason
    assert "secret-pw" not in entry.status_reason
    second = dispatch_profiles(outbox, _transport(amqp_url, exchange, names), built.profiles, site_id=SITE_ID,
                                                                                              run_id="r2",
                               now=LATER, answer_timeout=10)
    delivered = second.entries["CP001"]
    assert (delivered.status, delivered.attempts, delivered.profile_id) == ("accepted", 2, entry.profile_id)
    assert [r.message_id for r in station.received] == [delivered.correlation_id]


@pytest.fixture
def fault_at(monkeypatch: pytest.MonkeyPatch):
    """`fault_at(event, n, fault)`: call `fault(connection)` once, right after the n-th publish ("published") or
    as the n-th confirm ("confirmed") arrives on our publisher's connection. Injected at pika's boundary (its
    Channel), so the code under test carries no test hook; other connections (the router, the answer reader)
    are not counted."""

    def install(event: str, n: int, fault) -> None:
        seen = {"count": 0}

        def fire(connection) -> None:
            if not (connection.params.client_properties or {}).get("connection_name", "").endswith("-publish"):
                return
            seen["count"] += 1
            if seen["count"] == n:
                fault(connection)

        if event == "published":
            publish = pika.channel.Channel.basic_publish

            def basic_publish(channel, *args, **kwargs):
                publish(channel, *args, **kwargs)
                fire(channel.connection)

            monkeypatch.setattr(pika.channel.Channel, "basic_publish", basic_publish)
        else:
            confirm_delivery = pika.channel.Channel.confirm_delivery

            def counting_confirms(channel, ack_nack_callback, callback=None):
                def counted(frame) -> None:
                    # before the confirm is handled: a fault that closes the connection leaves the channel closing,
                    # so this confirm still counts and nothing more is published
                    fire(channel.connection)
                    ack_nack_callback(frame)

                return confirm_delivery(channel, counted, callback)

            monkeypatch.setattr(pika.channel.Channel, "confirm_delivery", counting_confirms)

    return install


def _close_server_side(client_name: str) -> None:
    """Close our publisher's connection from the broker (rabbitmqctl close_connection), as a broker would."""
    listing = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    pids = [line.split("\t")[0] for line in listing.splitlines() if client_name in line]
    assert pids, f"connection {client_name} not found"
    for pid in pids:
        subprocess.run(["rabbitmqctl", "close_connection", pid, "fault injected by the test"],
                       capture_output=True, timeout=60, check=True)


def test_broker_closes_the_connection_mid_dispatch(amqp_url, exchange, names, make_router, store, site,
                                                   fault_at) -> None:
    """RabbitMQ closes the publisher's connection after the 4th confirm (rabbitmqctl close_connection): the
    other 6 profiles stay in the outbox as failed and the next run delivers each exactly once."""
    require_tool("rabbitmqctl", "to close our connection from the broker's side")
    router = make_router("1.8")
    stations = [cp.id for cp in site.charge_points]
    simulated = {s: router.connect(s) for s in stations}
    built = profiles_from_plan(site, plan_frame(site, START, _plan(site, stations)), now=NOW)
    outbox = Outbox(store.engine)
    client_name = f"cariflex-test-{names['answers']}-publish"

    fault_at("confirmed", 4, lambda _connection: _close_server_side(client_name))
    first = dispatch_profiles(outbox, _transport(amqp_url, exchange, names, window=1), built.profiles,
                              site_id=SITE_ID, run_id="run-1", now=NOW, answer_timeout=5)
    failed = [e for e in first.entries.values() if e.status == "failed"]
    assert len(failed) == 6 and all("ConnectionClosedByBroker" in e.status_reason for e in failed)
    second = dispatch_profiles(outbox, _transport(amqp_url, exchange, names), built.profiles, site_id=SITE_ID,
                                                                                              run_id="run-2",
                               now=LATER, answer_timeout=10, uncertain_grace=10)
    assert len(second.entries) == 6
    assert {s: len(sim.received) for s, sim in simulated.items()} == dict.fromkeys(stations, 1)
    assert {e.status for e in outbox.latest_by_station().values()} == {"accepted"}


@pytest.mark.parametrize(("window", "event"), [(1, "confirmed"), (10, "published")])
def test_connection_dropped_mid_dispatch_then_each_profile_delivered_exactly_once(
        window, event, amqp_url, exchange, names, make_router, store, site, fault_at) -> None:
    """The publisher's connection is closed mid-dispatch (client side, injected at pika's boundary).

    window 1, after the 3rd confirm: 3 delivered, 7 never published.
    window 10, after the 5th publish: 5 never published; the 5 published are confirmed during the graceful
    close (RabbitMQ acks before close-ok) or, if the confirm is lost, flagged uncertain.
    The next run first waits for answers to the uncertain ones, then sends only what did not arrive:
    every station ends with exactly one message, under the outbox's correlation id, accepted."""
    router = make_router("1.8")
    stations = [cp.id for cp in site.charge_points]
    simulated = {station_id: router.connect(station_id) for station_id in stations}
    built = profiles_from_plan(site, plan_frame(site, START, _plan(site, stations)), now=NOW)
    outbox = Outbox(store.engine)
    cut_at = 3 if event == "confirmed" else 5

    fault_at(event, cut_at, lambda connection: connection.close(reply_code=320, reply_text="fault injected"))
    first = dispatch_profiles(outbox, _transport(amqp_url, exchange, names, window=window), built.profiles,
                              site_id=SITE_ID, run_id="run-1", now=NOW, answer_timeout=2)
    failed = [e for e in first.entries.values() if e.status == "failed"]
    uncertain = [e for e in failed if e.delivery_uncertain]
    if event == "confirmed":
        assert (len(failed), len(uncertain)) == (7, 0)
    else:
        assert len(failed) - len(uncertain) == 5
        assert all("lost before confirm" in e.status_reason for e in uncertain)

    second = dispatch_profiles(outbox, _transport(amqp_url, exchange, names, window=window), built.profiles,
                               site_id=SITE_ID, run_id="run-2", now=LATER, answer_timeout=10, uncertain_grace=10)
    assert router.errors == []
    received = {station_id: [r.message_id for r in sim.received] for station_id, sim in simulated.items()}
    assert all(len(ids) == 1 for ids in received.values()), received
    final = outbox.latest_by_station()
    assert {s: final[s].status for s in stations} == dict.fromkeys(stations, "accepted")
    assert {s: final[s].correlation_id for s in stations} == {s: ids[0] for s, ids in received.items()}
    # the second run sent exactly the profiles that were never published
    assert len(second.entries) == len(failed) - len(uncertain)


def test_answers_left_on_the_queue_are_recorded_later_and_nothing_is_resent(
        amqp_url, exchange, names, make_router, store, site) -> None:
    """Answers wait in our durable queue: if nobody collects them during the run (answer_timeout 0), a later
    run records them; nothing is resent meanwhile."""
    router = make_router("1.8")
    station = router.connect("CP005")
    built = profiles_from_plan(site, plan_frame(site, START, {"CP005": [5.0] * 4}), now=NOW)
    outbox = Outbox(store.engine)
    first = dispatch_profiles(outbox, _transport(amqp_url, exchange, names), built.profiles, site_id=SITE_ID,
                                                                                             run_id="r1", now=NOW,
                              answer_timeout=0)
    assert first.entries["CP005"].status in ("sent", "accepted")
    second = dispatch_profiles(outbox, _transport(amqp_url, exchange, names), built.profiles, site_id=SITE_ID,
                                                                                              run_id="r2",
                               now=NOW, answer_timeout=0, uncertain_grace=0)
    # either the answer was collected at the start of run 2 or the entry still awaits it: never resent
    assert len(station.received) == 1
    assert "CP005" in second.skipped


def test_lost_confirms_are_not_resent_when_the_station_answered(amqp_url, exchange, names, make_router, store,
                                                                site) -> None:
    """A confirm lost with the connection leaves entries 'failed' and uncertain although the station got them.
    The next run waits for their answers before retrying, so none is sent twice. (The lost confirm is written
    into the outbox by the test: a TCP drop between RabbitMQ's routing and its ack cannot be timed from here.)"""
    router = make_router("1.8")
    stations = ["CP001", "CP002", "CP003"]
    simulated = {s: router.connect(s) for s in stations}
    built = profiles_from_plan(site, plan_frame(site, START, _plan(site, stations)), now=NOW)
    outbox = Outbox(store.engine)
    first = dispatch_profiles(outbox, _transport(amqp_url, exchange, names), built.profiles, site_id=SITE_ID,
                                                                                             run_id="r1", now=NOW,
                              answer_timeout=0)
    for entry in first.entries.values():
        outbox.mark(entry.correlation_id, "failed", "connection lost before confirm", uncertain=True)
    assert outbox.uncertain_correlation_ids() == {e.correlation_id for e in first.entries.values()}
    second = dispatch_profiles(outbox, _transport(amqp_url, exchange, names), built.profiles, site_id=SITE_ID,
                                                                                              run_id="r2",
                               now=NOW, answer_timeout=5, uncertain_grace=10)
    assert second.entries == {}
    assert {s: len(sim.received) for s, sim in simulated.items()} == dict.fromkeys(stations, 1)
    assert {e.status for e in outbox.entries()} == {"accepted"}


def test_a_dropped_answer_queue_message_is_logged_with_its_station(amqp_url, exchange, names, caplog) -> None:
    """A message on our answer queue that is not a usable answer is acknowledged and logged, naming the station."""
    import logging

    import pika

    from cariflex_pipeline.dispatch import station_message

    transport = _transport(amqp_url, exchange, names)
    transport.ensure_answer_queue()
    headers, body = station_message(station_id="CP007", tenant_id="1", action="SetChargingProfile", state=2,
                                    payload={"status": "Accepted"}, correlation_id="")
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    connection.channel().basic_publish("", names["answers"], body, pika.BasicProperties(headers=headers))
    connection.close()
    with caplog.at_level(logging.WARNING):
        assert transport.collect_answers(lambda answer: True, expected={"x"}, timeout=0.5) == []
    assert "station CP007: SetChargingProfile state 2 correlation id missing" in caplog.text
    assert transport.collect_answers(lambda answer: True) == []  # acknowledged, not redelivered
