"""OpenADR ingestion as assets, partitioned by Martinique day.

`openadr_events` asks the configured source (VTN or bundled sample feed) and stores every event (audit) and its
normalized values (beliefs of 84/86/87). The three signal assets read those values back for their days and
report them; downstream stages (scheduling) depend on exactly these asset keys. A range of days is one run
(BackfillPolicy.single_run()).
"""

from datetime import date, datetime, time, timedelta

import dagster as dg
import pandas as pd

from cariflex_pipeline.defs.openadr.partitions import daily_partitions
from cariflex_pipeline.defs.openadr.resources import VtnResource
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.openadr.source import days_between, ingest_from_source
from cariflex_pipeline.site_model import Site

GROUP = "openadr"


def partition_days(context: dg.AssetExecutionContext, site: Site) -> tuple[list[date], datetime, datetime]:
    """The local days of the run's partition (range); a run without a partition (the main job) gets today and
    tomorrow (day-ahead)."""
    if context.has_partition_key_range or context.has_partition_key:
        window = context.partition_time_window
        start = window.start.astimezone(site.tz)
        end = window.end.astimezone(site.tz)
    else:
        start = datetime.combine(datetime.now(site.tz).date(), time(), site.tz)
        end = start + timedelta(days=2)
        context.log.info("no partition given: today and tomorrow (%s .. %s)", start.date(), end.date())
    return days_between(start.date(), end.date()), start, end


def _series_metadata(frame: pd.DataFrame, prefix: str, start: datetime, end: datetime,
                     resolution: timedelta) -> dict[str, dg.MetadataValue | float | str]:
    expected = (end - start) / resolution
    values = frame["value"] if not frame.empty else pd.Series(dtype="float64")
    metadata: dict[str, dg.MetadataValue | float | str] = {
        "values": float(len(values)),
        "coverage_pct": float(100.0 * len(values) / expected) if expected else 0.0,
        f"{prefix}_min": float(values.min()) if len(values) else float("nan"),
        f"{prefix}_mean": float(values.mean()) if len(values) else float("nan"),
        f"{prefix}_max": float(values.max()) if len(values) else float("nan"),
    }
    if not frame.empty:
        latest = frame["event_start"].max() + frame["event_resolution"].iloc[0]
        metadata["latest_interval_covered"] = dg.MetadataValue.timestamp(latest.to_pydatetime())
    return metadata


@dg.asset(
    group_name=GROUP,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetKey("sensor_registry")],
    kinds={"openadr"},
)
def openadr_events(
    context: dg.AssetExecutionContext, site: SiteResource, store: TimeSeriesStoreResource, vtn: VtnResource
) -> dg.MaterializeResult:
    """Events from the VTN (or the bundled sample feed), stored as received and as beliefs of 84/86/87."""
    site_model = site.load()
    series = store.open(site_model)
    config = vtn.config()
    days, start, end = partition_days(context, site_model)
    report = ingest_from_source(config, site_model, series, days)
    for event_id, reason in report.rejected.items():
        context.log.error("event %s rejected: %s", event_id, reason)
    for warning in report.warnings:
        context.log.warning(warning)
    prices = series.read_latest([site_model.signals.consumption_price], start, end)
    metadata = {
        "source": config.describe(),
        "events_seen": float(report.events_seen),
        "events_new": float(len(report.new)),
        "events_modified": float(len(report.modified)),
        "events_cancelled": float(len(report.cancelled)),
        "events_unchanged": float(len(report.unchanged)),
        "events_rejected": float(len(report.rejected)),
        "values_written": float(report.values_written),
        "values_withdrawn": float(report.values_withdrawn),
        **{key: value for key, value in _series_metadata(prices, "price", start, end, site_model.resolution).items()
           if key.startswith("price_") or key == "latest_interval_covered"},
    }
    if report.rejected:
        rows = "\n".join(f"| {event_id} | {reason} |" for event_id, reason in report.rejected.items())
        metadata["rejected"] = dg.MetadataValue.md("| event | reason |\n|---|---|\n" + rows)
    return dg.MaterializeResult(metadata=metadata)


def _signal_asset(name: str, field: str, prefix: str, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        group_name=GROUP,
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[openadr_events],
        kinds={"openadr"},
        description=description,
    )
    def _signal(context: dg.AssetExecutionContext, site: SiteResource,
                store: TimeSeriesStoreResource) -> dg.MaterializeResult:
        site_model = site.load()
        series = store.open(site_model)
        sensor_id = getattr(site_model.signals, field)
        _days, start, end = partition_days(context, site_model)
        frame = series.read_latest([sensor_id], start, end)
        if frame.empty:
            context.log.warning("sensor %d has no values between %s and %s", sensor_id, start, end)
        metadata = _series_metadata(frame, prefix, start, end, site_model.sensor(sensor_id).resolution)
        metadata["sensor_id"] = float(sensor_id)
        metadata["unit"] = site_model.sensor(sensor_id).unit
        return dg.MaterializeResult(metadata=metadata)

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
