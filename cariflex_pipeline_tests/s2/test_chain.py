"""The whole chain on loopback: prices in the store (as the VTN's ingestion writes them) -> the schedule with the
batteries -> s2_instructions -> the CEM -> the simulated battery, whose fill level then follows the plan."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pandas as pd
import pytest

from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.s2.assets import s2_instructions
from cariflex_pipeline.defs.scheduling.assets import SCHEDULER_SOURCE, ev_charging_schedule
from cariflex_pipeline.s2 import state
from cariflex_pipeline.s2.planning import planned_fill
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.s2.conftest import NOW
from cariflex_pipeline_tests.s2.helpers import DEVICES, Clock, RunningCem, wait_for

SLOT = timedelta(minutes=15)
SLOTS = 8  # two hours followed


def test_a_price_signal_reaches_the_battery_and_its_fill_level_follows_the_plan(
        store: TimeSeriesStore, clock: Clock, cem: RunningCem, make_rm) -> None:
    rm = make_rm("battery_01", fill_kwh=6.75).connect()
    rm.wait_controlled()
    wait_for(lambda: (row := state.resource(store.engine, str(rm.resource_id))) and row["actuator_status"],
             "the battery's state stored")
    # cheap for the first hour, dear for the second: worth storing now for the EVs later
    prices = [20.0] * 4 + [300.0] * 4 + [120.0] * 88
    store.write_beliefs(pd.DataFrame({"sensor_id": 84, "event_start": [NOW + t * SLOT for t in range(96)],
                                      "value": prices, "belief_time": NOW - timedelta(hours=1)}),
                        source="vtn-sample", source_type="vtn")
    result = dg.materialize(
        [ev_charging_schedule, s2_instructions],
        resources={"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=store.database_url)},
        run_config={"ops": {
            "ev_charging_schedule": {"config": {"now": NOW.isoformat(), "include_batteries": True,
                                                "session_source": "template", "horizon_hours": 24}},
            "s2_instructions": {"config": {"now": NOW.isoformat(), "confirm_seconds": 20}}}})
    assert result.success
    schedule = result.asset_materializations_for_node("ev_charging_schedule")[0].metadata
    assert schedule["batteries_from_s2"].value == "battery_01"
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "s2_rms_accepted"]
    assert check.passed, check.description

    plan = store.read_latest([51], NOW, NOW + SLOTS * SLOT, sources=[SCHEDULER_SOURCE])["value"].tolist()
    assert max(plan) > 1.0  # the plan does use the battery
    trajectory = dict(planned_fill(store, DEVICES["battery_01"], NOW, NOW + (SLOTS + 1) * SLOT))
    for slot in range(SLOTS):
        clock.now = NOW + slot * SLOT + timedelta(seconds=899)
        followed = rm.advance(NOW + slot * SLOT, SLOT.total_seconds())
        assert followed.power_kw == pytest.approx(plan[slot], abs=0.01), f"slot {slot}"
        assert followed.fill_kwh == pytest.approx(trajectory[NOW + (slot + 1) * SLOT], abs=0.01), f"slot {slot}"
