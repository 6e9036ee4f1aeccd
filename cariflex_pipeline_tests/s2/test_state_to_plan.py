"""Real state into the plan: with `include_batteries`, a battery whose RM is connected is planned with the
capacity, power limits and fill level the RM declared; one whose RM left is planned at zero (and its plan
written as zero); one that never had an RM keeps the site file's values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
from s2python.common import Duration, NumberRange
from s2python.frbc import FRBCFillLevelTargetProfile, FRBCFillLevelTargetProfileElement

from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.scheduling.assets import SCHEDULER_SOURCE, ev_charging_schedule
from cariflex_pipeline.s2 import state
from cariflex_pipeline.s2.planning import RmLimits, rm_limits
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.s2.helpers import SITE_ID
from cariflex_pipeline_tests.s2.simulators import Storage, StorageControl

NOW = datetime(2026, 11, 28, 16, 7, tzinfo=UTC)


def _rm(store: TimeSeriesStore, device: str, status: str, fill: float, capacity: float, max_kw: float) -> None:
    description = StorageControl(Storage(capacity, max_kw, max_kw, fill), NOW).system_description()
    state.save_resource(store.engine, f"rm-{device}", NOW, name=device, device=device, site_id=SITE_ID, status=status,
                        control_type="FILL_RATE_BASED_CONTROL", system_description=description.to_json(),
                        fill_level=fill, fill_level_at=NOW,
                        status_reason="" if status == "connected" else "connection closed")


def test_rm_limits_read_what_the_rm_declared(store: TimeSeriesStore) -> None:
    _rm(store, "battery_01", "connected", 2.0, 10.0, 3.0)
    _rm(store, "battery_02", "disconnected", 5.0, 13.5, 5.0)
    assert rm_limits(store, ["battery_01", "battery_02", "battery_03"]) == {
        "battery_01": RmLimits("battery_01", True, "", 10.0, 2.0, 3.0, 3.0, round_trip_efficiency=1.0),
        "battery_02": RmLimits("battery_02", False, "RM disconnected: connection closed"),
    }


def test_the_schedule_plans_batteries_from_their_rms(store: TimeSeriesStore) -> None:
    _rm(store, "battery_01", "connected", 2.0, 10.0, 3.0)
    _rm(store, "battery_02", "disconnected", 5.0, 13.5, 5.0)
    prices = [60.0 if t % 8 < 4 else 140.0 for t in range(96)]  # cheap and dear hours: worth storing
    start = datetime(2026, 11, 28, 16, 0, tzinfo=UTC)
    store.write_beliefs(
        pd.DataFrame({"sensor_id": 84, "event_start": [start + t * timedelta(minutes=15)
                                                                         for t in range(96)],
                                        "value": prices, "belief_time": start - timedelta(hours=1)}),
        source="test-vtn", source_type="vtn")
    result = dg.materialize(
        [ev_charging_schedule],
        resources={"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=store.database_url)},
        run_config={"ops": {"ev_charging_schedule": {"config": {"now": NOW.isoformat(),
                                                                "include_batteries": True}}}})
    metadata = result.asset_materializations_for_node("ev_charging_schedule")[0].metadata
    assert metadata["batteries_from_s2"].value == "battery_01"
    assert metadata["batteries_planned_at_zero"].value == "battery_02"
    batteries = {b["name"]: b for b in metadata["problem"].value["batteries"]}
    assert "battery_02" not in batteries
    first = batteries["battery_01"]
    assert (first["capacity_kwh"], first["initial_soc_kwh"], first["max_charge_kw"], first["max_discharge_kw"],
            first["soc_min_kwh"], first["round_trip_efficiency"]) == (10.0, 2.0, 3.0, 3.0, 1.35, 1.0)
    third = batteries["battery_03"]  # no RM: the site file
    assert (third["capacity_kwh"], third["initial_soc_kwh"], third["max_charge_kw"],
            third["round_trip_efficiency"]) == (13.5, 6.75, 5.0, 0.9)
    planned = store.read_latest([51, 52], sources=[SCHEDULER_SOURCE])
    at_zero = planned[planned["sensor_id"] == 52]
    assert len(at_zero) == 96 and (at_zero["value"] == 0.0).all()
    ours = planned[planned["sensor_id"] == 51]["value"]
    assert ours.max() <= 3.0 + 1e-6 and ours.min() >= -3.0 - 1e-6 and (ours.abs() > 1e-6).any()


def _car(store: TimeSeriesStore, device: str, status: str, fill: float, capacity: float, target: float,
         departure: datetime) -> None:
    control = StorageControl(Storage(capacity, 11.0, 11.0, fill, target_kwh=target, departure=departure), NOW)
    profile = FRBCFillLevelTargetProfile(
        message_id=uuid.uuid4(), start_time=NOW, elements=[FRBCFillLevelTargetProfileElement(
            duration=Duration.from_timedelta(departure - NOW),
            fill_level_range=NumberRange(start_of_range=target, end_of_range=capacity))])
    state.save_resource(store.engine, f"rm-{device}", NOW, name=device, device=device, site_id=SITE_ID, status=status,
                        control_type="FILL_RATE_BASED_CONTROL",
                        system_description=control.system_description().to_json(), fill_level=fill,
                        fill_level_at=NOW, fill_level_target=profile.to_json(), status_reason="")


def test_a_v2g_car_is_planned_while_its_rm_is_connected(store: TimeSeriesStore) -> None:
    start = datetime(2026, 11, 28, 16, 0, tzinfo=UTC)
    _car(store, "v2g_01", "connected", 30.0, 60.0, 48.0, start + timedelta(hours=4))
    _car(store, "v2g_02", "disconnected", 30.0, 60.0, 48.0, start + timedelta(hours=4))
    store.write_beliefs(pd.DataFrame({"sensor_id": 84, "event_start": [start + t * timedelta(minutes=15)
                                                                       for t in range(96)],
                                      "value": 100.0, "belief_time": start - timedelta(hours=1)}),
                        source="test-vtn", source_type="vtn")
    result = dg.materialize(
        [ev_charging_schedule],
        resources={"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=store.database_url)},
        run_config={"ops": {"ev_charging_schedule": {"config": {"now": NOW.isoformat()}}}})
    metadata = result.asset_materializations_for_node("ev_charging_schedule")[0].metadata
    assert (metadata["v2g_from_s2"].value, metadata["v2g_unavailable_by_s2"].value) == ("v2g_01", "v2g_02")
    [car] = [s for s in metadata["problem"].value["sessions"] if s["charge_point"].startswith("v2g")]
    assert (car["id"], car["charge_point"], car["soc_now"], car["soc_target"], car["battery_capacity_kwh"],
            car["max_power_kw"], car["max_discharge_kw"], car["departure"]) == (
        "v2g_01-s2", "v2g_01", 0.5, 0.8, 60.0, 11.0, 11.0, "2026-11-28T20:00:00Z")
    planned = store.read_latest([71, 72], sources=[SCHEDULER_SOURCE])
    # 18 kWh into the car (0.5 -> 0.8 of 60 kWh), drawn at the charger's one-way efficiency (site: 0.85 round trip)
    assert planned[planned["sensor_id"] == 71]["value"].sum() * 0.25 == pytest.approx(18.0 / 0.85 ** 0.5, abs=0.01)
    assert (planned[planned["sensor_id"] == 72]["value"] == 0.0).all()
