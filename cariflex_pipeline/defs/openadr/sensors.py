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

A fleet (`IS_FLEET`, docs/fleet.md): the VTN is asked once per VEN (sites sharing a VEN name are one VEN: its
oadrPoll hands an event over once), each site's changes are compared with that site's own store rows, and a run
is requested per affected site and day, under `openadr:<site>:<day>:<versions>` with the site x day partition
(`partition_key_for`); a site not yet in the `sites` dynamic partitions is added by the same tick. The cursor is
`{"sites": {site: {event id: ...}}, "polls": {VEN name: mark}}`. One site keeps the run keys and cursor above.
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
from cariflex_pipeline.defs.openadr.resources import RunRetries, VtnResource
from cariflex_pipeline.defs.partitions import (
    IS_FLEET,
    SITES_PARTITIONS_NAME,
    day_partitions,
    partition_key_for,
    site_partitions,
)
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.sites import SITE_TAG
from cariflex_pipeline.openadr.repository import AbsenceLog, EventLog, EventRecord
from cariflex_pipeline.openadr.source import EventChange, VtnConfig, poll_changes, ven_name_of
from cariflex_pipeline.site_model import Portfolio
from cariflex_pipeline.store import TimeSeriesStore

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
    pending: dict[str, dict[str, Pending]]  # site id -> event id -> version requested, not stored yet
    polls: dict[str, str | None]  # VEN name -> the mark of the 2.0b fetch these changes came from


def _events(entries: Mapping[str, int | dict]) -> dict[str, Pending]:
    return {event_id: Pending.from_json(entry) for event_id, entry in entries.items()}


def read_cursor(cursor: str | None, portfolio: Portfolio, fleet: bool) -> Cursor:
    value = json.loads(cursor or "{}")
    if fleet:
        # a one-site cursor (before the fleet) is dropped: each site's store rows decide what is still to run
        sites = value.get("sites") if isinstance(value.get("sites"), dict) else {}
        return Cursor({site_id: _events(events) for site_id, events in sites.items()}, dict(value.get("polls") or {}))
    site_id = portfolio.site_ids[0]
    ven_name = ven_name_of(portfolio.site(site_id))
    if isinstance(value.get("events"), dict) and set(value) <= {"events", "poll"}:
        return Cursor({site_id: _events(value["events"])}, {ven_name: value.get("poll")})
    # a cursor written before marks: event id -> entry
    return Cursor({site_id: _events(value)}, {ven_name: None})


def write_cursor(cursor: Cursor, portfolio: Portfolio, fleet: bool) -> str:
    def events(site_id: str) -> dict:
        return {event_id: pending.to_json() for event_id, pending in cursor.pending.get(site_id, {}).items()}

    if fleet:
        return json.dumps({"sites": {site_id: events(site_id) for site_id in sorted(cursor.pending)},
                           "polls": cursor.polls}, sort_keys=True)
    site_id = portfolio.site_ids[0]
    return json.dumps({"events": events(site_id), "poll": cursor.polls.get(ven_name_of(portfolio.site(site_id)))},
                      sort_keys=True)


def utc_now() -> datetime:
    return datetime.now(UTC)


def key_prefix(site_id: str | None) -> str:
    """Run keys of one site's runs begin `openadr:`, as before the fleet; a fleet's `openadr:<site id>:`."""
    return "openadr:" if site_id is None else f"openadr:{site_id}:"


def _run_request(key: str, day: str, versions: str, kinds: set[str], attempt: int,
                 site_id: str | None) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=key,
        partition_key=day if site_id is None else partition_key_for(site_id, day),
        tags={"cariflex/openadr_events": versions[:4000], "cariflex/openadr_changes": ",".join(sorted(kinds)),
              RUN_TAG: key, ATTEMPT_TAG: str(attempt), **({} if site_id is None else {SITE_TAG: site_id})},
    )


def run_requests_for(changes: list[EventChange], cursor: Mapping[str, Pending], site_id: str | None = None,
                     ) -> tuple[list[dg.RunRequest], dict[str, Pending]]:
    """One run per day the changes touch (of `site_id`, in a fleet), and the cursor with them requested."""
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
        key = f"{key_prefix(site_id)}{day}:{versions}"
        requests.append(_run_request(key, day, versions, {c.kind for c in day_changes}, 0, site_id))
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
                   now: datetime, log: logging.Logger, site_id: str | None = None,
                   ) -> tuple[list[dg.RunRequest], dict[str, Pending]]:
    """Run requests for the versions of `cursor` (of `site_id`, in a fleet) whose latest runs all failed or were
    canceled, once the delay after the last failure has passed; a version out of retries is marked `gave_up` and
    logged as an error."""
    of_site = "" if site_id is None else f" of site {site_id!r}"
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
            log.error("OpenADR: event %s (modification %d)%s is not in the store after %d ingestion run(s); "
                      "no more retries (last: %s). Rerun openadr_ingest for it by hand.",
                      event_id, pending.version, of_site, retry, outcome)
            new_cursor[event_id] = replace(pending, gave_up=True)
            continue
        due = datetime.fromtimestamp(ended, UTC) + retries.delay(retry)
        if now < due:
            log.info("OpenADR: event %s (modification %d)%s: %s; retry %d of %d at %s",
                     event_id, pending.version, of_site, outcome, retry, retries.max_retries, due.isoformat())
            continue
        keys = tuple(f"{base_key(key)}#retry{retry}" for key in pending.run_keys)
        log.warning("OpenADR: event %s (modification %d)%s: %s; retry %d of %d: %s",
                    event_id, pending.version, of_site, outcome, retry, retries.max_retries, ", ".join(keys))
        new_cursor[event_id] = replace(pending, run_keys=keys, attempt=retry)
        for key in keys:
            retried[key].append(event_id)
    requests = []
    for key, event_ids in sorted(retried.items()):
        versions = ",".join(sorted(f"{event_id}@{new_cursor[event_id].version}" for event_id in event_ids))
        attempt = max(new_cursor[event_id].attempt for event_id in event_ids)
        day = key.removeprefix(key_prefix(site_id)).split(":")[0]
        requests.append(_run_request(key, day, versions, {new_cursor[event_id].kind for event_id in event_ids},
                                     attempt, site_id))
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
    portfolio = site.portfolio()
    series = store.open(portfolio)
    return vtn_tick(context, portfolio, series, vtn.config(), vtn.run_retry_policy(), IS_FLEET)


def vtn_tick(context: dg.SensorEvaluationContext, portfolio: Portfolio, series: TimeSeriesStore, config: VtnConfig,
             retry_policy: RunRetries, fleet: bool) -> dg.SensorResult:
    """One tick: poll once per VEN, then, site by site, the runs for its changes and retries, and its cursor."""
    previous = read_cursor(context.cursor, portfolio, fleet)
    polled = poll_changes(config, portfolio, series, committed=previous.polls)
    keys = day_partitions.get_partition_keys()
    requests: list[dg.RunRequest] = []
    pending: dict[str, dict[str, Pending]] = {}
    for site_id in portfolio.site_ids:
        run_site = site_id if fleet else None
        changes = [replace(c, days=partition_days_of(c, keys[0], keys[-1])) for c in polled.changes[site_id]]
        site_requests, site_cursor = run_requests_for(changes, previous.pending.get(site_id, {}), run_site)
        site_cursor = still_pending(site_cursor, EventLog(series.engine, site_id=site_id).latest_versions(),
                                    AbsenceLog(series.engine, site_id=site_id).withdrawn_events())
        if site_requests:
            context.log.info("OpenADR%s: %d change(s) -> %d run request(s)", f" {site_id}" if fleet else "",
                             len(changes), len(site_requests))
        retries, pending[site_id] = retry_requests(site_cursor, context.instance, retry_policy, utc_now(),
                                                   context.log, run_site)
        requests += site_requests + retries
    cursor = write_cursor(Cursor(pending, polled.marks), portfolio, fleet)
    if not fleet:
        return dg.SensorResult(run_requests=requests, cursor=cursor)
    known = set(context.instance.get_dynamic_partitions(SITES_PARTITIONS_NAME))
    missing = sorted({request.tags[SITE_TAG] for request in requests} - known)
    return dg.SensorResult(run_requests=requests, cursor=cursor, dynamic_partitions_requests=(
        [site_partitions.build_add_request(missing)] if missing else []))
