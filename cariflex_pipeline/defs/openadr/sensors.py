"""`openadr_vtn_sensor`: polls the configured VTN and reruns ingestion and everything downstream on a change.

A change is an event that is new, has another modification number, or is newly cancelled, compared with the
store (and with the cursor, which remembers what was already requested while the run is pending). One run is
requested per affected day partition; its run key carries the day and every event id with its modification
number, so a modified event reruns and a repeated poll does not. With no VTN configured, the bundled sample
feed for today and tomorrow is "polled" instead.
"""

import json
from collections import defaultdict
from collections.abc import Mapping
from datetime import date

import dagster as dg

from cariflex_pipeline.defs.openadr.assets import openadr_events
from cariflex_pipeline.defs.openadr.partitions import daily_partitions
from cariflex_pipeline.defs.openadr.resources import VtnResource
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.openadr.repository import EventLog, EventRecord
from cariflex_pipeline.openadr.source import EventChange, poll_changes

openadr_ingest_job = dg.define_asset_job(
    "openadr_ingest",
    selection=dg.AssetSelection.assets(openadr_events).downstream(),
    executor_def=dg.in_process_executor,
    description="OpenADR ingestion of one day and everything downstream of it, in one process.",
)


def run_requests_for(changes: list[EventChange], cursor: dict[str, int]) -> tuple[list[dg.RunRequest], dict]:
    fresh = [
        # a version the store does not hold yet, but an earlier one was already requested: a modification
        EventChange(c.event_id, c.modification_number, "modified", c.days)
        if c.kind == "new" and c.event_id in cursor else c
        for c in changes
        if cursor.get(c.event_id) != c.modification_number
    ]
    by_day: dict[str, list[EventChange]] = defaultdict(list)
    for change in fresh:
        for day in change.days:
            by_day[day.isoformat()].append(change)
    requests = []
    for day, day_changes in sorted(by_day.items()):
        versions = ",".join(sorted(f"{c.event_id}@{c.modification_number}" for c in day_changes))
        requests.append(dg.RunRequest(
            run_key=f"openadr:{day}:{versions}",
            partition_key=day,
            tags={"cariflex/openadr_events": versions[:4000],
                  "cariflex/openadr_changes": ",".join(sorted({c.kind for c in day_changes}))},
        ))
    new_cursor = {**cursor, **{change.event_id: change.modification_number for change in fresh}}
    return requests, new_cursor


def still_pending(cursor: dict[str, int], stored: Mapping[tuple[str, str], EventRecord]) -> dict[str, int]:
    """The cursor without the versions the store now holds: their runs are done, and the store itself tells
    `poll_changes` not to request them again. Without this the cursor grew by every event the VTN ever sent."""
    held: dict[str, int] = {}
    for (_vtn, event_id), record in stored.items():
        held[event_id] = max(held.get(event_id, record.modification_number), record.modification_number)
    return {event_id: version for event_id, version in cursor.items()
            if event_id not in held or held[event_id] < version}


def partition_days_of(change: EventChange, first: str, last: str) -> tuple[date, ...]:
    """The partitions to run for `change`: its days, with days after the last partition (an event published
    more than a day ahead) run as the last one and days before the first as the first. The run resyncs every
    event of the VTN, so the event is ingested (and answered) either way; dropping those days dropped the event."""
    lowest, highest = date.fromisoformat(first), date.fromisoformat(last)
    return tuple(sorted({min(max(day, lowest), highest) for day in change.days}))


@dg.sensor(
    job=openadr_ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls the configured OpenADR VTN (at most as often as it asks) and reruns ingestion and "
                "everything downstream for the days of every new, modified or cancelled event.",
)
def openadr_vtn_sensor(
    context: dg.SensorEvaluationContext, site: SiteResource, store: TimeSeriesStoreResource, vtn: VtnResource
) -> dg.SensorResult:
    site_model = site.load()
    series = store.open(site_model)
    changes = poll_changes(vtn.config(), site_model, series)
    cursor = json.loads(context.cursor) if context.cursor else {}
    keys = daily_partitions.get_partition_keys(dynamic_partitions_store=None)
    changes = [
        EventChange(c.event_id, c.modification_number, c.kind, partition_days_of(c, keys[0], keys[-1]))
        for c in changes
    ]
    requests, new_cursor = run_requests_for(changes, cursor)
    new_cursor = still_pending(new_cursor, EventLog(series.engine).latest_versions())
    if requests:
        context.log.info("OpenADR: %d change(s) -> %d run request(s)", len(changes), len(requests))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(new_cursor, sort_keys=True))
