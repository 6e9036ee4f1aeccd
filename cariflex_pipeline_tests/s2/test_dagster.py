"""The Dagster shell of S2 against the CEM and a simulated battery on a real websocket: `s2_instructions` stages
the plan and shows each device; its check says whether the RMs accepted; `s2_replan_sensor` asks for a re-plan
when an RM comes or goes or drifts from the plan."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pandas as pd
from s2python.common import InstructionStatus

from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.s2.assets import ACCEPTED_CHECK, s2_instructions
from cariflex_pipeline.defs.s2.sensors import s2_replan_sensor
from cariflex_pipeline.s2 import state
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.s2.conftest import NOW
from cariflex_pipeline_tests.s2.helpers import Clock, RunningCem, wait_for

SLOT = timedelta(minutes=15)


def _plan(store: TimeSeriesStore, powers: list[float]) -> None:
    store.write_beliefs(pd.DataFrame({"sensor_id": 51, "event_start": [NOW + i * SLOT for i in range(len(powers))],
                                      "value": powers, "belief_time": NOW}),
                        source="cariflex-scheduler", source_type="scheduler")


def _materialize(store: TimeSeriesStore):
    return dg.materialize(
        [s2_instructions],
        resources={"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=store.database_url)},
        run_config={"ops": {"s2_instructions": {"config": {"now": NOW.isoformat(), "confirm_seconds": 20,
                                                           "horizon_hours": 1}}}})


def _connected(store: TimeSeriesStore, make_rm):
    rm = make_rm("battery_01").connect()
    rm.wait_controlled()
    wait_for(lambda: (row := state.resource(store.engine, str(rm.resource_id))) and row["actuator_status"],
             "the battery's state stored")
    return rm


def test_the_asset_stages_the_plan_and_the_check_sees_it_accepted(store: TimeSeriesStore, cem: RunningCem,
                                                                  make_rm) -> None:
    rm = _connected(store, make_rm)
    _plan(store, [5.0, 5.0, -2.5, -2.5])
    result = _materialize(store)
    [check] = result.get_asset_check_evaluations()
    assert (check.check_name, check.passed) == (ACCEPTED_CHECK, True)
    assert check.description == "1 connected RM(s), every instruction in force accepted"
    metadata = result.asset_materializations_for_node("s2_instructions")[0].metadata
    assert (metadata["rms_connected"].value, metadata["instructions_added"].value) == (1, 2)
    assert metadata["fill_level_kwh_battery_01"].value == 6.75
    table = metadata["devices"].value.splitlines()
    assert table[2] == "| battery_01 | connected | charge | 5.00 | 6.75 | accepted | 2/2 | - |"
    assert table[3].startswith("| battery_02 | no RM | - | - | - | - | 0/0 | no resource manager ever connected |")
    assert len(rm.instructions_received()) == 2


def test_the_check_warns_when_an_rm_rejects(store: TimeSeriesStore, cem: RunningCem, make_rm) -> None:
    rm = _connected(store, make_rm)
    rm.control.answer = InstructionStatus.REJECTED
    _plan(store, [3.0])
    [check] = _materialize(store).get_asset_check_evaluations()
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert check.description == "awaiting an answer: none; refused: battery_01"
    assert "rejected: InstructionStatusUpdate REJECTED" in check.metadata["details"].value


def _tick(store: TimeSeriesStore, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(cursor=cursor, resources={
        "site": SiteResource(), "store": TimeSeriesStoreResource(database_url=store.database_url)})
    return s2_replan_sensor(context)


def test_the_sensor_replans_when_an_rm_comes_goes_or_drifts(store: TimeSeriesStore, clock: Clock,
                                                            cem: RunningCem, make_rm) -> None:
    assert _tick(store, None).run_requests == []
    rm = _connected(store, make_rm)
    first = _tick(store, None)
    assert [r.tags["cariflex/s2_reasons"] for r in first.run_requests] == ["battery_01: RM connected"]
    assert _tick(store, first.cursor).run_requests == []  # the same state asks nothing twice
    # a plan of 4 kW for an hour: 1 kWh per slot from 6.75
    _plan(store, [4.0] * 4)
    _materialize(store)
    assert _tick(store, first.cursor).run_requests == []
    clock.now = NOW + SLOT + timedelta(minutes=1)  # one slot later the battery reports less than planned
    rm.advance(NOW, 0)  # it did not run: the plan wanted 1.07 kWh more by now
    wait_for(lambda: state.resource(store.engine, str(rm.resource_id))["fill_level_at"] == clock.now,
             "the report seen by the CEM")
    drift = _tick(store, first.cursor)
    [reason] = [r.tags["cariflex/s2_reasons"] for r in drift.run_requests]
    assert reason == f"battery_01: fill level 6.75 kWh at {clock.now.isoformat()}, plan 7.82 kWh"
    rm.disconnect()
    wait_for(lambda: state.resource(store.engine, str(rm.resource_id))["status"] == "disconnected", "the RM gone")
    left = _tick(store, drift.cursor)
    assert [r.tags["cariflex/s2_reasons"] for r in left.run_requests] == ["battery_01: RM left"]
    # the same RM back again is a new change: another run key than its first connect (Dagster runs a key once)
    rm.connect()
    rm.wait_controlled()
    back = _tick(store, left.cursor)
    assert [r.tags["cariflex/s2_reasons"] for r in back.run_requests] == ["battery_01: RM connected"]
    assert back.run_requests[0].run_key != first.run_requests[0].run_key
