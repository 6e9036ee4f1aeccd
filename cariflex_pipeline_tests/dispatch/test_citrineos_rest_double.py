"""The CitrineOS 1.8.3 REST double answers as CitrineOS does: its texts, its profile table, its callbacks."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cariflex_pipeline.dispatch.callbacks import AnswerReceiver, callback_url
from cariflex_pipeline.dispatch.peer_schemas import violations
from cariflex_pipeline.dispatch.transports import Answer
from cariflex_pipeline_tests.dispatch.citrineos_rest import CitrineRestDouble, RestCall

NOW = datetime(2026, 11, 28, 13, 7, 30, tzinfo=UTC)
SLOT = NOW.replace(minute=0, second=0)
TOKEN = "double-token"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def set_request(profile_id: int = 7, *, evse_id: int = 0, purpose: str = "TxDefaultProfile", stack_level: int = 1,
                valid_to: datetime = NOW + timedelta(hours=1), limit: float = 7000.0,
                transaction_id: str | None = None) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "id": profile_id, "stackLevel": stack_level, "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute", "validFrom": iso(SLOT), "validTo": iso(valid_to),
        "chargingSchedule": [{"id": 1, "chargingRateUnit": "W", "startSchedule": iso(SLOT),
                              "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}]}
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return {"evseId": evse_id, "chargingProfile": profile}


def tx_request(profile_id: int = 10, **changes: Any) -> dict[str, Any]:
    return set_request(profile_id, **{"evse_id": 1, "purpose": "TxProfile", "transaction_id": "T1", **changes})


class Answers:
    """The callback receiver's record function: every correlation id is ours."""

    def __init__(self) -> None:
        self.got: list[Answer] = []

    def __call__(self, answer: Answer) -> bool:
        self.got.append(answer)
        return True


@pytest.fixture
def answers() -> Answers:
    return Answers()


@pytest.fixture
def receiver(answers: Answers) -> Iterator[AnswerReceiver]:
    with AnswerReceiver(answers) as running:
        yield running


@pytest.fixture
def citrine() -> Iterator[CitrineRestDouble]:
    with CitrineRestDouble(token=TOKEN, clock=lambda: NOW) as double:
        double.connect("CP001")
        yield double


def post(double: CitrineRestDouble, route: str, body: Any, *, identifier: str | list[str] = "CP001",
         callback: str | None = None, token: str | None = TOKEN) -> httpx.Response:
    params: dict[str, Any] = {"identifier": identifier, "tenantId": "1"}
    if callback is not None:
        params["callbackUrl"] = callback
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{double.url}/ocpp/2.0.1/smartcharging/{route}", params=params, json=body, headers=headers)


def set_profile(double: CitrineRestDouble, body: dict[str, Any], **options: Any) -> Any:
    response = post(double, "setChargingProfile", body, **options)
    assert response.status_code == 200, response.text
    [confirmation] = response.json()
    return confirmation


def refused(text: str) -> dict[str, Any]:
    return {"success": False, "payload": text}


ACCEPTED = {"success": True}


def active_ids(double: CitrineRestDouble, station_id: str = "CP001") -> list[int]:
    return [row.id for row in double.profiles(station_id) if row.is_active]


# --- the route, the token, the schema ------------------------------------------------------------------------

def test_accepted_profile_is_sent_answered_to_the_callback_and_active_in_the_table(citrine, receiver,
                                                                                 answers) -> None:
    url = callback_url(receiver.url, "CP001", "SetChargingProfile", "ours-1")
    assert set_profile(citrine, set_request(), callback=url) == ACCEPTED
    citrine.settle()
    assert answers.got == [Answer("ours-1", "CP001", "Accepted", "", "SetChargingProfile")]
    assert answers.got[0].payload == {"status": "Accepted"}
    [answer] = citrine.answers
    assert (answer.station_id, answer.action, answer.response, answer.callback_url, answer.delivery,
            answer.callback_status) == ("CP001", "SetChargingProfile", {"status": "Accepted"}, url, "posted", 204)
    assert citrine.station("CP001").installed() == [(0, set_request()["chargingProfile"])]
    [row] = citrine.profiles("CP001")
    assert (row.id, row.evse_id, row.source, row.is_active, row.profile) == (
        7, 0, "CSO", True, set_request()["chargingProfile"])
    assert citrine.calls == [RestCall("/ocpp/2.0.1/smartcharging/setChargingProfile",
                                      {"identifier": "CP001", "tenantId": "1", "callbackUrl": url}, set_request(),
                                      f"Bearer {TOKEN}")]


def test_the_row_is_inactive_until_the_station_answers(citrine) -> None:
    citrine.delay_answers(60)
    assert set_profile(citrine, set_request()) == ACCEPTED
    [row] = citrine.profiles("CP001")
    assert row.is_active is False
    assert citrine.answers[0].delivery == "pending"


@pytest.mark.parametrize(("token", "message"), [(None, "Missing or invalid authorization header"),
                                                ("wrong", "Invalid token")])
def test_a_missing_or_wrong_token_is_401(citrine, token, message) -> None:
    response = post(citrine, "setChargingProfile", set_request(), token=token)
    assert (response.status_code, response.json()) == (401, {"error": "Unauthorized", "message": message})
    assert citrine.profiles() == []
    assert citrine.calls[0].auth == (f"Bearer {token}" if token else None)


def test_without_a_token_configured_none_is_needed() -> None:
    with CitrineRestDouble(clock=lambda: NOW) as double:
        double.connect("CP001")
        assert set_profile(double, set_request(), token=None) == ACCEPTED


def test_a_limit_that_fails_multiple_of_in_floating_point_is_400(citrine) -> None:
    body = set_request(limit=8967.3)
    response = post(citrine, "setChargingProfile", body)
    assert response.status_code == 400
    assert response.json() == {"statusCode": 400, "code": "FST_ERR_VALIDATION", "error": "Bad Request",
                               "message": violations("SetChargingProfile", body)[0]}
    assert "multiple of 0.1" in response.json()["message"]
    assert citrine.profiles() == [] and citrine.answers == []
    assert citrine.station("CP001").installed() == []


def test_a_whole_limit_passes_the_schema(citrine) -> None:
    assert set_profile(citrine, set_request(limit=8967.0)) == ACCEPTED


def test_unconnected_station_has_no_connection_but_the_profile_is_saved_inactive(citrine) -> None:
    assert set_profile(citrine, set_request(), identifier="CP009") == refused(
        "No connection found for identifier: 1:CP009")
    [row] = citrine.profiles("CP009")
    assert (row.id, row.is_active) == (7, False)
    assert citrine.answers == []


def test_a_disconnected_station_has_no_connection(citrine) -> None:
    citrine.disconnect("CP001")
    assert set_profile(citrine, set_request()) == refused("No connection found for identifier: 1:CP001")


def test_each_identifier_gets_its_own_confirmation(citrine) -> None:
    citrine.connect("CP002")
    response = post(citrine, "setChargingProfile", set_request(), identifier=["CP001", "CP003", "CP002"])
    assert response.json() == [ACCEPTED, refused("No connection found for identifier: 1:CP003"), ACCEPTED]
    assert citrine.calls[0].query["identifier"] == ["CP001", "CP003", "CP002"]


def test_missing_identifier_and_unknown_route(citrine) -> None:
    response = httpx.post(f"{citrine.url}/ocpp/2.0.1/smartcharging/setChargingProfile",
                          json=set_request(), headers={"Authorization": f"Bearer {TOKEN}"})
    assert (response.status_code, response.json()["message"]) == (
        400, "querystring must have required property 'identifier'")
    unknown = post(citrine, "getChargingSchedule", {})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "Not Found"


# --- K01 rules of setChargingProfile ---------------------------------------------------------------------------

def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    *parents, last = path.split(".")
    target: Any = changed
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return changed


@pytest.mark.parametrize(("body", "text"), [
    (_with(set_request(), "chargingProfile.validFrom", iso(NOW + timedelta(seconds=1))),
     f"chargingProfile validFrom {iso(NOW + timedelta(seconds=1))} should not be in the future."),
    (set_request(valid_to=NOW), f"chargingProfile validTo {iso(NOW)} should be in the future."),
    (_with(set_request(), "chargingProfile.chargingSchedule.0.chargingSchedulePeriod.0.startPeriod", 300),
     "ChargingSchedule 1: The startPeriod of the first chargingSchedulePeriod SHALL be 0."),
    (_with(set_request(), "chargingProfile.chargingSchedule.0.startSchedule", None),
     "ChargingSchedule 1: startSchedule SHALL be set when chargingProfileKind is Absolute or Recurring."),
    (_with(set_request(), "chargingProfile.chargingProfileKind", "Relative"),
     "ChargingSchedule 1: startSchedule SHALL be absent when chargingProfileKind is Relative."),
    (set_request(purpose="ChargingStationMaxProfile", evse_id=1),
     "When chargingProfilePurpose is ChargingStationMaxProfile, evseId SHALL be 0"),
    (set_request(transaction_id="T1"),
     "transactionId SHALL only be included when ChargingProfilePurpose is set to TxProfile."),
    (set_request(purpose="ChargingStationExternalConstraints"),
     "The CSMS SHALL NOT set chargingProfilePurpose to ChargingStationExternalConstraints."),
    (_with(set_request(), "chargingProfile.chargingSchedule.0.chargingSchedulePeriod.0.phaseToUse", 1),
     "chargingSchedulePeriod with phaseToUse requires numberPhases=1"),
])
def test_set_rules_refuse_with_citrineos_texts(citrine, body, text) -> None:
    assert set_profile(citrine, body) == refused(text)
    assert citrine.profiles() == [] and citrine.answers == []


def test_the_first_period_is_checked_as_given_then_the_periods_are_sent_sorted(citrine) -> None:
    body = _with(set_request(), "chargingProfile.chargingSchedule.0.chargingSchedulePeriod",
                 [{"startPeriod": 0, "limit": 7000.0}, {"startPeriod": 1800, "limit": 3000.0},
                  {"startPeriod": 900, "limit": 5000.0}])
    assert set_profile(citrine, body) == ACCEPTED
    [(_, held)] = citrine.station("CP001").installed()
    assert [p["startPeriod"] for p in held["chargingSchedule"][0]["chargingSchedulePeriod"]] == [0, 900, 1800]


@pytest.mark.parametrize(("body", "text"), [
    (_with(tx_request(), "chargingProfile.transactionId", None),
     "Missing transactionId for chargingProfilePurpose TxProfile."),
    (tx_request(transaction_id="T9"), "Transaction T9 not found on station CP001."),
    (tx_request(evse_id=0), "TxProfile SHALL only be used with evseId > 0."),
    (tx_request(evse_id=2), "Evse 2 not found."),
    (_with(tx_request(), "chargingProfile.chargingSchedule", tx_request()["chargingProfile"]["chargingSchedule"] * 2),
     "No prior NotifyEVChargingNeedsReq found for this transaction 1. Only one ChargingScheduleType allowed "
     "without it."),
])
def test_tx_profile_rules_refuse_with_citrineos_texts(citrine, body, text) -> None:
    citrine.start_transaction("CP001", 1, "T1")
    assert set_profile(citrine, body) == refused(text)


def test_same_slot_replan_needs_a_later_valid_to(citrine) -> None:
    assert set_profile(citrine, set_request(limit=7000.0)) == ACCEPTED
    citrine.settle()
    assert active_ids(citrine) == [7]
    same = set_request(limit=5000.0)
    assert set_profile(citrine, same) == refused(
        "No two charging profiles with the same stack level and purpose can be valid at the same time.")
    later = set_request(limit=5000.0, valid_to=NOW + timedelta(hours=1, minutes=15))
    assert set_profile(citrine, later) == ACCEPTED
    citrine.settle()
    [row] = citrine.profiles("CP001")
    assert (row.is_active, row.profile) == (True, later["chargingProfile"])
    assert citrine.station("CP001").installed() == [(0, later["chargingProfile"])]


def test_the_same_slot_on_another_evse_or_stack_level_is_no_conflict(citrine) -> None:
    citrine.connect("CP001", evse_ids=(1, 2))
    assert set_profile(citrine, set_request()) == ACCEPTED
    citrine.settle()
    assert set_profile(citrine, set_request(8, evse_id=1)) == ACCEPTED
    assert set_profile(citrine, set_request(9, stack_level=2)) == ACCEPTED


def test_tx_profile_update_in_the_same_transaction_waits_for_an_accepted_clear(citrine, receiver, answers) -> None:
    citrine.start_transaction("CP001", 1, "T1")
    assert set_profile(citrine, tx_request(limit=7000.0)) == ACCEPTED
    citrine.settle()
    update = tx_request(limit=4000.0, valid_to=NOW + timedelta(hours=2))
    already = refused("1 ChargingProfile with stackLevel 1 and transactionId T1 already exists.")
    assert set_profile(citrine, update) == already

    # a clear the station answers Unknown changes nothing in CitrineOS's table
    clear_url = callback_url(receiver.url, "CP001", "ClearChargingProfile", "clear-1")
    assert post(citrine, "clearChargingProfile", {"chargingProfileId": 99}, callback=clear_url).json() == [ACCEPTED]
    citrine.settle()
    assert set_profile(citrine, update) == already

    clear_url = callback_url(receiver.url, "CP001", "ClearChargingProfile", "clear-2")
    assert post(citrine, "clearChargingProfile", {"chargingProfileId": 10}, callback=clear_url).json() == [ACCEPTED]
    citrine.settle()
    assert [(a.correlation_id, a.action, a.status) for a in answers.got] == [
        ("clear-1", "ClearChargingProfile", "Unknown"), ("clear-2", "ClearChargingProfile", "Accepted")]
    assert active_ids(citrine) == []
    assert set_profile(citrine, update) == ACCEPTED
    citrine.settle()
    assert active_ids(citrine) == [10]


def test_an_accepted_clear_reactivates_what_the_station_still_holds(citrine) -> None:
    citrine.start_transaction("CP001", 1, "T1")
    assert set_profile(citrine, set_request(7)) == ACCEPTED
    assert set_profile(citrine, tx_request(10)) == ACCEPTED
    citrine.settle()
    assert active_ids(citrine) == [7, 10]
    assert post(citrine, "clearChargingProfile", {"chargingProfileId": 10}).json() == [ACCEPTED]
    citrine.settle()
    assert active_ids(citrine) == [7]


def test_a_station_rejection_leaves_the_row_inactive_and_reaches_the_callback(citrine, receiver, answers) -> None:
    citrine.start_transaction("CP001", 1, "T1")
    citrine.end_transaction("CP001", 1)  # CitrineOS still knows T1; the station no longer runs it
    url = callback_url(receiver.url, "CP001", "SetChargingProfile", "ours-tx")
    assert set_profile(citrine, tx_request(), callback=url) == ACCEPTED
    citrine.settle()
    assert answers.got == [Answer("ours-tx", "CP001", "Rejected", "TxNotFound", "SetChargingProfile")]
    assert answers.got[0].payload == {"status": "Rejected", "statusInfo": {"reasonCode": "TxNotFound"}}
    [row] = citrine.profiles("CP001")
    assert (row.id, row.is_active) == (10, False)


def test_an_accepted_profile_deactivates_the_other_cso_rows_the_station_no_longer_holds(citrine) -> None:
    assert set_profile(citrine, set_request(7)) == ACCEPTED
    citrine.settle()
    citrine.station("CP001").clear({"chargingProfileId": 7})  # the station dropped it without CitrineOS knowing
    assert active_ids(citrine) == [7]
    assert set_profile(citrine, set_request(8, stack_level=2)) == ACCEPTED
    citrine.settle()
    assert active_ids(citrine) == [8]


# --- K10 rules of clearChargingProfile, K08 of getCompositeSchedule -------------------------------------------

@pytest.mark.parametrize(("body", "text"), [
    ({}, "Either chargingProfileId or chargingProfileCriteria must be provided"),
    ({"chargingProfileCriteria": {}},
     "At least one of chargingProfilePurpose, stackLevel, or evseId must be provided when chargingProfileId is not "
     "provided."),
    ({"chargingProfileCriteria": {"stackLevel": 0, "evseId": 0}},  # 0 is false to JavaScript
     "At least one of chargingProfilePurpose, stackLevel, or evseId must be provided when chargingProfileId is not "
     "provided."),
    ({"chargingProfileId": 7, "chargingProfileCriteria": {"stackLevel": 1}},
     "chargingProfileCriteria is not needed when chargingProfileId is provided."),
    ({"chargingProfileCriteria": {"chargingProfilePurpose": "ChargingStationExternalConstraints"}},
     "The CSMS SHALL NOT set chargingProfilePurpose to ChargingStationExternalConstraints."),
])
def test_clear_rules_refuse_with_citrineos_texts(citrine, body, text) -> None:
    assert post(citrine, "clearChargingProfile", body).json() == [refused(text)]
    assert citrine.answers == []


def test_clear_by_criteria_reaches_the_station(citrine) -> None:
    assert set_profile(citrine, set_request()) == ACCEPTED
    body = {"chargingProfileCriteria": {"chargingProfilePurpose": "TxDefaultProfile"}}
    assert post(citrine, "clearChargingProfile", body).json() == [ACCEPTED]
    citrine.settle()
    assert citrine.answers[-1].response == {"status": "Accepted"}
    assert citrine.station("CP001").installed() == []


def test_composite_schedule_comes_from_the_station(citrine, receiver, answers) -> None:
    assert set_profile(citrine, set_request(limit=7000.0)) == ACCEPTED
    url = callback_url(receiver.url, "CP001", "GetCompositeSchedule", "read-1")
    request = {"evseId": 1, "duration": 900, "chargingRateUnit": "W"}
    assert post(citrine, "getCompositeSchedule", request, callback=url).json() == [ACCEPTED]
    citrine.settle()
    [answer] = answers.got
    assert (answer.action, answer.status) == ("GetCompositeSchedule", "Accepted")
    assert answer.payload == {"status": "Accepted", "schedule": {
        "evseId": 1, "duration": 900, "scheduleStart": iso(NOW), "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7000.0}]}}


def test_composite_schedule_of_an_unreported_evse_is_refused(citrine) -> None:
    response = post(citrine, "getCompositeSchedule", {"evseId": 3, "duration": 900})
    assert response.json() == [refused("EVSE 3 not found for station CP001.")]


# --- the answer knobs --------------------------------------------------------------------------------------------

def test_a_dropped_answer_is_never_posted_but_citrineos_still_updates_its_table(citrine, receiver, answers) -> None:
    citrine.drop_next_answer("CP001")
    first = callback_url(receiver.url, "CP001", "SetChargingProfile", "ours-dropped")
    assert set_profile(citrine, set_request(), callback=first) == ACCEPTED
    citrine.settle()
    assert answers.got == []
    assert (citrine.answers[0].delivery, citrine.answers[0].callback_status) == ("dropped", None)
    assert active_ids(citrine) == [7]
    # only the next one is dropped
    second = callback_url(receiver.url, "CP001", "SetChargingProfile", "ours-next")
    assert set_profile(citrine, set_request(8, stack_level=2), callback=second) == ACCEPTED
    citrine.settle()
    assert [a.correlation_id for a in answers.got] == ["ours-next"]


def test_a_delayed_answer_is_not_delivered_before_its_time(receiver, answers) -> None:
    double = CitrineRestDouble(clock=lambda: NOW).start()
    double.connect("CP001")
    double.delay_answers(60)
    url = callback_url(receiver.url, "CP001", "SetChargingProfile", "ours-late")
    assert set_profile(double, set_request(), callback=url, token=None) == ACCEPTED
    with pytest.raises(TimeoutError, match="1 CitrineOS answer"):
        double.settle(timeout=0.2)
    double.stop()
    assert answers.got == []
    assert double.answers[0].delivery == "pending"


def test_a_callback_nobody_listens_to_is_only_recorded_as_failed(citrine, receiver) -> None:
    url = callback_url(receiver.url, "CP001", "SetChargingProfile", "ours-lost")
    receiver.stop()
    assert set_profile(citrine, set_request(), callback=url) == ACCEPTED
    citrine.settle()
    assert citrine.answers[0].delivery == "failed: ConnectError"
    assert active_ids(citrine) == [7]


def test_an_answer_citrineos_schema_refuses_changes_nothing_and_is_not_posted(citrine, receiver, answers,
                                                                              monkeypatch) -> None:
    monkeypatch.setattr(citrine.station("CP001"), "set_profile", lambda evse_id, profile: ("Maybe", None))
    url = callback_url(receiver.url, "CP001", "SetChargingProfile", "ours-odd")
    assert set_profile(citrine, set_request(), callback=url) == ACCEPTED
    citrine.settle()
    assert citrine.answers[0].delivery == ("invalid: $.status: 'Maybe' is not one of ['Accepted', 'Rejected'] "
                                           "(CitrineOS 1.8.3 SetChargingProfileResponse schema)")
    assert answers.got == [] and active_ids(citrine) == []
