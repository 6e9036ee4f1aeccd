"""The CEM against s2-python's own resource manager on a real websocket: handshake, details, FRBC selection, the
device's declarations kept in the store; a device without FRBC told so and left uncontrolled."""

from __future__ import annotations

import json
from datetime import timedelta

from cariflex_pipeline.s2 import state
from cariflex_pipeline.s2.devices import S2_SOURCE
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.s2.conftest import NOW
from cariflex_pipeline_tests.s2.helpers import RawRm, RunningCem, message, wait_for


def _types(rows: list[dict], direction: str) -> list[tuple[str, str | None]]:
    return [(row["message_type"], row["reception_status"]) for row in rows if row["direction"] == direction]


def test_a_battery_rm_comes_under_frbc_control_and_its_state_is_stored(store: TimeSeriesStore, cem: RunningCem,
                                                                       make_rm) -> None:
    rm = make_rm("battery_01", fill_kwh=4.5).connect()
    rm.wait_controlled()
    resource_id = str(rm.resource_id)
    row = wait_for(lambda: (found := state.resource(store.engine, resource_id)) and found["actuator_status"]
                   and found, "the actuator status stored")
    assert (row["name"], row["device"], row["control_type"], row["status"], row["status_reason"]) == (
        "battery_01", "battery_01", "FILL_RATE_BASED_CONTROL", "connected", "")
    assert row["fill_level"] == 4.5
    description = json.loads(row["system_description"])
    assert [mode["diagnostic_label"] for mode in description["actuators"][0]["operation_modes"]] == [
        "charge", "discharge", "idle"]
    assert list(json.loads(row["actuator_status"])) == [str(rm.control.actuator_id)]
    assert json.loads(row["details"])["resource_id"] == resource_id
    logged = wait_for(lambda: (rows := state.messages(store.engine, resource_id))
                      and all(r["reception_status"] for r in rows) and rows, "every message answered")
    assert _types(logged, "in") == [("ResourceManagerDetails", "OK"), ("FRBC.SystemDescription", "OK"),
                                    ("FRBC.StorageStatus", "OK"), ("FRBC.ActuatorStatus", "OK")]
    assert _types(logged, "out") == [("SelectControlType", "OK")]
    assert json.loads(next(r for r in logged if r["message_type"] == "SelectControlType")["payload"])[
        "control_type"] == "FILL_RATE_BASED_CONTROL"
    # the Handshake came before the RM named itself: logged on the connection, without a resource
    before = [r for r in state.messages(store.engine) if r["resource_id"] is None]
    assert [(r["direction"], r["message_type"], r["reception_status"]) for r in before] == [
        ("in", "Handshake", "OK"), ("out", "HandshakeResponse", "OK")]


def test_an_rm_without_frbc_is_told_so_and_left_uncontrolled(store: TimeSeriesStore, cem: RunningCem,
                                                             make_rm) -> None:
    rm = make_rm("battery_02", frbc=False).connect()
    assert rm.uncontrolled.selected.wait(20), "the RM was not told it is not controlled"
    row = wait_for(lambda: state.resource(store.engine, str(rm.resource_id)), "the RM recorded")
    assert (row["status"], row["control_type"]) == ("uncontrolled", "NOT_CONTROLABLE")
    assert row["status_reason"] == ("offers POWER_ENVELOPE_BASED_CONTROL, NOT_CONTROLABLE; this CEM controls "
                                    "FILL_RATE_BASED_CONTROL only")
    details = [r for r in state.messages(store.engine, str(rm.resource_id))
               if r["message_type"] == "ResourceManagerDetails"]
    assert [(r["reception_status"], r["diagnostic"]) for r in details] == [("OK", "")]


def test_an_rm_that_is_no_site_device_is_left_uncontrolled(store: TimeSeriesStore, cem: RunningCem,
                                                           make_rm) -> None:
    rm = make_rm("heat_pump_7")
    rm.control.active.clear()
    rm.connect()
    row = wait_for(lambda: state.resource(store.engine, str(rm.resource_id)), "the RM recorded")
    assert (row["status"], row["device"], row["status_reason"]) == (
        "uncontrolled", None, "no battery or V2G charger named 'heat_pump_7' in the site")
    assert not rm.control.active.wait(0.5)


def test_a_v2g_rm_declares_its_target_and_usage(store: TimeSeriesStore, cem: RunningCem, make_rm) -> None:
    departure = NOW + timedelta(hours=4)
    rm = make_rm("v2g_01", fill_kwh=30.0, capacity_kwh=60.0, max_kw=11.0, target_kwh=48.0, departure=departure)
    rm.connect()
    rm.wait_controlled()
    row = wait_for(lambda: (found := state.resource(store.engine, str(rm.resource_id))) and found["usage_forecast"]
                   and found, "the V2G car's profile and forecast stored")
    target = json.loads(row["fill_level_target"])
    assert target["elements"] == [{"duration": 4 * 3600 * 1000,
                                   "fill_level_range": {"start_of_range": 48.0, "end_of_range": 60.0}}]
    assert json.loads(row["usage_forecast"])["elements"][0]["usage_rate_expected"] == 0.0
    assert (row["device"], row["fill_level"]) == ("v2g_01", 30.0)
    # its fill level is a series on its SoC sensor (171 for the charger on 71)
    wait_for(lambda: len(store.read_latest([171], sources=[S2_SOURCE])) == 1, "the SoC written")
    assert store.read_latest([171], sources=[S2_SOURCE])["value"].tolist() == [30.0]


def test_a_power_measurement_is_the_actual_power_series(store: TimeSeriesStore, cem: RunningCem) -> None:
    raw = RawRm(cem.url)
    try:
        raw.handshake("battery_02")
        measurement = message("PowerMeasurement", measurement_timestamp=NOW.isoformat(),
                              values=[{"commodity_quantity": "ELECTRIC.POWER.L1", "value": -1200.0},
                                      {"commodity_quantity": "ELECTRIC.POWER.L2", "value": -1300.0},
                                      {"commodity_quantity": "HEAT.THERMAL_POWER", "value": 900.0}])
        assert raw.ask(measurement)["status"] == "OK"
    finally:
        raw.close()
    actual = store.read_latest([52], sources=[S2_SOURCE])
    assert (actual["event_start"].tolist(), actual["value"].tolist()) == ([NOW], [-2.5])  # the electric phases
