"""Site measurements as an asset, partitioned by Martinique day: PV, batteries, V2G, weather, DSO price.

Readings files (when configured) or the bundled sample day go into the store; every file is checked before
anything is written, and all days of a run are written in one transaction. Figures per day partition: rows
written, PV energy, irradiance peak, temperature range, sensors covered.
"""

from datetime import datetime, timedelta

import dagster as dg
import pandas as pd

from cariflex_pipeline.defs.measurements.resources import MeasurementsResource
from cariflex_pipeline.defs.partitions import DAY_BACKFILL, daily_partitions, partition_day_windows
from cariflex_pipeline.defs.provenance import LABEL_KEY, provenance_label
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.measurements import SAMPLE_SOURCE, read_readings_csv, readings_in_window, sample_day
from cariflex_pipeline.site_model import Site

FILE_SOURCE = "site-measurements"


@dg.asset(
    group_name="measurements",
    partitions_def=daily_partitions,
    backfill_policy=DAY_BACKFILL,
    deps=[dg.AssetKey("sensor_registry")],
    kinds={"pandas"},
)
def site_measurements(
    context: dg.AssetExecutionContext,
    site: SiteResource,
    store: TimeSeriesStoreResource,
    measurements: MeasurementsResource,
) -> dg.MaterializeResult:
    """PV, battery, V2G, weather and DSO-price readings of the day(s), or the bundled sample day."""
    run_site = site.for_run(context)
    site_model = run_site.model
    series = store.open(run_site.portfolio)
    windows = partition_day_windows(context, site_model.tz)
    files = measurements.files()
    if files:
        readings = pd.concat([read_readings_csv(path, site_model) for path in files], ignore_index=True)
        per_day = {key: readings_in_window(readings, start, end) for key, start, end in windows}
        source, described = FILE_SOURCE, f"{len(files)} readings file(s) in {measurements.directory}"
    else:
        per_day = {key: sample_day(start.date(), site_model) for key, start, _ in windows}
        source, described = SAMPLE_SOURCE, "bundled sample day (clear-sky model with trade-wind clouds)"
    # The sample is a day-ahead forecast: a run that covers today also writes tomorrow's, so a rolling
    # 24-hour schedule planned tonight sees tomorrow's PV.
    today = datetime.now(site_model.tz).date()
    covers_today = any(start.date() == today for _, start, _ in windows)
    ahead = [sample_day(today + timedelta(days=1), site_model)] if not files and covers_today else []
    written = 0
    with series.transaction() as connection:
        for frame in [*per_day.values(), *ahead]:
            written += series.write_beliefs(frame, source=source, source_type="measurement", connection=connection)
    context.log.info("%d readings from %s written for %s", written, described, ", ".join(per_day))
    for key, frame in per_day.items():
        context.add_asset_metadata({LABEL_KEY: provenance_label([source] * len(frame)),
                                    **_day_figures(frame, site_model)}, partition_key=key)
    return dg.MaterializeResult(metadata={"source": described, "rows_written_in_run": float(written)})


def _day_figures(frame: pd.DataFrame, site: Site) -> dict[str, float | str]:
    def values(sensor_ids: list[int]) -> pd.Series:
        return frame.loc[frame["sensor_id"].isin(sensor_ids), "value"]

    hours_per_slot = site.resolution.total_seconds() / 3600
    pv = values([pv.sensor_id for pv in site.pv_installations])
    irradiance = values([site.signals.irradiance])
    temperature = values([site.signals.temperature])
    figures: dict[str, float | str] = {
        "rows_written": float(len(frame)),
        "sensors_covered": float(frame["sensor_id"].nunique()) if len(frame) else 0.0,
        "pv_energy_kwh": float(pv.sum() * hours_per_slot),
        "irradiance_max_w_m2": float(irradiance.max()) if len(irradiance) else float("nan"),
        "temperature_min_c": float(temperature.min()) if len(temperature) else float("nan"),
        "temperature_max_c": float(temperature.max()) if len(temperature) else float("nan"),
    }
    if len(frame):
        latest: datetime = (frame["event_start"].max() + site.resolution).to_pydatetime()
        figures["latest_interval_covered"] = latest.isoformat()
    return figures
