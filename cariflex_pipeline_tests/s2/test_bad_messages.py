"""Bad input at the S2 boundary: each malformed or out-of-protocol message gets a ReceptionStatus naming what is
wrong, the connection stays up (the next good message is answered OK), and nothing is lost from the log."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from s2python.common import ReceptionStatusValues
from s2python.message import S2Message
from s2python.s2_parser import TYPE_TO_MESSAGE_CLASS

from cariflex_pipeline.s2 import state
from cariflex_pipeline.s2.protocol import NIL_ID, Phase, Refusal, out_of_protocol, parse_incoming
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.s2.helpers import RawRm, RunningCem, message, wait_for

NIL = str(NIL_ID)


def _storage_status(fill: object = 3.0) -> dict:
    return message("FRBC.StorageStatus", present_fill_level=fill)


@pytest.fixture
def raw(cem: RunningCem):
    client = RawRm(cem.url)
    yield client
    client.close()


def test_before_the_handshake_only_a_handshake_is_accepted(raw: RawRm) -> None:
    early = _storage_status()
    assert raw.ask(early) == {"message_type": "ReceptionStatus", "subject_message_id": early["message_id"],
                              "status": "INVALID_MESSAGE",
                              "diagnostic_label": "message_type: FRBC.StorageStatus before the Handshake"}
    raw.handshake("battery_01")  # still up, and the session proceeds


@pytest.mark.parametrize(("text", "status", "subject", "diagnostic"), [
    ("{not json", "INVALID_DATA", NIL, "not valid JSON: Expecting property name enclosed in double quotes: "
                                       "line 1 column 2 (char 1)"),
    ("[1, 2]", "INVALID_DATA", NIL, "an S2 message is a JSON object, not list"),
    ('{"message_type": "FRBC.StorageStatus", "message_id": "7"}', "INVALID_DATA", NIL,
     "message_id: '7' is not a UUID"),
])
def test_what_is_not_an_s2_message_is_invalid_data(raw: RawRm, text: str, status: str, subject: str,
                                                   diagnostic: str) -> None:
    raw.handshake("battery_01")
    answer = raw.ask(text)
    assert (answer["status"], answer["subject_message_id"], answer["diagnostic_label"]) == (status, subject,
                                                                                            diagnostic)
    good = _storage_status()
    assert {key: raw.ask(good)[key] for key in ("subject_message_id", "status")} == {
        "subject_message_id": good["message_id"], "status": "OK"}  # the connection is still up


def test_a_malformed_s2_message_is_invalid_message_naming_each_field(store: TimeSeriesStore, raw: RawRm) -> None:
    raw.handshake("battery_01")
    bad = _storage_status(fill="plenty")
    answer = raw.ask(bad)
    assert answer == {"message_type": "ReceptionStatus", "subject_message_id": bad["message_id"],
                      "status": "INVALID_MESSAGE",
                      "diagnostic_label": "FRBC.StorageStatus: present_fill_level: Input should be a valid number, "
                                          "unable to parse string as a number"}
    unknown = message("FRBC.Teleport", destination="mars")
    assert raw.ask(unknown)["diagnostic_label"] == "message_type: 'FRBC.Teleport' is not an S2 message type"
    incomplete = message("InstructionStatusUpdate", status_type="ACCEPTED")
    assert raw.ask(incomplete)["diagnostic_label"] == (
        "InstructionStatusUpdate: instruction_id: Field required; timestamp: Field required")
    logged = wait_for(lambda: [r for r in state.messages(store.engine) if r["message_id"] == bad["message_id"]],
                      "the refused message logged")
    assert [(r["direction"], r["reception_status"], json.loads(r["payload"])) for r in logged] == [
        ("in", "INVALID_MESSAGE", bad)]


def test_a_nul_character_is_refused_and_logged_escaped_on_either_store(store: TimeSeriesStore, raw: RawRm) -> None:
    # found by the fuzz below: PostgreSQL text cannot hold NUL, and the log must not fail on a hostile RM
    hostile = message("FRBC.Storage\x00Status")
    assert raw.ask(hostile)["status"] == "INVALID_MESSAGE"
    [row] = wait_for(lambda: [r for r in state.messages(store.engine) if r["message_id"] == hostile["message_id"]],
                     "the hostile message logged")
    assert row["message_type"] == "FRBC.Storage\\x00Status"


def test_what_only_a_cem_sends_is_out_of_protocol(raw: RawRm) -> None:
    raw.handshake("battery_01")
    instruction = message("FRBC.Instruction", id=str(uuid.uuid4()), actuator_id=str(uuid.uuid4()),
                          operation_mode=str(uuid.uuid4()), operation_mode_factor=0.5,
                          execution_time="2026-12-02T12:00:00Z", abnormal_condition=False)
    assert raw.ask(instruction)["diagnostic_label"] == (
        "message_type: FRBC.Instruction is sent by a CEM, not by a resource manager")
    again = message("Handshake", role="RM")
    assert raw.ask(again)["diagnostic_label"] == "message_type: a second Handshake on the same connection"
    other = message("PPBC.PowerProfileStatus", actual_plan_sequence_id=[])
    assert raw.ask(other)["status"] == "INVALID_MESSAGE"


def test_content_the_rm_never_declared_is_invalid_content(raw: RawRm) -> None:
    raw.handshake("battery_01")
    update = message("InstructionStatusUpdate", instruction_id=str(uuid.uuid4()), status_type="ACCEPTED",
                     timestamp="2026-12-02T12:00:00Z")
    answer = raw.ask(update)
    assert (answer["status"], answer["diagnostic_label"]) == (
        "INVALID_CONTENT", f"instruction_id: {update['instruction_id']} is no instruction sent to this resource")
    status = message("FRBC.ActuatorStatus", actuator_id=str(uuid.uuid4()), active_operation_mode_id=str(uuid.uuid4()),
                     operation_mode_factor=0.0)
    assert raw.ask(status)["diagnostic_label"] == (
        f"actuator_id: {status['actuator_id']} is not an actuator of the system description")


def test_a_non_frbc_rm_gets_no_frbc_exchange(raw: RawRm) -> None:
    selected = raw.handshake("battery_01", control_types=("OPERATION_MODE_BASED_CONTROL",))
    assert selected["control_type"] == "NOT_CONTROLABLE"
    answer = raw.ask(_storage_status())
    assert answer["diagnostic_label"] == "message_type: FRBC.StorageStatus but the selected control type is none"


def test_a_malformed_reception_status_is_not_answered(raw: RawRm) -> None:
    raw.handshake("battery_01")
    raw.send({"message_type": "ReceptionStatus", "subject_message_id": "x", "status": "MAYBE"})
    probe = message("SessionRequest", request="RECONNECT")
    assert raw.ask(probe)["subject_message_id"] == probe["message_id"]  # the next answer is the probe's


# --- the boundary, fuzzed ---------------------------------------------------------------------------------

_json = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
                     lambda children: st.lists(children, max_size=4)
                     | st.dictionaries(st.text(max_size=12), children, max_size=4), max_leaves=20)
_typed = st.fixed_dictionaries({"message_type": st.sampled_from(sorted(TYPE_TO_MESSAGE_CLASS)),
                                "message_id": st.one_of(st.uuids().map(str), st.text(max_size=8))},
                               optional={"present_fill_level": _json, "role": _json, "actuators": _json,
                                         "subject_message_id": _json, "status": _json})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), _json.map(json.dumps), _typed.map(json.dumps)))
def test_any_text_is_a_message_or_a_refusal_never_an_exception(raw_text: str) -> None:
    parsed = parse_incoming(raw_text)
    assert isinstance(parsed, S2Message | Refusal)
    if isinstance(parsed, Refusal):
        assert parsed.status in (ReceptionStatusValues.INVALID_DATA, ReceptionStatusValues.INVALID_MESSAGE)
        assert parsed.diagnostic
        parsed.reception_status().to_json()  # always sendable
        if parsed.status == ReceptionStatusValues.INVALID_DATA:
            assert parsed.subject_message_id == NIL_ID
    else:
        for phase in Phase:
            refusal = out_of_protocol(parsed.message_type, getattr(parsed, "message_id", None) or NIL_ID, phase)
            assert refusal is None or refusal.diagnostic.startswith("message_type: ")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.text(max_size=80), _typed.map(json.dumps)), min_size=1, max_size=5))
def test_a_live_connection_survives_any_sequence_of_garbage(cem: RunningCem, texts: list[str]) -> None:
    client = RawRm(cem.url)
    try:
        for text in texts:
            client.send(text)
        probe = message("Handshake", role="RM")
        client.send(probe)
        # whatever came before, the connection answers the probe (a refusal if a Handshake slipped in first)
        wait_for(lambda: _answered(client, probe["message_id"]), "the probe answered")
    finally:
        client.close()


def _answered(client: RawRm, message_id: str) -> bool:
    while True:
        received = client.receive()
        if received.get("subject_message_id") == message_id:
            return True
