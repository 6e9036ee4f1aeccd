"""The derived assets as Dagster runs them: a three-day backfill in one run, on SQLite and the real PostgreSQL."""

import math
from datetime import UTC, date, datetime, time, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from cariflex_pipeline.definitions import defs
from cariflex_pipeline.defs.derived import DERIVED_ASSETS
from cariflex_pipeline.defs.derived.assets import DERIVED_SOURCE
from cariflex_pipeline.defs.partitions import daily_partitions
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.scheduling.schedules import every_15_minutes
from cariflex_pipeline.derived.sensors import ACTIVE_SESSIONS, GRID_IMPACT, TOTAL_FLEXIBILITY, derived_sensors
from cariflex_pipeline.s2.devices import S2_SOURCE
from cariflex_pipeline.scheduling.signals import SCHEDULER_SOURCE
from cariflex_pipeline.site_model import Site
from cariflex_pipeline.site_model.model import default_site_file
from cariflex_pipeline.store import TimeSeriesStore

DAYS = ["2026-11-25", "2026-11-26", "2026-11-27"]
DEFAULT_SITE = default_site_file()
BATTERY_KW = 0.05  # every battery charges 50 W all three days


def _plan(site: Site) -> pd.DataFrame:
    """A plan for the three days, as the scheduler writes one (every charge point, idle ones at 0 kW): CP001 at
    7 kW from 08:00 to 10:00, the batteries at BATTERY_KW."""
    slots = pd.date_range(datetime.combine(date(2026, 11, 25), time(), site.tz), periods=3 * 96, freq="15min")
    cp001 = [7.0 if 8 <= slot.hour < 10 else 0.0 for slot in slots]
    rows = [pd.DataFrame({"sensor_id": cp.sensor_id, "event_start": slots, "value": cp001 if cp.id == "CP001" else 0.0})
            for cp in site.charge_points]
    rows += [pd.DataFrame({"sensor_id": b.sensor_id, "event_start": slots, "value": BATTERY_KW})
             for b in site.batteries]
    frame = pd.concat(rows)
    frame["belief_time"] = datetime(2026, 11, 24, tzinfo=UTC)
    return frame


def _backfill(url: str) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        return dg.materialize(
            DERIVED_ASSETS, instance=instance,
            resources={"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=url)},
            tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]})


def test_a_three_day_backfill_writes_every_day_and_carries_the_soc_over(store: TimeSeriesStore, site: Site) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    store.write_beliefs(_plan(site), source=SCHEDULER_SOURCE, source_type="scheduler")
    # The S2 CEM's reported fill level shares the SoC sensor: the derived curve must not start from it.
    start = datetime.combine(date(2026, 11, 25), time(), site.tz)
    store.register_sensors(derived_sensors(site).sensors)
    store.write_beliefs(pd.DataFrame({"sensor_id": [151], "event_start": [start - timedelta(minutes=15)],
                                      "value": [1.0], "belief_time": [datetime(2026, 11, 25, tzinfo=UTC)]}),
                        source=S2_SOURCE, source_type="measurement")
    result = _backfill(url)
    assert result.success
    end = start + timedelta(days=3)
    frame = store.read_latest([ACTIVE_SESSIONS, GRID_IMPACT, TOTAL_FLEXIBILITY, 151], start, end)
    assert frame.groupby("sensor_id").size().to_dict() == {ACTIVE_SESSIONS: 288, GRID_IMPACT: 288,
                                                           TOTAL_FLEXIBILITY: 288, 151: 288}
    assert set(frame["source"]) == {DERIVED_SOURCE}
    # Each day starts where the previous one ended: 6.75 kWh + 3 days · 96 slots · 0.25 h · √0.9 · 50 W.
    soc = frame[frame["sensor_id"] == 151]["value"].to_numpy()
    assert soc[-1] == pytest.approx(6.75 + 288 * 0.25 * np.sqrt(0.9) * BATTERY_KW)
    assert np.diff(soc) == pytest.approx(np.full(287, 0.25 * np.sqrt(0.9) * BATTERY_KW))
    # 10 batteries at 0.5 kW, CP001 at 7 kW from 08:00 to 10:00, no PV in the store.
    grid = frame[frame["sensor_id"] == GRID_IMPACT].set_index("event_start")["value"]
    assert grid[pd.Timestamp(start + timedelta(hours=8, minutes=30))] == pytest.approx(7.5)
    assert grid[pd.Timestamp(start + timedelta(hours=12))] == pytest.approx(0.5)
    figures = {m.partition: m.metadata for m in result.asset_materializations_for_node("storage_state_of_charge")}
    assert [figures[day]["batteries_started_from_previous_day"].value for day in DAYS] == [0, 10, 10]
    grid_figures = {m.partition: m.metadata for m in result.asset_materializations_for_node("grid_impact_series")}
    assert [(grid_figures[day]["grid_impact_min_kw"].value, grid_figures[day]["grid_impact_max_kw"].value)
            for day in DAYS] == [(0.5, 7.5)] * 3


def test_a_rerun_replaces_the_derived_values_instead_of_adding_beliefs(store: TimeSeriesStore, site: Site) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    store.write_beliefs(_plan(site), source=SCHEDULER_SOURCE, source_type="scheduler")
    assert _backfill(url).success
    with store.engine.connect() as connection:
        first = connection.exec_driver_sql("SELECT count(*) FROM beliefs WHERE sensor_id > 100").scalar()
    assert _backfill(url).success
    with store.engine.connect() as connection:
        again = connection.exec_driver_sql("SELECT count(*) FROM beliefs WHERE sensor_id > 100").scalar()
    # 5 site-wide series and 10 battery SoCs for 288 slots; no V2G EV in the bundled sessions.
    assert first == again == 15 * 288


def test_the_15_minute_replan_refreshes_today_in_site_time() -> None:
    job = defs.resolve_job_def(every_15_minutes.job_name)
    assert {asset.key for asset in DERIVED_ASSETS} <= set(job.asset_layer.executable_asset_keys)
    assert job.partitions_def == daily_partitions
    # 02:30 UTC on 28 November is still the 27th in Martinique (UTC-4).
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 28, 2, 30, tzinfo=UTC))
    request = every_15_minutes(context)
    assert request.partition_key == "2026-11-27"


def test_a_site_without_storage_gets_its_ev_and_grid_series_and_no_soc(tmp_path) -> None:
    raw = yaml.safe_load(DEFAULT_SITE.read_text(encoding="utf-8"))
    raw["batteries"], raw["v2g_chargers"] = [], []
    site_file = tmp_path / "no-storage.yaml"
    site_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            DERIVED_ASSETS, instance=instance, partition_key=DAYS[0],
            resources={"site": SiteResource(site_file=str(site_file)),
                       "store": TimeSeriesStoreResource(database_url=url)})
    assert result.success
    [soc] = result.asset_materializations_for_node("storage_state_of_charge")
    assert soc.metadata["batteries_started_from_site_initial_soc"].value == 0
    store = TimeSeriesStore(url)
    assert store.read_latest([151, 171]).empty
    assert len(store.read_latest([ACTIVE_SESSIONS])) == 96
    # no plan and no meter for that day: no grid impact at all, and figures that say so
    assert store.read_latest([GRID_IMPACT]).empty
    [grid] = result.asset_materializations_for_node("grid_impact_series")
    assert math.isnan(grid.metadata["grid_impact_max_kw"].value)
