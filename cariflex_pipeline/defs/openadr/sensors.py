"""`openadr_vtn_sensor`: polls the configured VTN and reruns ingestion and everything downstream on a change.

A change is an event that is new, has another modification number, or is newly cancelled, compared with the
store (and with the cursor, which remembers what was already requested while the run is pending). One run is
requested per affected day partition; its run key carries the day and every event id with its modification
number, so a modified event reruns and a repeated poll does not. With no VTN configured, the bundled sample
feed for today and tomorrow is "polled" instead.

A run key is spent once requested, whatever the run's outcome, and a 2.0b VTN hands an event over only once: so
the cursor keeps, for every version still missing from the store, the run keys of its latest attempt. When those
runs failed (or were canceled), the version is requested again under `<run key>#retry<n>`, not before a delay
that doubles with each attempt, counted from the end of the failed run, and at most `VtnResource.run_retries`
times; then the sensor logs an error naming the event and keeps it in the cursor (`"gave_up": true`) until the
store holds it or the VTN sends a newer version.

The cursor also keeps the mark of the 2.0b fetch whose changes it holds (`{"poll": mark, "events": {...}}`): a
tick that polled and then died (the daemon killed, the store unreachable) left another mark in the VEN state,
so the next tick resyncs (oadrRequestEvent) and finds what the lost poll had handed over.
"""

import json
import logging
import re
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import dagster as dg

from cariflex_pipeline.defs.executor import job_executor
from cariflex_pipeline.defs.groups import DERIVED_GROUP
from cariflex_pipeline.defs.openadr.assets import openadr_events
from cariflex_pipeline.defs.openadr.partitions import daily_partitions
from cariflex_pipeline.defs.openadr.resources import RunRetries, VtnResource
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.openadr.repository import AbsenceLog, EventLog, EventRecord
from cariflex_pipeline.openadr.source import EventChange, poll_changes

RUN_TAG = "cariflex/openadr_run"  # the run key a run was requested under: how the sensor finds its outcome
ATTEMPT_TAG = "cariflex/openadr_attempt"  # 0: first request, n: retry n
FAILED = frozenset({dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED})
FINISHED = FAILED | {dg.DagsterRunStatus.SUCCESS}

# Ingestion and everything downstream up to the stations; the derived series follow at the next 15-minute tick
# (ev_replan_and_refresh), not between a VTN's event and the charge points.
openadr_ingest_job = dg.define_asset_job(
    "openadr_ingest",
    selection=dg.AssetSelection.assets(openadr_events).downstream() - dg.AssetSelection.groups(DERIVED_GROUP),
    executor_def=job_executor(),
    description="OpenADR ingestion of one day and everything downstream of it up to dispatch, in one process on the "
    "default executor.",
)


@dataclass(frozen=True)
class Pending:
    """An event version requested and not in the store yet (one entry of the cursor, keyed by event id)."""

    version: int
    kind: str = "new"
    run_keys: tuple[str, ...] = ()  # the run keys of its latest attempt, one per day partition
    attempt: int = 0  # 0: the first request; n: retry n
    gave_up: bool = False

    def to_json(self) -> dict:
        entry: dict = {"version": self.version, "kind": self.kind, "runs": list(self.run_keys),
                       "attempt": self.attempt}
        return {**entry, "gave_up": True} if self.gave_up else entry

    @classmethod
    def from_json(cls, value: int | dict) -> "Pending":
        if isinstance(value, int):  # a cursor written before retries: no run key known, the store decides
            return cls(value)
        return cls(value["version"], value.get("kind", "new"), tuple(value.get("runs", ())),
                   value.get("attempt", 0), value.get("gave_up", False))


@dataclass(frozen=True)
class Cursor:
    pending: dict[str, Pending]
    poll: str | None = None  # the mark of the 2.0b fetch these changes came from


def read_cursor(cursor: str | None) -> Cursor:
    value = json.loads(cursor or "{}")
    if isinstance(value.get("events"), dict) and set(value) <= {"events", "poll"}:
        return Cursor({event_id: Pending.from_json(entry) for event_id, entry in value["events"].items()},
                      value.get("poll"))
    # a cursor written before marks: event id -> entry
    return Cursor({event_id: Pending.from_json(entry) for event_id, entry in value.items()})


def write_cursor(cursor: Mapping[str, Pending], poll: str | None = None) -> str:
    return json.dumps({"events": {event_id: pending.to_json() for event_id, pending in cursor.items()},
                       "poll": poll}, sort_keys=True)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _run_request(key: str, day: str, versions: str, kinds: set[str], attempt: int) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=key,
        partition_key=day,
        tags={"cariflex/openadr_events": versions[:4000], "cariflex/openadr_changes": ",".join(sorted(kinds)),
              RUN_TAG: key, ATTEMPT_TAG: str(attempt)},
    )


def run_requests_for(changes: list[EventChange], cursor: Mapping[str, Pending]
                     ) -> tuple[list[dg.RunRequest], dict[str, Pending]]:
    fresh = [
        # a version the store does not hold yet, but an earlier one was already requested: a modification
        replace(c, kind="modified")
        if c.kind == "new" and c.event_id in cursor else c
        for c in changes
        if c.event_id not in cursor or cursor[c.event_id].version != c.modification_number
    ]
    by_day: dict[str, list[EventChange]] = defaultdict(list)
    for change in fresh:
        for day in change.days:
            by_day[day.isoformat()].append(change)
    requests = []
    keys: dict[str, list[str]] = defaultdict(list)
    for day, day_changes in sorted(by_day.items()):
        versions = ",".join(sorted(c.version for c in day_changes))
        key = f"openadr:{day}:{versions}"
        requests.append(_run_request(key, day, versions, {c.kind for c in day_changes}, 0))
        for change in day_changes:
            keys[change.event_id].append(key)
    new_cursor = {**cursor, **{c.event_id: Pending(c.modification_number, c.kind, tuple(keys[c.event_id]))
                               for c in fresh}}
    return requests, new_cursor


def still_pending(cursor: Mapping[str, Pending], stored: Mapping[tuple[str, str], EventRecord],
                  withdrawn: Collection[tuple[str, str]] = ()) -> dict[str, Pending]:
    """The cursor without the versions the store now holds: their runs are done, and the store itself tells
    `poll_changes` not to request them again. Without this the cursor grew by every event the VTN ever sent.
    A 3.0.1 event whose values were withdrawn (deleted) holds the version after its stored one."""
    held: dict[str, int] = {}
    for key, record in stored.items():
        number = record.modification_number + (1 if key in withdrawn else 0)
        held[key[1]] = max(held.get(key[1], number), number)
    return {event_id: pending for event_id, pending in cursor.items()
            if event_id not in held or held[event_id] < pending.version}


def base_key(run_key: str) -> str:
    return re.sub(r"#retry\d+$", "", run_key)


def retry_requests(cursor: Mapping[str, Pending], instance: dg.DagsterInstance, retries: RunRetries,
                   now: datetime, log: logging.Logger) -> tuple[list[dg.RunRequest], dict[str, Pending]]:
    """Run requests for the versions of `cursor` whose latest runs all failed or were canceled, once the delay
    after the last failure has passed; a version out of retries is marked `gave_up` and logged as an error."""
    latest: dict[str, dg.RunRecord | None] = {}

    def latest_run(key: str) -> dg.RunRecord | None:
        if key not in latest:
            records = instance.get_run_records(filters=dg.RunsFilter(tags={RUN_TAG: key}), limit=1)
            latest[key] = records[0] if records else None
        return latest[key]

    new_cursor = dict(cursor)
    retried: dict[str, list[str]] = defaultdict(list)  # retry run key -> event ids
    for event_id, pending in sorted(cursor.items()):
        if pending.gave_up or not pending.run_keys:
            continue
        runs = [latest_run(key) for key in pending.run_keys]
        if not all(run is not None and run.dagster_run.status in FAILED for run in runs):
            continue  # not launched yet, running, or done: the store decides
        ended = max(run.end_time or run.update_timestamp.timestamp() for run in runs if run is not None)
        outcome = ", ".join(f"run {run.dagster_run.run_id} ({key}) {run.dagster_run.status.value}"
                            for key, run in zip(pending.run_keys, runs, strict=True) if run is not None)
        retry = pending.attempt + 1
        if retry > retries.max_retries:
            log.error("OpenADR: event %s (modification %d) is not in the store after %d ingestion run(s); "
                      "no more retries (last: %s). Rerun openadr_ingest for it by hand.",
                      event_id, pending.version, retry, outcome)
            new_cursor[event_id] = replace(pending, gave_up=True)
            continue
        due = datetime.fromtimestamp(ended, UTC) + retries.delay(retry)
        if now < due:
            log.info("OpenADR: event %s (modification %d): %s; retry %d of %d at %s",
                     event_id, pending.version, outcome, retry, retries.max_retries, due.isoformat())
            continue
        keys = tuple(f"{base_key(key)}#retry{retry}" for key in pending.run_keys)
        log.warning("OpenADR: event %s (modification %d): %s; retry %d of %d: %s",
                    event_id, pending.version, outcome, retry, retries.max_retries, ", ".join(keys))
        new_cursor[event_id] = replace(pending, run_keys=keys, attempt=retry)
        for key in keys:
            retried[key].append(event_id)
    requests = []
    for key, event_ids in sorted(retried.items()):
        versions = ",".join(sorted(f"{event_id}@{new_cursor[event_id].version}" for event_id in event_ids))
        attempt = max(new_cursor[event_id].attempt for event_id in event_ids)
        requests.append(_run_request(key, key.split(":")[1], versions,
                                     {new_cursor[event_id].kind for event_id in event_ids}, attempt))
    return requests, new_cursor


def partition_days_of(change: EventChange, first: str, last: str) -> tuple[date, ...]:
    """The partitions to run for `change`: its days, with days after the last partition (an event published
    more than a day ahead) run as the last one and days before the first as the first. The run resyncs every
    event of the VTN, so the event is ingested (and answered) either way; dropping those days dropped the event."""
    lowest, highest = date.fromisoformat(first), date.fromisoformat(last)
    return tuple(sorted({min(max(day, lowest), highest) for day in change.days}))


# The VTN's requested poll frequency decides how often the VTN is asked (VEN state, `poll_due`); the sensor only has
# to look often enough not to add to it. Dagster's sensor daemon evaluates at most every 5 s anyway.
SENSOR_INTERVAL_SECONDS = 5


@dg.sensor(
    job=openadr_ingest_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls the configured OpenADR VTN (at most as often as it asks) and reruns ingestion and "
                "everything downstream for the days of every new, modified or cancelled event; retries a failed "
                "run (CARIFLEX_VTN_RUN_RETRIES times, CARIFLEX_VTN_RUN_RETRY_DELAY_SECONDS apart, doubling).",
)
def openadr_vtn_sensor(
    context: dg.SensorEvaluationContext, site: SiteResource, store: TimeSeriesStoreResource, vtn: VtnResource
) -> dg.SensorResult:
    site_model = site.load()
    series = store.open(site_model)
    previous = read_cursor(context.cursor)
    polled = poll_changes(vtn.config(), site_model, series, committed=previous.poll)
    cursor = previous.pending
    changes = polled.changes
    keys = daily_partitions.get_partition_keys(dynamic_partitions_store=None)
    changes = [
        replace(c, days=partition_days_of(c, keys[0], keys[-1])) for c in changes
    ]
    requests, new_cursor = run_requests_for(changes, cursor)
    new_cursor = still_pending(new_cursor, EventLog(series.engine).latest_versions(),
                               AbsenceLog(series.engine).withdrawn_events())
    if requests:
        context.log.info("OpenADR: %d change(s) -> %d run request(s)", len(changes), len(requests))
    retries, new_cursor = retry_requests(new_cursor, context.instance, vtn.run_retry_policy(), utc_now(),
                                         context.log)
    return dg.SensorResult(run_requests=requests + retries, cursor=write_cursor(new_cursor, polled.mark))
