"""OpenADR ingestion as assets, partitioned by Martinique day.

`openadr_events` asks the configured source (VTN or bundled sample feed) and stores every event (audit) and its
normalized values (beliefs of 84/86/87). The three signal assets read those values back for their days and
report them; downstream stages (scheduling) depend on exactly these asset keys. For one site a range of days is
one run (BackfillPolicy.single_run(); a fleet's run is one site and one day, defs/partitions.py), and each day of
it still gets a materialization with that day's own figures (`context.add_asset_metadata(..., partition_key=day)`),
so the UI's plots per partition stay meaningful after a
backfill. Figure names are the same for a one-day run and for each day of a range.
"""

from datetime import date, datetime, time, timedelta

import dagster as dg
import pandas as pd

from cariflex_pipeline.charts import day_curve_chart, markdown_image
from cariflex_pipeline.defs.openadr.partitions import (
    DAY_BACKFILL,
    daily_partitions,
    partition_day_windows,
    run_day_keys,
)
from cariflex_pipeline.defs.openadr.resources import VtnResource
from cariflex_pipeline.defs.provenance import LABEL_KEY, provenance_label
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.openadr.days import days_between
from cariflex_pipeline.openadr.ingest import IngestReport
from cariflex_pipeline.openadr.source import ingest_from_source
from cariflex_pipeline.site_model import Sensor, Site

GROUP = "openadr"


def partition_days(context: dg.AssetExecutionContext, site: Site) -> tuple[list[date], datetime, datetime]:
    """The local days of the run's partition (range); a run without a partition (the main job) gets today and
    tomorrow (day-ahead)."""
    day_keys = run_day_keys(context)
    if day_keys:
        start = datetime.combine(date.fromisoformat(day_keys[0]), time(), site.tz)
        end = datetime.combine(date.fromisoformat(day_keys[-1]) + timedelta(days=1), time(), site.tz)
    else:
        start = datetime.combine(datetime.now(site.tz).date(), time(), site.tz)
        end = start + timedelta(days=2)
        context.log.info("no partition given: today and tomorrow (%s .. %s)", start.date(), end.date())
    return days_between(start.date(), end.date()), start, end


def _series_metadata(frame: pd.DataFrame, prefix: str, start: datetime, end: datetime,
                     sensor: Sensor) -> dict[str, dg.MetadataValue | float | str]:
    resolution = sensor.resolution
    expected = (end - start) / resolution
    values = frame["value"] if not frame.empty else pd.Series(dtype="float64")
    metadata: dict[str, dg.MetadataValue | float | str] = {
        "values": float(len(values)),
        "coverage_pct": round(float(100.0 * len(values) / expected), 1) if expected else 0.0,
        f"{prefix}_min": round(float(values.min()), 3) if len(values) else float("nan"),
        f"{prefix}_mean": round(float(values.mean()), 3) if len(values) else float("nan"),
        f"{prefix}_max": round(float(values.max()), 3) if len(values) else float("nan"),
    }
    if not frame.empty:
        latest = frame["event_start"].max() + frame["event_resolution"].iloc[0]
        metadata["latest_interval_covered"] = dg.MetadataValue.timestamp(latest.to_pydatetime())
    return metadata


def _charted_series_metadata(frame: pd.DataFrame, prefix: str, start: datetime, end: datetime,
                             sensor: Sensor) -> dict[str, dg.MetadataValue | float | str]:
    """`_series_metadata` with where the values came from and the window's curve first."""
    label = provenance_label(frame["source"])
    chart = dg.MetadataValue.md(_day_chart(frame, start, end, sensor, label))
    return {LABEL_KEY: label, "day_chart": chart, **_series_metadata(frame, prefix, start, end, sensor)}


def _day_chart(frame: pd.DataFrame, start: datetime, end: datetime, sensor: Sensor, label: str) -> str:
    """The window's curve, slot by slot in site time; a slot without a value is a gap."""
    slots = [start + n * sensor.resolution for n in range(round((end - start) / sensor.resolution))]
    known = {} if frame.empty else dict(zip(frame["event_start"], frame["value"], strict=True))
    values = [known.get(pd.Timestamp(slot)) for slot in slots]
    sample = f"{label.split(':')[0]} — " if "SAMPLE" in label else ""
    title = (f"{sample}{sensor.name} (sensor {sensor.id}), {start:%d %b %Y %H:%M} to {end:%d %b %H:%M} site time: "
             f"{sum(value is not None for value in values)} of {len(slots)} slots known")
    return markdown_image(day_curve_chart(slots, values, title, sensor.unit), f"{sensor.name} over the day")


def day_windows(context: dg.AssetExecutionContext, site: Site) -> list[tuple[str, datetime, datetime]]:
    """(partition key, local start, local end) of every day partition the run targets; none without a partition."""
    if not (context.has_partition_key_range or context.has_partition_key):
        return []
    return partition_day_windows(context, site.tz)


def _ingest_figures(report: IngestReport, days: list[date]) -> dict[str, float]:
    """Events and values of the report on `days` (one day: that partition's figures)."""
    figures = [report.day(day) for day in days]

    def events(outcome: str) -> float:
        return float(sum(day.events[outcome] for day in figures))

    return {
        "events_seen": float(sum(day.events_seen for day in figures)),
        "events_new": events("new"),
        "events_modified": events("modified"),
        "events_cancelled": events("cancelled"),
        "events_unchanged": events("unchanged"),
        "events_rejected": events("rejected"),
        "values_written": float(sum(day.values_written for day in figures)),
        "values_withdrawn": float(sum(day.values_withdrawn for day in figures)),
    }


@dg.asset(
    group_name=GROUP,
    partitions_def=daily_partitions,
    backfill_policy=DAY_BACKFILL,
    deps=[dg.AssetKey("sensor_registry")],
    kinds={"openadr"},
)
def openadr_events(
    context: dg.AssetExecutionContext, site: SiteResource, store: TimeSeriesStoreResource, vtn: VtnResource
) -> dg.MaterializeResult:
    """Events from the VTN (or the bundled sample feed) for the run's site, stored as received and as beliefs of
    84/86/87 (the sensors the site's mappings feed).

    Figures per day partition: the events whose intervals touch that day (by outcome), the values written and
    withdrawn on it, its prices and the end of its latest interval. `sync_events_seen` and
    `sync_values_written` are the whole ingestion of the run (a VTN resync also brings other days' events).
    """
    run_site = site.for_run(context)
    site_model = run_site.model
    series = store.open(run_site.portfolio)
    config = vtn.config()
    days, start, end = partition_days(context, site_model)
    # the run's site only: its mappings, its sensors (own and shared), its audit rows (a fleet run is one site)
    report = ingest_from_source(config, site.portfolio(), series, days, site_id=run_site.id)
    for event_id, reason in report.rejected.items():
        context.log.error("%s: event %s rejected: %s", config.describe(), event_id, reason)
    for warning in report.warnings:
        context.log.warning(warning)
    price_sensor = site_model.signals.consumption_price
    signal_sensors = [price_sensor, site_model.signals.load_control, site_model.signals.demand_response]

    def figures(window_days: list[date], window_start: datetime, window_end: datetime) -> dict:
        signals = series.read_latest(signal_sensors, window_start, window_end)
        prices = signals[signals["sensor_id"] == price_sensor]
        price = _series_metadata(prices, "price", window_start, window_end, site_model.sensor(price_sensor))
        return {LABEL_KEY: provenance_label(signals["source"]), **_ingest_figures(report, window_days),
                **{key: value for key, value in price.items() if key.startswith("price_")
                   or key == "latest_interval_covered"}}

    metadata: dict = {
        "source": config.describe(),
        "sync_events_seen": float(report.events_seen),
        "sync_values_written": float(report.values_written),
    }
    windows = day_windows(context, site_model)
    if windows:
        metadata["partitions"] = f"{windows[0][0]} .. {windows[-1][0]} ({len(windows)} days)"
        for key, day_start, day_end in windows:
            context.add_asset_metadata(figures([day_start.date()], day_start, day_end), partition_key=key)
    else:
        metadata.update(figures(days, start, end))
    if report.rejected:
        rows = "\n".join(f"| {event_id} | {reason} |" for event_id, reason in report.rejected.items())
        metadata["rejected"] = dg.MetadataValue.md("| event | reason |\n|---|---|\n" + rows)
    return dg.MaterializeResult(metadata=metadata)


def _signal_asset(name: str, field: str, prefix: str, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        group_name=GROUP,
        partitions_def=daily_partitions,
        backfill_policy=DAY_BACKFILL,
        deps=[openadr_events],
        kinds={"openadr"},
        description=description,
    )
    def _signal(context: dg.AssetExecutionContext, site: SiteResource,
                store: TimeSeriesStoreResource) -> dg.MaterializeResult:
        run_site = site.for_run(context)
        site_model = run_site.model
        series = store.open(run_site.portfolio)
        sensor_id = getattr(site_model.signals, field)
        sensor = site_model.sensor(sensor_id)
        _days, start, end = partition_days(context, site_model)
        frame = series.read_latest([sensor_id], start, end)
        if frame.empty:
            context.log.warning("sensor %d has no values between %s and %s", sensor_id, start, end)
        identity = {"sensor_id": float(sensor_id), "unit": sensor.unit}
        windows = day_windows(context, site_model)
        if not windows:
            return dg.MaterializeResult(metadata={**_charted_series_metadata(frame, prefix, start, end, sensor),
                                                  **identity})
        # Everything per partition, so that each day's page opens with where its values came from and its curve.
        for key, day_start, day_end in windows:
            in_day = frame[(frame["event_start"] >= day_start) & (frame["event_start"] < day_end)]
            context.add_asset_metadata({**_charted_series_metadata(in_day, prefix, day_start, day_end, sensor),
                                        **identity}, partition_key=key)
        return dg.MaterializeResult()

    return _signal


consumption_price = _signal_asset(
    "consumption_price", "consumption_price", "price",
    "Consumption price (sensor 84, EUR/MWh) on 15-minute slots, from the OpenADR price events of each day.")
load_control_signal = _signal_asset(
    "load_control_signal", "load_control", "load_control",
    "Share of the grid connection the DSO allows (sensor 86, %), from the OpenADR load-control events.")
demand_response_signal = _signal_asset(
    "demand_response_signal", "demand_response", "level",
    "OpenADR simple level 0..3 (sensor 87), from the demand-response events.")

SIGNAL_ASSETS = [consumption_price, load_control_signal, demand_response_signal]
