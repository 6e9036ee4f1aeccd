"""The REST transport against the CitrineOS 1.8.3 REST double (its K01 rules, its profile table, stations that
answer by callback) and our callback receiver writing the answers into the outbox, on SQLite and PostgreSQL.

What a real CitrineOS refused in the field, accepted here the way its rules allow: a re-plan in the same slot,
a TxProfile update during its transaction, the return to the default profile after it; and the answers arrive
on this transport too."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from cariflex_pipeline.dispatch import (
    DeliveryPolicy,
    Outbox,
    RestTransport,
    dispatch_profiles,
    profiles_from_plan,
)
from cariflex_pipeline.dispatch.callbacks import AnswerReceiver
from cariflex_pipeline.dispatch.config import DispatchSettings
from cariflex_pipeline_tests.dispatch.citrineos_rest import CitrineRestDouble
from cariflex_pipeline_tests.dispatch.conftest import NOW, SITE_ID, Clock, plan_frame

START = NOW.replace(minute=0, second=0)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def citrine(clock: Clock) -> Iterator[CitrineRestDouble]:
    with CitrineRestDouble(token="secret-token", clock=clock) as double:
        yield double


@pytest.fixture
def outbox(store) -> Outbox:
    return Outbox(store.engine)


@pytest.fixture
def transport(citrine: CitrineRestDouble, outbox: Outbox) -> Iterator[RestTransport]:
    with AnswerReceiver(outbox.apply_answer) as receiver:
        rest = RestTransport(citrine.url, callback_base_url=receiver.url, answer_book=outbox, token="secret-token")
        yield rest
        rest.close()


def _run(outbox: Outbox, transport: RestTransport, site, plan: dict[str, list[float]], *, now: datetime,
         run_id: str, transactions: dict[str, str] | None = None, policy: DeliveryPolicy | None = None):
    built = profiles_from_plan(site, plan_frame(site, START, plan), now=now, transactions=transactions,
                               in_force=outbox.last_in_force(now), outlast=outbox.valid_to_to_outlast(now))
    assert built.invalid == {}
    return dispatch_profiles(outbox, transport, built.profiles, site_id=SITE_ID,
                                                                run_id=run_id, now=now, answer_timeout=5,
                             policy=policy)


def test_answers_arrive_by_callback_and_every_outcome_is_named(citrine, transport, outbox, site) -> None:
    citrine.connect("CP001")
    citrine.connect("CP002")
    citrine.start_transaction("CP002", 1, "tx-2")
    citrine.station("CP002").active_transactions.clear()  # the station no longer runs it: it refuses
    built = profiles_from_plan(site, plan_frame(site, START, {"CP001": [7.0] * 4, "CP002": [3.0] * 4,
                                                              "CP003": [5.0] * 4, "CP004": [2.0] * 4}),
                               now=NOW, transactions={"CP002": "tx-2"})
    # a limit CitrineOS's AJV refuses (8967.3 / 0.1 is not whole): only reachable by bypassing our validation,
    # to show the transport reports the 400 instead of losing it
    citrine.connect("CP004")
    broken = built.profiles[3]
    broken.payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] = 8967.3
    report = dispatch_profiles(outbox, transport, built.profiles, site_id=SITE_ID,
                                                                  run_id="rest-1", now=NOW, answer_timeout=5)
    entries = report.entries
    assert {s: e.status for s, e in entries.items()} == {
        "CP001": "accepted", "CP002": "rejected", "CP003": "unroutable", "CP004": "failed"}
    assert entries["CP002"].status_reason == "TxNotFound"
    assert entries["CP003"].status_reason.startswith("No connection found for identifier: 1:CP003; likely causes")
    assert entries["CP004"].status_reason.startswith("SetChargingProfile: HTTP 400: ")
    assert "FST_ERR_VALIDATION" in entries["CP004"].status_reason and "8967.3" in entries["CP004"].status_reason
    # the station's composite schedule, read back through CitrineOS, is the plan
    assert (entries["CP001"].readback_status, entries["CP001"].readback_detail) == (
        "matches", "the station's composite schedule equals the plan")
    first = citrine.calls[0]
    assert (first.path, first.query["identifier"], first.auth) == (
        "/ocpp/2.0.1/smartcharging/setChargingProfile", "CP001", "Bearer secret-token")
    assert first.body == built.profiles[0].payload
    assert first.query["callbackUrl"].endswith(f"/CP001/SetChargingProfile/{entries['CP001'].correlation_id}")


def test_a_replan_in_the_same_slot_is_accepted(citrine, clock, transport, outbox, site) -> None:
    citrine.connect("CP005")
    first = _run(outbox, transport, site, {"CP005": [7.0] * 8}, now=NOW, run_id="r1")
    assert first.entries["CP005"].status == "accepted"
    # an EV plugs in three minutes later: same slot, new limits; validTo moves a second past the active one
    clock.now = later = NOW + timedelta(minutes=3)
    second = _run(outbox, transport, site, {"CP005": [9.0] * 8}, now=later, run_id="r2")
    entry = second.entries["CP005"]
    assert (entry.status, entry.limits) == ("accepted", [(0, 9000.0)])
    assert entry.payload["chargingProfile"]["validTo"] == "2026-11-28T15:00:01Z"
    [active] = [p for p in citrine.profiles("CP005") if p.is_active]
    assert active.profile["chargingSchedule"][0]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 9000.0}]
    # what CitrineOS would have said to the re-plan without the later validTo
    same_valid_to = copy.deepcopy(entry.payload)
    same_valid_to["chargingProfile"]["validTo"] = first.entries["CP005"].payload["chargingProfile"]["validTo"]
    response = transport._client.post("/ocpp/2.0.1/smartcharging/setChargingProfile",
                                      params={"identifier": "CP005", "tenantId": "1"}, json=same_valid_to)
    assert response.json() == [{"success": False, "payload": "No two charging profiles with the same stack level "
                                                             "and purpose can be valid at the same time."}]


def test_a_tx_profile_update_during_the_transaction_then_the_default_profile(citrine, clock, transport, outbox,
                                                                              site) -> None:
    citrine.connect("CP006")
    citrine.start_transaction("CP006", 1, "tx-6")
    tx = {"CP006": "tx-6"}
    first = _run(outbox, transport, site, {"CP006": [11.0] * 8}, now=NOW, run_id="r1", transactions=tx)
    assert (first.entries["CP006"].status, first.entries["CP006"].purpose) == ("accepted", "TxProfile")
    clock.now = later = NOW + timedelta(minutes=4)
    update = _run(outbox, transport, site, {"CP006": [6.0] * 8}, now=later, run_id="r2", transactions=tx)
    entry = update.entries["CP006"]
    assert (entry.status, entry.clear_status, entry.profile_id) == ("accepted", "accepted",
                                                                    first.entries["CP006"].profile_id)
    paths = [call.path.rsplit("/", 1)[-1] for call in citrine.calls]
    assert paths == ["setChargingProfile", "getCompositeSchedule", "clearChargingProfile", "setChargingProfile",
                     "getCompositeSchedule"]
    assert citrine.calls[2].body == {"chargingProfileId": entry.profile_id}
    [(_, held)] = citrine.station("CP006").installed()
    assert held["chargingSchedule"][0]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 6000.0}]
    # the car leaves: its TxProfile ends with the transaction; the station gets the default profile (another id)
    citrine.end_transaction("CP006", 1)
    clock.now = after = NOW + timedelta(minutes=20)
    default = _run(outbox, transport, site, {"CP006": [0.0] * 8}, now=after, run_id="r3")
    back = default.entries["CP006"]
    assert (back.status, back.purpose) == ("accepted", "TxDefaultProfile")
    assert back.profile_id != entry.profile_id
    assert [p["chargingProfilePurpose"] for _, p in citrine.station("CP006").installed()] == ["TxDefaultProfile"]


def test_a_lost_callback_times_out_and_the_current_plan_goes_once(citrine, clock, transport, outbox, site) -> None:
    """The station's answer never reaches us: after the deadline the entry is unanswered and the next run sends
    the current plan under the same profile id, so the station replaces what it holds instead of stacking it."""
    policy = DeliveryPolicy(answer_deadline=timedelta(minutes=2))
    citrine.connect("CP007")
    citrine.drop_next_answer("CP007")
    first = _run(outbox, transport, site, {"CP007": [4.0] * 8}, now=NOW, run_id="r1", policy=policy)
    assert first.entries["CP007"].status == "sent"
    clock.now = later = NOW + timedelta(minutes=3)
    second = _run(outbox, transport, site, {"CP007": [5.0] * 8}, now=later, run_id="r2", policy=policy)
    assert [e.id for e in second.unanswered] == [first.entries["CP007"].id]
    entry = second.entries["CP007"]
    assert (entry.status, entry.attempts, entry.profile_id) == ("accepted", 2, first.entries["CP007"].profile_id)
    [(_, held)] = citrine.station("CP007").installed()
    assert held["chargingSchedule"][0]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 5000.0}]


def test_a_5xx_is_a_failed_attempt_retried_after_the_backoff(citrine, clock, transport, outbox, site) -> None:
    citrine.connect("CP008")
    citrine.fail_next_request(503)
    first = _run(outbox, transport, site, {"CP008": [4.0] * 8}, now=NOW, run_id="r1")
    failed = first.entries["CP008"]
    assert failed.status == "failed" and failed.status_reason.startswith("SetChargingProfile: HTTP 503: ")
    assert failed.retry_after == NOW + timedelta(seconds=30)
    early = _run(outbox, transport, site, {"CP008": [4.0] * 8}, now=NOW + timedelta(seconds=10), run_id="r2")
    assert early.entries == {} and "retry after" in early.backing_off["CP008"]
    clock.now = later = NOW + timedelta(minutes=1)
    again = _run(outbox, transport, site, {"CP008": [4.0] * 8}, now=later, run_id="r3")
    assert (again.entries["CP008"].status, again.entries["CP008"].attempts) == ("accepted", 2)
    assert len(citrine.station("CP008").installed()) == 1


def test_settings_choose_the_transport_and_rest_needs_a_callback_url() -> None:
    assert DispatchSettings.from_env({}).make_transport().name == "outbox"
    rest = DispatchSettings.from_env({"CARIFLEX_DISPATCH_TRANSPORT": "rest",
                                      "CARIFLEX_CITRINEOS_URL": "http://citrine.example:8080",
                                      "CARIFLEX_CITRINEOS_CALLBACK_URL": "http://ems.example:8091"}).make_transport()
    assert rest.name == "rest"
    with pytest.raises(ValueError, match="CARIFLEX_CITRINEOS_CALLBACK_URL"):
        DispatchSettings.from_env({"CARIFLEX_DISPATCH_TRANSPORT": "rest",
                                   "CARIFLEX_CITRINEOS_URL": "http://citrine.example:8080"}).make_transport()
    amqp = DispatchSettings.from_env({"CARIFLEX_DISPATCH_TRANSPORT": "amqp",
                                      "CARIFLEX_AMQP_URL": "amqps://u:p@broker.example:5671/%2F",
                                      "CARIFLEX_CITRINEOS_ENVELOPE": "1.9"}).make_transport()
    assert (amqp.name, amqp.envelope_version) == ("amqp", "1.9")
    with pytest.raises(ValueError, match="CARIFLEX_AMQP_URL"):
        DispatchSettings.from_env({"CARIFLEX_DISPATCH_TRANSPORT": "amqp"}).make_transport()
    with pytest.raises(ValueError, match="expected one of"):
        DispatchSettings.from_env({"CARIFLEX_DISPATCH_TRANSPORT": "mqtt"}).make_transport()


def test_amqps_url_gets_tls_and_errors_never_show_the_password() -> None:
    from cariflex_pipeline.dispatch.connections import amqp_parameters, safe_url

    parameters = amqp_parameters("amqps://user:hunter2@broker.example:5671/%2F")
    assert parameters.ssl_options is not None and parameters.port == 5671
    assert safe_url("amqps://user:hunter2@broker.example:5671/%2F") == "amqps://broker.example:5671/%2F"
