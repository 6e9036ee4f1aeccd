import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from cariflex_pipeline import site_model
from cariflex_pipeline.definitions import MAIN_JOB_NAME, defs
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.site.assets import sensor_registry
from cariflex_pipeline.site_model import load_site
from cariflex_pipeline.store import StoreUnavailableError, TimeSeriesStore

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_with_the_main_job() -> None:
    job = defs.resolve_job_def(MAIN_JOB_NAME)
    assert dg.AssetKey("sensor_registry") in job.asset_layer.executable_asset_keys
    assert {"site", "store"} <= set(defs.resources)


def test_sensor_registry_registers_the_site_in_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    result = dg.materialize(
        [sensor_registry], resources={"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=url)}
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node("sensor_registry")
    assert materialization.metadata["sensors_registered"].value == 46
    assert "| 61 | cp001_power | kW | 15 min |" in materialization.metadata["sensors"].value
    registered = TimeSeriesStore(url).sensor_table()
    assert registered.set_index("id").loc[86, "unit"] == "%"


def test_an_unreachable_store_fails_the_run_naming_the_host_not_the_password() -> None:
    url = "postgresql://ems:hunter2-secret@127.0.0.1:1/cariflex"
    with pytest.raises(StoreUnavailableError) as raised:
        dg.materialize(
            [sensor_registry], resources={"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=url)}
        )
    assert "127.0.0.1:1/cariflex" in str(raised.value)
    assert "hunter2-secret" not in str(raised.value)


@pytest.mark.postgres
def test_production_instance_runs_on_postgres(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy/production/dagster.yaml works as shipped, with every detail from the environment."""
    home = tmp_path / "production_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "production" / "dagster.yaml", home / "dagster.yaml")
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert config["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    database = postgres_url.rsplit("/", 1)[1]
    for name, value in {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "postgres",
                        "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": database}.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = dg.materialize(
            [sensor_registry],
            instance=instance,
            resources={"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=postgres_url)},
        )
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("sensor_registry")) is not None


def test_the_15_minute_replan_reaches_the_charge_points_and_runs_out_of_the_box() -> None:
    schedule = defs.resolve_schedule_def("ev_charging_every_15_minutes")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = defs.resolve_job_def(schedule.job_name)
    assert job.executor_def.name == "in_process"
    assert {"ev_charging_schedule", "ocpp_charging_profiles", "ocpp_dispatch"} <= {
        key.to_user_string() for key in job.asset_layer.executable_asset_keys
    }
    # The sensors' runs are latency-critical: nothing but the chain up to the stations (the derived series wait for
    # the next tick of the schedule, whose job holds them after the same chain).
    chain = {"ev_charging_schedule", "ocpp_charging_profiles", "ocpp_dispatch", "s2_instructions"}
    session_job = defs.resolve_job_def(defs.resolve_sensor_def("ev_session_sensor").job_name)
    assert {key.to_user_string() for key in session_job.asset_layer.executable_asset_keys} == chain
    ingest_job = defs.resolve_job_def(defs.resolve_sensor_def("openadr_vtn_sensor").job_name)
    assert {key.to_user_string() for key in ingest_job.asset_layer.executable_asset_keys} == chain | {
        "openadr_events", "consumption_price", "load_control_signal", "demand_response_signal"}
    tick = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert {"grid_impact_series", "total_flexibility_series"} <= tick - chain


def test_the_main_job_runs_on_both_stores(store: TimeSeriesStore, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    """The first command's job, on SQLite and on PostgreSQL (where a second write in one transaction used to
    fail with DuplicateTable and fail the run)."""
    monkeypatch.setenv("CARIFLEX_DATABASE_URL", store.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    job = defs.resolve_job_def(MAIN_JOB_NAME)
    today = datetime.now(load_site().tz).strftime("%Y-%m-%d")  # today's run also writes the day ahead
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, partition_key=today, raise_on_error=False)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    [measurements] = result.asset_materializations_for_node("site_measurements")
    assert measurements.metadata["rows_written_in_run"].value == 2304  # today and the day ahead, one transaction


def test_a_broken_site_file_is_a_load_error_naming_the_entry_and_field(tmp_path: Path) -> None:
    site_file = tmp_path / "site.yaml"
    bundled = Path(site_model.__file__).with_name("martinique.yaml")
    site_file.write_text(bundled.read_text(encoding="utf-8").replace(
        "{id: CP003, evse_id: 1, connector_id: 1, max_power_kw: 22", "{id: CP003, evse_id: 1, connector_id: 1, "
        "max_power_kw: -22", 1), encoding="utf-8")
    env = {**os.environ, "CARIFLEX_SITE_FILE": str(site_file), "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run([str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-m",
                             "cariflex_pipeline.definitions"], capture_output=True, text=True, env=env, check=False)
    assert result.returncode != 0
    assert f"site file {site_file}: charge_points entry 'CP003', field max_power_kw: Input should be greater than 0" \
        in result.stdout + result.stderr
