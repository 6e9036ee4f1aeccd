"""The plan to the devices: the battery part of a plan in the store becomes FRBC.Instructions within the RM's
declared ranges, stored before they are sent; the simulated battery follows them and its fill level follows the
plan; a new plan revokes what it replaces; a reconnecting RM gets what is still in force; an unanswered
instruction is retried from the planned power."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest

from cariflex_pipeline.s2 import state
from cariflex_pipeline.s2.devices import S2_SOURCE
from cariflex_pipeline.s2.planning import planned_fill, stage_plan
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.s2.conftest import NOW
from cariflex_pipeline_tests.s2.helpers import DEVICES, SITE_ID, Clock, RawRm, RunningCem, message, wait_for
from cariflex_pipeline_tests.s2.simulators import Storage, StorageControl

SOURCE = "cariflex-scheduler"
SLOT = timedelta(minutes=15)
HOUR = timedelta(hours=1)
BATTERY = {"battery_01": DEVICES["battery_01"]}
SILENT = "5e1e0700-0000-4000-8000-00000000b001"  # an RM that never answers


def _write_plan(store: TimeSeriesStore, sensor_id: int, powers: list[float], belief_offset: int = 0) -> None:
    frame = pd.DataFrame({"sensor_id": sensor_id, "event_start": [NOW + i * SLOT for i in range(len(powers))],
                          "value": powers, "belief_time": NOW + timedelta(seconds=belief_offset)})
    store.write_beliefs(frame, source=SOURCE, source_type="scheduler")


def _stage(store: TimeSeriesStore, key: str) -> state.Staged:
    [result] = stage_plan(store, BATTERY, SOURCE, NOW, HOUR, key, NOW, site_id=SITE_ID)
    assert result.reason == "", result.reason
    assert result.staged is not None
    return result.staged


def _statuses(store: TimeSeriesStore, resource_id: str) -> list[tuple[str, float, str]]:
    return [(row["operation_mode_id"], round(row["power_kw"], 6), row["status"])
            for row in state.instructions(store.engine, resource_id)]


def _connected(store: TimeSeriesStore, make_rm, **kwargs):
    rm = make_rm("battery_01", **kwargs).connect()
    rm.wait_controlled()
    wait_for(lambda: (row := state.resource(store.engine, str(rm.resource_id))) and row["actuator_status"],
             "the battery's state stored")
    return rm


def test_the_battery_follows_the_plan(store: TimeSeriesStore, clock: Clock, cem: RunningCem, make_rm) -> None:
    rm = _connected(store, make_rm)
    resource_id = str(rm.resource_id)
    _write_plan(store, 51, [5.0, 5.0, -2.5, 0.0])
    assert _stage(store, "plan-1") == state.Staged(kept=0, added=3, superseded=0, revoking=0)
    modes = rm.control.modes
    wait_for(lambda: all(s == "accepted" for *_, s in _statuses(store, resource_id)), "the instructions accepted")
    assert _statuses(store, resource_id) == [(str(modes["charge"]), 5.0, "accepted"),
                                             (str(modes["discharge"]), -2.5, "accepted"),
                                             (str(modes["idle"]), 0.0, "accepted")]
    # the fill level it should reach at each coming slot start, written beside what it will report
    assert planned_fill(store, DEVICES["battery_01"], NOW, NOW + 2 * HOUR) == [
        (NOW + SLOT, 8.0), (NOW + 2 * SLOT, 9.25), (NOW + 3 * SLOT, 8.625), (NOW + 4 * SLOT, 8.625)]
    received = rm.instructions_received()
    assert [(i.operation_mode, i.operation_mode_factor, i.execution_time) for i in received] == [
        (modes["charge"], 1.0, NOW), (modes["discharge"], 0.5, NOW + 2 * SLOT), (modes["idle"], 0.0, NOW + 3 * SLOT)]
    # every instruction was stored before it went out, with its history
    first = state.instructions(store.engine, resource_id)[0]
    assert [event["event"] for event in state.instruction_events(store.engine, first["id"])] == [
        "pending", "sent", "received", "accepted"]

    expected, fills = 6.75, []
    for slot, planned in enumerate([5.0, 5.0, -2.5, 0.0]):
        clock.now = NOW + slot * SLOT + timedelta(seconds=899)  # the device reports at the end of each slot
        followed = rm.advance(NOW + slot * SLOT, SLOT.total_seconds())
        expected += planned * 0.25
        fills.append(expected)
        assert followed.power_kw == pytest.approx(planned, abs=1e-9)
        assert followed.fill_kwh == pytest.approx(expected, abs=1e-6)
        reported_at = clock.now
        wait_for(lambda: state.resource(store.engine, resource_id)["fill_level_at"] == reported_at,  # noqa: B023
                 f"the CEM saw slot {slot}'s fill level")
        assert state.resource(store.engine, resource_id)["fill_level"] == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(8.625)
    # what the device reported is a series beside the plan: fill level on its SoC sensor, actual power on 51
    wait_for(lambda: len(store.read_latest([51], sources=[S2_SOURCE])) == 4
             and store.read_latest([51], sources=[S2_SOURCE])["event_start"].iloc[-1] == NOW + 3 * SLOT,
             "the actual power of every slot written")
    soc = store.read_latest([151], sources=[S2_SOURCE])
    assert soc["value"].round(6).tolist() == fills
    assert soc["event_start"].tolist() == [NOW + i * SLOT for i in range(4)]
    actual = store.read_latest([51], sources=[S2_SOURCE])
    assert actual["value"].round(6).tolist() == [5.0, 5.0, -2.5, 0.0]
    assert [s for *_, s in _statuses(store, resource_id)] == ["started", "started", "started"]

    # the same plan again changes nothing and sends nothing
    assert _stage(store, "plan-1-rerun") == state.Staged(kept=3, added=0, superseded=0, revoking=0)
    assert len(rm.instructions_received()) == 3


def test_a_new_plan_revokes_the_instructions_it_replaces(store: TimeSeriesStore, cem: RunningCem,
                                                         make_rm) -> None:
    rm = _connected(store, make_rm)
    resource_id = str(rm.resource_id)
    _write_plan(store, 51, [5.0, 5.0, -2.5, -2.5])
    _stage(store, "plan-1")
    wait_for(lambda: len(rm.instructions_received()) == 2, "the first plan sent")
    replaced = state.instructions(store.engine, resource_id)[1]["instruction_id"]
    _write_plan(store, 51, [5.0, 5.0, 1.0, 1.0], belief_offset=60)
    assert _stage(store, "plan-2") == state.Staged(kept=1, added=1, superseded=0, revoking=1)
    wait_for(lambda: [str(i) for i in rm.control.revoked] == [replaced], "the replaced instruction revoked")
    wait_for(lambda: sorted(s for *_, s in _statuses(store, resource_id)) == ["accepted", "accepted", "revoked"],
             "the new instruction accepted, the old one revoked")
    assert sorted(str(i) for i in rm.control.instructions) == sorted(
        row["instruction_id"] for row in state.instructions(store.engine, resource_id, ["accepted"]))
    assert rm.control.power_at(NOW + 2 * SLOT)[0] == pytest.approx(1.0)


def test_a_plan_beyond_the_declared_ranges_is_clamped_never_sent_outside(store: TimeSeriesStore, cem: RunningCem,
                                                                         make_rm) -> None:
    rm = _connected(store, make_rm)
    _write_plan(store, 51, [9.0])
    [result] = stage_plan(store, BATTERY, SOURCE, NOW, HOUR, "plan-big", NOW, site_id=SITE_ID)
    assert result.reason == "1 setpoints clamped to the declared ranges"
    [row] = state.instructions(store.engine, str(rm.resource_id))
    assert (row["power_kw"], row["operation_mode_factor"]) == (5.0, 1.0)
    # the clamp is the first entry of its history (the status reason moves on as it is sent)
    assert state.instruction_events(store.engine, row["id"])[0]["reason"] == (
        "plan asked 9.000 kW, beyond the declared ranges")
    [sent] = wait_for(lambda: rm.instructions_received(), "the clamped instruction sent")
    assert (sent.operation_mode, sent.operation_mode_factor) == (rm.control.modes["charge"], 1.0)


def test_a_disconnected_rm_keeps_its_record_and_gets_what_is_in_force_on_return(
        store: TimeSeriesStore, cem: RunningCem, make_rm) -> None:
    rm = _connected(store, make_rm)
    resource_id = str(rm.resource_id)
    _write_plan(store, 51, [5.0, 5.0, -2.5, 0.0])
    _stage(store, "plan-1")
    wait_for(lambda: all(s == "accepted" for *_, s in _statuses(store, resource_id)), "the plan accepted")
    before = state.messages(store.engine, resource_id)
    rm.disconnect()
    row = wait_for(lambda: (found := state.resource(store.engine, resource_id))["status"] == "disconnected"
                   and found, "the disconnection recorded")
    assert row["status_reason"] == "connection closed"
    assert state.messages(store.engine, resource_id)[:len(before)] == before  # nothing recorded was lost
    assert [s for *_, s in _statuses(store, resource_id)] == ["accepted"] * 3
    # nothing to stage for a device whose RM is gone
    [gone] = stage_plan(store, BATTERY, SOURCE, NOW, HOUR, "plan-2", NOW, site_id=SITE_ID)
    assert (gone.staged, gone.reason) == (None, "no RM connected")

    ids = [str(i.id) for i in rm.instructions_received()]
    rm.connect()
    rm.wait_controlled()
    wait_for(lambda: len(rm.instructions_received()) == 6, "the instructions in force sent again")
    assert [str(i.id) for i in rm.instructions_received()[3:]] == ids
    wait_for(lambda: all(s == "accepted" for *_, s in _statuses(store, resource_id)), "accepted again")
    assert state.resource(store.engine, resource_id)["status"] == "connected"


@pytest.fixture
def impatient_cem(store: TimeSeriesStore, clock: Clock):
    running = RunningCem(store, clock, answer_timeout_seconds=30, max_attempts=2)
    yield running
    running.close()


def test_an_unanswered_instruction_is_retried_from_the_planned_power(store: TimeSeriesStore, clock: Clock,
                                                                     impatient_cem: RunningCem) -> None:
    device = StorageControl(Storage(13.5, 5.0, 5.0, 6.75), NOW)
    raw = RawRm(impatient_cem.url)
    try:
        raw.handshake("battery_01", resource_id=SILENT)
        description = json.loads(device.system_description().to_json())
        assert raw.ask(description)["status"] == "OK"
        _write_plan(store, 51, [2.5])
        _stage(store, "plan-1")
        first = raw.receive()
        assert (first["message_type"], first["operation_mode_factor"]) == ("FRBC.Instruction", 0.5)
        # no ReceptionStatus: once the answer timeout has passed on the CEM's clock, a new attempt goes out
        clock.now = NOW + timedelta(seconds=31)
        second = raw.receive()
        assert (second["message_type"], second["operation_mode_factor"]) == ("FRBC.Instruction", 0.5)
        assert second["id"] != first["id"] and second["execution_time"] == first["execution_time"]
        clock.now = NOW + timedelta(seconds=62)
        wait_for(lambda: [r["status"] for r in state.instructions(store.engine, SILENT)] == [
            "unanswered", "unanswered"], "both attempts unanswered, no third (max_attempts=2)")
        raw.send(message("SessionRequest", request="TERMINATE"))
    finally:
        raw.close()



def test_an_unanswered_revocation_is_sent_again_then_given_up(store: TimeSeriesStore, clock: Clock,
                                                              impatient_cem: RunningCem) -> None:
    device = StorageControl(Storage(13.5, 5.0, 5.0, 6.75), NOW)
    raw = RawRm(impatient_cem.url)
    try:
        raw.handshake("battery_01", resource_id=SILENT)
        assert raw.ask(json.loads(device.system_description().to_json()))["status"] == "OK"
        _write_plan(store, 51, [2.5])
        _stage(store, "plan-1")
        instruction = raw.receive()
        raw.answer(instruction)  # received, then silence
        wait_for(lambda: [r["status"] for r in state.instructions(store.engine, SILENT)] == ["received"],
                 "the instruction received")
        _write_plan(store, 51, [1.0], belief_offset=60)
        _stage(store, "plan-2")
        revocations = []
        for at in (0, 31):
            clock.now = NOW + timedelta(seconds=at)
            while (received := raw.receive())["message_type"] != "RevokeObject":
                pass  # the new plan's instruction
            revocations.append(received)
        assert [r["object_id"] for r in revocations] == [instruction["id"]] * 2
        assert revocations[0]["message_id"] != revocations[1]["message_id"]
        clock.now = NOW + timedelta(seconds=62)
        [old] = [r for r in wait_for(lambda: [r for r in state.instructions(store.engine, SILENT)
                                              if r["instruction_id"] == instruction["id"]
                                              and r["status"] == "unanswered"], "the revocation given up")]
        assert old["status_reason"] == "RevokeObject unanswered after 2 attempts"
    finally:
        raw.close()
