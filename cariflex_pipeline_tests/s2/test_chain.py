"""The whole chain on loopback: a price event on the real OpenLEADR VTN -> the VEN's ingestion (sensor 84) -> the
schedule with the batteries -> s2_instructions -> the CEM -> the simulated battery, whose fill level then follows
the plan. A second test starts from prices already in the store, at a fixed time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from cariflex_pipeline.defs.openadr.assets import SIGNAL_ASSETS, openadr_events
from cariflex_pipeline.defs.openadr.resources import VtnResource
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.s2.assets import s2_instructions
from cariflex_pipeline.defs.scheduling.assets import SCHEDULER_SOURCE, ev_charging_schedule
from cariflex_pipeline.s2 import state
from cariflex_pipeline.s2.planning import planned_fill
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.openadr.vtn20b import PRICE_CONTEXT, InProcessVtn
from cariflex_pipeline_tests.s2.conftest import NOW
from cariflex_pipeline_tests.s2.helpers import DEVICES, Clock, RunningCem, wait_for
from cariflex_pipeline_tests.s2.simulators import SimulatedRm, Storage

SLOT = timedelta(minutes=15)
SLOTS = 8  # two hours followed
# cheap for the first hour, dear for the second: worth storing now for the EVs later
PRICES = [20.0] * 4 + [300.0] * 4 + [120.0] * 88


def _plan_and_follow(store: TimeSeriesStore, clock: Clock, rm: SimulatedRm, now: datetime,
                     resources: dict) -> None:
    """Plan with the battery from now, instruct it, and let the simulated battery follow slot by slot."""
    result = dg.materialize(
        [ev_charging_schedule, s2_instructions], resources=resources,
        run_config={"ops": {
            # include_batteries unset: a battery an S2 RM speaks for is planned without being asked
            "ev_charging_schedule": {"config": {"now": now.isoformat(), "session_source": "template",
                                                "horizon_hours": 24}},
            "s2_instructions": {"config": {"now": now.isoformat(), "confirm_seconds": 20}}}})
    assert result.success
    schedule = result.asset_materializations_for_node("ev_charging_schedule")[0].metadata
    assert schedule["batteries_from_s2"].value == "battery_01"
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "s2_rms_accepted"]
    assert check.passed, check.description

    plan = store.read_latest([51], now, now + SLOTS * SLOT, sources=[SCHEDULER_SOURCE])["value"].tolist()
    assert max(plan) > 1.0  # the plan does use the battery
    trajectory = dict(planned_fill(store, DEVICES["battery_01"], now, now + (SLOTS + 1) * SLOT))
    for slot in range(SLOTS):
        clock.now = now + slot * SLOT + timedelta(seconds=899)
        followed = rm.advance(now + slot * SLOT, SLOT.total_seconds())
        assert followed.power_kw == pytest.approx(plan[slot], abs=0.01), f"slot {slot}"
        assert followed.fill_kwh == pytest.approx(trajectory[now + (slot + 1) * SLOT], abs=0.01), f"slot {slot}"


def _controlled(store: TimeSeriesStore, rm: SimulatedRm) -> SimulatedRm:
    rm.connect()
    rm.wait_controlled()
    wait_for(lambda: (row := state.resource(store.engine, str(rm.resource_id))) and row["actuator_status"],
             "the battery's state stored")
    return rm


def test_a_vtn_price_event_reaches_the_battery_and_its_fill_level_follows_the_plan(
        store: TimeSeriesStore, clock: Clock, cem: RunningCem) -> None:
    # Real time: the VTN serves an event by its own clock, so it must start now (a fixed date would be over).
    now = datetime.fromtimestamp(datetime.now(UTC).timestamp() // 900 * 900, UTC)
    clock.now = now
    rm = _controlled(store, SimulatedRm("battery_01", Storage(13.5, 5.0, 5.0, 6.75), cem.url, now))
    vtn = InProcessVtn(poll_freq=timedelta(0))
    try:
        resources = {"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=store.database_url),
                     "vtn": VtnResource(url=vtn.url, protocol="2.0b")}
        today = now.astimezone(SiteResource().load().tz).date().isoformat()
        ingest = [openadr_events, *SIGNAL_ASSETS]
        assert dg.materialize(ingest, partition_key=today, resources=resources).success  # the VEN registers
        vtn.add_event("ven_1", "ELECTRICITY_PRICE", "price", PRICE_CONTEXT,
                      [(now + index * SLOT, SLOT, price) for index, price in enumerate(PRICES)])
        assert dg.materialize(ingest, partition_key=today, resources=resources).success
        stored = store.read_latest([84], now, now + len(PRICES) * SLOT)
        assert stored["value"].tolist() == PRICES  # what the VTN published, slot for slot
        _plan_and_follow(store, clock, rm, now, resources)
    finally:
        vtn.stop()
        rm.close()


def test_prices_in_the_store_reach_the_battery_and_its_fill_level_follows_the_plan(
        store: TimeSeriesStore, clock: Clock, cem: RunningCem, make_rm) -> None:
    rm = _controlled(store, make_rm("battery_01", fill_kwh=6.75))
    store.write_beliefs(pd.DataFrame({"sensor_id": 84, "event_start": [NOW + t * SLOT for t in range(96)],
                                      "value": PRICES, "belief_time": NOW - timedelta(hours=1)}),
                        source="vtn-sample", source_type="vtn")
    _plan_and_follow(store, clock, rm, NOW, {
        "site": SiteResource(), "store": TimeSeriesStoreResource(database_url=store.database_url)})
