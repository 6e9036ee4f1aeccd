"""The UI's obvious re-plan (Materialize on ev_charging_schedule alone) also dispatches: the automation
conditions of ocpp_charging_profiles and ocpp_dispatch request both after it, and nothing after a run that
already held them; a schedule whose blocking verifier check failed is not followed."""

from pathlib import Path

import dagster as dg
import pytest

from cariflex_pipeline.definitions import defs
from cariflex_pipeline.scheduling import solve
from cariflex_pipeline.store import TimeSeriesStore

FOLLOWERS = {dg.AssetKey("ocpp_charging_profiles"), dg.AssetKey("ocpp_dispatch")}


@pytest.fixture
def instance(store: TimeSeriesStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # the store of each test, on SQLite and on the real PostgreSQL
    monkeypatch.setenv("CARIFLEX_DATABASE_URL", store.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _materialize(instance: dg.DagsterInstance, *keys: str) -> dg.ExecuteInProcessResult:
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(key) for key in keys],
                                  raise_on_error=False)


def _requested(instance: dg.DagsterInstance, cursor=None):
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    return {key for key in FOLLOWERS if result.get_num_requested(key)}, result.cursor


def test_a_plan_materialized_on_its_own_is_followed_by_profiles_and_dispatch(instance) -> None:
    assert _materialize(instance, "sensor_registry", "ev_charging_schedule", "ocpp_charging_profiles",
                        "ocpp_dispatch").success
    requested, cursor = _requested(instance)
    assert requested == set()  # the run held them: nothing to follow
    assert _materialize(instance, "ev_charging_schedule").success  # the UI's Materialize on the schedule alone
    requested, cursor = _requested(instance, cursor)
    assert requested == FOLLOWERS
    assert defs.resolve_sensor_def("replan_dispatch_sensor").default_status == dg.DefaultSensorStatus.RUNNING


def test_a_schedule_failing_its_blocking_check_is_not_dispatched(instance, monkeypatch) -> None:
    assert _materialize(instance, "sensor_registry", "ev_charging_schedule", "ocpp_charging_profiles",
                        "ocpp_dispatch").success
    _, cursor = _requested(instance)
    from cariflex_pipeline.defs.scheduling import assets

    def overloading_solve(*args, **kwargs):  # the verifier must refuse this plan: 1000 kW on CP001
        result = solve(*args, **kwargs)
        result.power_kw["CP001"][0] = 1000.0
        return result

    monkeypatch.setattr(assets, "solve", overloading_solve)
    result = _materialize(instance, "ev_charging_schedule")
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "schedule_passes_verifier"]
    assert not check.passed
    requested, _ = _requested(instance, cursor)
    assert requested == set()
