"""Where the signals come from: a configured 2.0b or 3.0.1 VTN, or the bundled sample feed when none is set.

`ingest_from_source` is what the Dagster assets call; `poll_changes` is what the Dagster sensor calls: it asks
the VTN what is there (2.0b: oadrPoll, or a resync when one is due or the last tick's poll was lost; 3.0.1:
GET /events) and says which events are new, modified, cancelled or deleted compared with the store, without
ingesting values (the run it requests does that, after a full resync, and only then answers a 2.0b VTN: never
an optIn before the values it promises to follow are committed).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

from cariflex_pipeline.openadr.days import event_days, local_days
from cariflex_pipeline.openadr.http import RetryPolicy
from cariflex_pipeline.openadr.ingest import DATA_ERRORS, IngestReport, current_version, ingest_events
from cariflex_pipeline.openadr.limits import identity_problems
from cariflex_pipeline.openadr.model import OpenAdrEvent
from cariflex_pipeline.openadr.repository import AbsenceLog, EventLog
from cariflex_pipeline.openadr.sample_feed import sample_events
from cariflex_pipeline.openadr.ven20b import DEFAULT_RESYNC, Ven20b
from cariflex_pipeline.openadr.ven20b import sync as sync_20b
from cariflex_pipeline.openadr.ven301 import DELETE_AFTER, Listing, Ven301, deleted_events
from cariflex_pipeline.openadr.ven301 import sync as sync_301
from cariflex_pipeline.site_model import Site
from cariflex_pipeline.store import TimeSeriesStore


@dataclass(frozen=True)
class VtnConfig:
    url: str | None = None  # None: the bundled sample feed
    protocol: Literal["2.0b", "3.0.1"] = "2.0b"
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    token_url: str | None = None
    vtn_id: str | None = None
    target_type: str | None = None
    target_values: tuple[str, ...] = ()
    timeout_seconds: float = 10.0
    retry_attempts: int = 4
    retry_backoff_seconds: float = 0.5
    resync_seconds: float = DEFAULT_RESYNC.total_seconds()  # 2.0b: a full resync at least this often
    delete_after_seconds: float = DELETE_AFTER.total_seconds()  # 3.0.1: unlisted this long = deleted

    def __post_init__(self) -> None:
        if self.protocol not in ("2.0b", "3.0.1"):
            raise ValueError(f"CARIFLEX_VTN_PROTOCOL must be 2.0b or 3.0.1, not {self.protocol!r}")
        parts = urlsplit(self.url or "")
        if "@" in parts.netloc:
            # the URL is logged, put in errors and metadata, and keys the stored VEN state: no password in it
            raise ValueError(f"CARIFLEX_VTN_URL for host {parts.hostname!r} carries credentials (user:password@); "
                             "they would be logged and stored. Give the URL without them.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> VtnConfig:
        """From CARIFLEX_VTN_URL, _PROTOCOL, _CLIENT_ID, _CLIENT_SECRET, _TOKEN_URL, _ID, _TARGET_TYPE,
        _TARGET_VALUES (comma-separated), _RESYNC_SECONDS, _DELETE_AFTER_SECONDS; an unset URL means the bundled
        sample feed."""
        env = os.environ if environ is None else environ
        protocol = env.get("CARIFLEX_VTN_PROTOCOL", "2.0b").strip() or "2.0b"
        return cls(
            url=env.get("CARIFLEX_VTN_URL") or None, protocol=protocol,  # type: ignore[arg-type]
            client_id=env.get("CARIFLEX_VTN_CLIENT_ID") or None,
            client_secret=env.get("CARIFLEX_VTN_CLIENT_SECRET") or None,
            token_url=env.get("CARIFLEX_VTN_TOKEN_URL") or None, vtn_id=env.get("CARIFLEX_VTN_ID") or None,
            target_type=env.get("CARIFLEX_VTN_TARGET_TYPE") or None,
            target_values=tuple(v.strip() for v in env.get("CARIFLEX_VTN_TARGET_VALUES", "").split(",") if v.strip()),
            resync_seconds=float(env.get("CARIFLEX_VTN_RESYNC_SECONDS") or DEFAULT_RESYNC.total_seconds()),
            delete_after_seconds=float(env.get("CARIFLEX_VTN_DELETE_AFTER_SECONDS")
                                       or DELETE_AFTER.total_seconds()),
        )

    @property
    def is_sample(self) -> bool:
        return not self.url

    def describe(self) -> str:
        return "bundled sample feed" if self.is_sample else f"OpenADR {self.protocol} VTN at {self.url}"


def programs_301(site: Site) -> list[str | None]:
    """The 3.0.1 programIDs the site's mapping names (None: any program)."""
    if site.openadr is None:
        return [None]
    programs = {mapping.program for mapping in site.openadr.signals if mapping.payload_type is not None}
    return [None] if not programs or None in programs else sorted(programs)


def ven_20b(config: VtnConfig, site: Site, store: TimeSeriesStore) -> Ven20b:
    ven_name = site.openadr.ven_name if site.openadr else "cariflex"
    return Ven20b(config.url or "", ven_name, store.engine, timeout_seconds=config.timeout_seconds,
                  retry=RetryPolicy(attempts=config.retry_attempts, backoff_seconds=config.retry_backoff_seconds),
                  resync_interval=timedelta(seconds=config.resync_seconds))


_VENS_301: dict[tuple[VtnConfig, tuple[str | None, ...]], Ven301] = {}
_VENS_301_LOCK = threading.Lock()
_VENS_301_KEPT = 8


def ven_301(config: VtnConfig, site: Site) -> Ven301:
    """The 3.0.1 VEN of `config`, one per configuration and process: its token (and connection pool) outlives a
    call, so a sensor polling every 30 s asks the token endpoint again only when the token expires or is refused,
    not on every tick."""
    if not config.client_id or not config.client_secret:
        raise ValueError(f"{config.describe()}: OpenADR 3.0.1 needs a client id and secret "
                         "(CARIFLEX_VTN_CLIENT_ID / CARIFLEX_VTN_CLIENT_SECRET)")
    programs = programs_301(site)
    key = (config, tuple(programs))
    with _VENS_301_LOCK:
        ven = _VENS_301.get(key)
        if ven is None:
            ven = Ven301(config.url or "", config.client_id, config.client_secret, vtn_id=config.vtn_id,
                         programs=programs, target_type=config.target_type,
                         target_values=list(config.target_values), token_url=config.token_url,
                         timeout_seconds=config.timeout_seconds,
                         delete_after=timedelta(seconds=config.delete_after_seconds),
                         retry=RetryPolicy(attempts=config.retry_attempts,
                                           backoff_seconds=config.retry_backoff_seconds))
            while len(_VENS_301) >= _VENS_301_KEPT:  # a changed configuration: forget the oldest
                _VENS_301.pop(next(iter(_VENS_301))).client.close()
            _VENS_301[key] = ven
        return ven


def with_day_ahead(days: list[date], today: date) -> list[date]:
    """Sample feed days plus tomorrow when today is among them: day-ahead values are published the day before,
    so a run for today also knows tomorrow (as a VTN would have sent it)."""
    tomorrow = today + timedelta(days=1)
    return [*days, tomorrow] if today in days and tomorrow not in days else list(days)


def ingest_from_source(config: VtnConfig, site: Site, store: TimeSeriesStore,
                       days: list[date] | None = None, today: date | None = None) -> IngestReport:
    """Sample feed: the events of `days` (default today), plus tomorrow's when today is among them (day-ahead).
    VTN: a full resync of what it holds."""
    if config.is_sample:
        today = today or datetime.now(site.tz).date()
        days = with_day_ahead(days or [today], today)
        events: list[OpenAdrEvent] = []
        for day in days:
            events.extend(sample_events(day, site.timezone))
        return ingest_events(events, site, store)
    if config.protocol == "2.0b":
        with ven_20b(config, site, store) as ven:
            return sync_20b(ven, site, store)
    return sync_301(ven_301(config, site), site, store)


@dataclass(frozen=True)
class EventChange:
    event_id: str
    modification_number: int
    kind: Literal["new", "modified", "cancelled"]
    days: tuple[date, ...]  # local days the event covers (partitions to rerun)
    # A 3.0.1 deletion or return names no new version of the VTN's: the tag (which deletion, which return) keeps
    # its run key apart from the run keys of the versions, which Dagster would not run again.
    tag: str = ""

    @property
    def version(self) -> str:
        return f"{self.event_id}@{self.modification_number}{self.tag}"


def changes_of(events: list[OpenAdrEvent], site: Site, store: TimeSeriesStore) -> list[EventChange]:
    """Which events differ from what the store holds (unknown, another modification, newly cancelled, listed
    again after their values were withdrawn). An event that cannot even be looked up is left to the run, which
    reports it rejected; one whose days cannot be computed runs on the days its stored version covered."""
    known = EventLog(store.engine).latest_versions()
    withdrawn = AbsenceLog(store.engine).withdrawn_events()
    changes = []
    for event in events:
        if identity_problems(event):
            continue
        record = known.get((event.vtn_id, event.event_id))
        event = current_version(event, record)
        if record is not None and record.modification_number >= event.modification_number \
                and (event.vtn_id, event.event_id) not in withdrawn:
            continue
        kind: Literal["new", "modified", "cancelled"] = (
            "cancelled" if event.cancelled else "modified" if record is not None and record.modification_number
            < event.modification_number else "new"
        )
        try:
            days = event_days(event, site.tz)
        except DATA_ERRORS:
            days = ()
        if not days and record is not None and record.covered is not None:
            days = local_days(*record.covered, site.tz)
        back = withdrawn.get((event.vtn_id, event.event_id))
        changes.append(EventChange(event.event_id, event.modification_number, kind, days,
                                   f"~back{back.timestamp():.0f}" if back and record is not None
                                   and record.modification_number == event.modification_number else ""))
    return changes


@dataclass(frozen=True)
class Polled:
    """What one sensor tick learnt: the changes, and the mark of the 2.0b fetch behind them (None otherwise),
    which the tick keeps in its cursor: the next tick resyncs when the VTN state holds another mark."""

    changes: list[EventChange]
    mark: str | None = None


def poll_changes(config: VtnConfig, site: Site, store: TimeSeriesStore, now: datetime | None = None,
                 committed: str | None = None) -> Polled:
    """Ask the VTN (or the sample feed, for today and tomorrow) and list what changed. `committed`: the mark of
    the last 2.0b fetch whose changes were committed (the previous tick's cursor)."""
    now = now or datetime.now(UTC)
    if config.is_sample:
        today = now.astimezone(site.tz).date()
        events = sample_events(today, site.timezone) + sample_events(today + timedelta(days=1), site.timezone)
        return Polled(changes_of(events, site, store))
    if config.protocol == "2.0b":
        with ven_20b(config, site, store) as ven:
            if not ven.poll_due(now):
                return Polled([], committed)
            distribution, mark = ven.fetch(now, committed)
            return Polled(changes_of(list(distribution.events), site, store), mark)
    ven = ven_301(config, site)
    listing = ven.listing()
    return Polled(changes_of(listing.events, site, store) + deleted_301(listing, ven, site, store, now))


def deleted_301(listing: Listing, ven: Ven301, site: Site, store: TimeSeriesStore,
                now: datetime) -> list[EventChange]:
    """3.0.1 events the store holds with values still ahead that the VTN deleted (`ven301.deleted_events`), as
    the version after their stored one (what `still_pending` counts a withdrawn event as)."""
    deleted = deleted_events(ven, listing, store, now)
    since = AbsenceLog(store.engine).of(ven.vtn_id)
    return [
        EventChange(record.event_id, record.modification_number + 1, "cancelled",
                    local_days(max(record.covered_start or now, now), record.covered_end or now, site.tz),
                    f"~deleted{since[record.event_id].absent_since.timestamp():.0f}")
        for record in deleted
    ]
