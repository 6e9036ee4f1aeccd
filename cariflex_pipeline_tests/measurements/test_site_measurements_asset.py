from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from cariflex_pipeline.defs.measurements.assets import site_measurements
from cariflex_pipeline.defs.measurements.resources import MeasurementsResource
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.site.assets import sensor_registry
from cariflex_pipeline.store import TimeSeriesStore

PV_AND_WEATHER = [*range(41, 51), 81, 82]


def materialize(url: str, directory: str | None = None, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [sensor_registry, site_measurements],
        resources={"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=url),
                   "measurements": MeasurementsResource(directory=directory)},
        raise_on_error=False,
        **kwargs,
    )


def test_a_three_day_backfill_of_the_sample_day_fills_every_day(store: TimeSeriesStore) -> None:
    url = store.engine.url.render_as_string(hide_password=False)  # on SQLite and on the real PostgreSQL
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [site_measurements],
            resources={"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=url),
                       "measurements": MeasurementsResource()},
            instance=instance,
            tags={"dagster/asset_partition_range_start": "2026-11-25",
                  "dagster/asset_partition_range_end": "2026-11-27"},
        )
        assert result.success
        for key in ("2026-11-25", "2026-11-26", "2026-11-27"):
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("site_measurements"), asset_partitions=[key]), limit=1
            ).records
            metadata = records[0].asset_materialization.metadata
            assert metadata["rows_written"].value == 96.0 * 12
            assert metadata["pv_energy_kwh"].value > 100
            assert metadata["data"].value == "SAMPLE: bundled sample data, not the site's"
    stored = TimeSeriesStore(url).read_latest(PV_AND_WEATHER)
    assert len(stored) == 3 * 96 * 12
    assert set(stored["source"]) == {"sample-weather-model"}


def test_readings_files_are_written_and_a_bad_file_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    folder = tmp_path / "readings"
    folder.mkdir()
    (folder / "a_pv.csv").write_text(
        "sensor_id,event_start,value,unit\n41,2026-11-28T10:00:00-04:00,7.9,kW\n85,2026-11-28T10:00:00-04:00,42,\n"
    )
    assert materialize(url, str(folder), partition_key="2026-11-28").success
    stored = TimeSeriesStore(url).read_latest([41, 85])
    assert stored["value"].tolist() == [7.9, 42.0]

    (folder / "b_weather.csv").write_text("sensor_id,event_start,value,unit\n82,2026-11-28T11:00:00-04:00,28,K\n")
    (folder / "a_pv.csv").write_text("sensor_id,event_start,value,unit\n41,2026-11-28T10:15:00-04:00,8.1,kW\n")
    failed = materialize(url, str(folder), partition_key="2026-11-28")
    assert not failed.success
    error = failed.get_step_failure_events()[0].step_failure_data.error
    assert "b_weather.csv, line 2: sensor 82 is in '°C', the file says 'K'" in str(error.cause or error.message)
    assert TimeSeriesStore(url).read_latest([41, 82, 85])["value"].tolist() == [7.9, 42.0]  # nothing half-done


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        MeasurementsResource(directory=str(tmp_path / "nowhere")).files()


def test_a_run_for_today_also_writes_tomorrows_forecast(tmp_path: Path, site) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    today = datetime.now(site.tz).date()
    assert materialize(url, partition_key=today.isoformat()).success
    stored = TimeSeriesStore(url).read_latest([41])
    local_days = set(stored["event_start"].dt.tz_convert(site.timezone).dt.date)
    assert local_days == {today, today + timedelta(days=1)}
