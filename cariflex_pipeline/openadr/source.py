"""Where the signals come from: a configured 2.0b or 3.0.1 VTN, or the bundled sample feed when none is set.

`ingest_from_source` is what the Dagster assets call, for one site of the portfolio; `poll_changes` is what the
Dagster sensor calls: it asks the VTN what is there (2.0b: oadrPoll, or a resync when one is due or the last
tick's poll was lost; 3.0.1: GET /events) and says, per site, which events are new, modified, cancelled or
deleted compared with what that site stored, without ingesting values (the run it requests does that, after a
full resync, and only then answers a 2.0b VTN: never an optIn before the values it promises to follow are
committed).

A fleet (docs/fleet.md): sites sharing a VEN name are one VEN at the VTN. 2.0b: polled once per VEN name (a poll
hands an event over once; `ven_groups`), its events compared with each site's store; each site's run resyncs and
answers the events it follows (`ven20b.answered_by`). 3.0.1: each site lists with its own targets
(`portfolio.entry(id).openadr.targets`, else CARIFLEX_VTN_TARGET_*), sites with the same query share one listing.
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
from cariflex_pipeline.site_model import Portfolio, Site
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


def ven_name_of(site: Site) -> str:
    return site.openadr.ven_name if site.openadr else "cariflex"


def ven_groups(portfolio: Portfolio) -> dict[str, list[str]]:
    """VEN name -> the ids of the sites sharing it, in portfolio order: one VEN at the VTN each."""
    groups: dict[str, list[str]] = {}
    for site_id in portfolio.site_ids:
        groups.setdefault(ven_name_of(portfolio.site(site_id)), []).append(site_id)
    return groups


def peers_of(portfolio: Portfolio, site_id: str) -> list[Site]:
    """The other sites of `site_id`'s VEN name (whose share of the 2.0b answers is theirs)."""
    group = ven_groups(portfolio)[ven_name_of(portfolio.site(site_id))]
    return [portfolio.site(other) for other in group if other != site_id]


Targets = tuple[tuple[str, tuple[str, ...]], ...]


def targets_of(config: VtnConfig, portfolio: Portfolio, site_id: str) -> Targets:
    """The 3.0.1 targets `site_id` lists the VTN's events with: its own (portfolio file), else the deployment's
    CARIFLEX_VTN_TARGET_TYPE/_VALUES (today's query), else none."""
    own = portfolio.entry(site_id).openadr.targets
    if own:
        return tuple((target.type, tuple(target.values)) for target in own)
    return ((config.target_type, config.target_values),) if config.target_type else ()


def ven_20b(config: VtnConfig, site: Site, store: TimeSeriesStore) -> Ven20b:
    """The 2.0b VEN of the site's VEN name (its state is shared by every site of that name)."""
    return Ven20b(config.url or "", ven_name_of(site), store.engine, timeout_seconds=config.timeout_seconds,
                  retry=RetryPolicy(attempts=config.retry_attempts, backoff_seconds=config.retry_backoff_seconds),
                  resync_interval=timedelta(seconds=config.resync_seconds))


_VENS_301: dict[tuple[VtnConfig, tuple[str | None, ...], Targets], Ven301] = {}
_VENS_301_LOCK = threading.Lock()
_VENS_301_KEPT = 8


def ven_301(config: VtnConfig, site: Site, targets: Targets = ()) -> Ven301:
    """The 3.0.1 VEN of `config` listing the site's programs and `targets`, one per query and process: its token
    (and connection pool) outlives a call, so a sensor polling every 30 s asks the token endpoint again only when
    the token expires or is refused, not on every tick."""
    if not config.client_id or not config.client_secret:
        raise ValueError(f"{config.describe()}: OpenADR 3.0.1 needs a client id and secret "
                         "(CARIFLEX_VTN_CLIENT_ID / CARIFLEX_VTN_CLIENT_SECRET)")
    programs = programs_301(site)
    key = (config, tuple(programs), targets)
    with _VENS_301_LOCK:
        ven = _VENS_301.get(key)
        if ven is None:
            ven = Ven301(config.url or "", config.client_id, config.client_secret, vtn_id=config.vtn_id,
                         programs=programs, targets=targets, token_url=config.token_url,
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


def ingest_from_source(config: VtnConfig, portfolio: Portfolio, store: TimeSeriesStore,
                       days: list[date] | None = None, today: date | None = None, *, site_id: str) -> IngestReport:
    """Ingest for `site_id`, with its mappings and into its audit rows. Sample feed: the events of `days`
    (default today), plus tomorrow's when today is among them (day-ahead). VTN: a full resync of what it holds
    for the site's VEN (2.0b) or targets (3.0.1)."""
    site = portfolio.site(site_id)
    if config.is_sample:
        today = today or datetime.now(site.tz).date()
        days = with_day_ahead(days or [today], today)
        events: list[OpenAdrEvent] = []
        for day in days:
            events.extend(sample_events(day, site.timezone))
        return ingest_events(events, site, store, site_id=site_id)
    if config.protocol == "2.0b":
        with ven_20b(config, site, store) as ven:
            return sync_20b(ven, site, store, site_id=site_id, peers=peers_of(portfolio, site_id))
    return sync_301(ven_301(config, site, targets_of(config, portfolio, site_id)), site, store, site_id=site_id)


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


def changes_of(events: list[OpenAdrEvent], site: Site, store: TimeSeriesStore, *, site_id: str) -> list[EventChange]:
    """Which events differ from what `site_id` stored (unknown, another modification, newly cancelled, listed
    again after their values were withdrawn). An event that cannot even be looked up is left to the run, which
    reports it rejected; one whose days cannot be computed runs on the days its stored version covered."""
    known = EventLog(store.engine, site_id=site_id).latest_versions()
    withdrawn = AbsenceLog(store.engine, site_id=site_id).withdrawn_events()
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
    """What one sensor tick learnt: the changes per site id, and per VEN name the mark of the 2.0b fetch behind
    them (None otherwise), which the tick keeps in its cursor: the next tick resyncs when the VTN state holds
    another mark."""

    changes: dict[str, list[EventChange]]
    marks: dict[str, str | None] = field(default_factory=dict)


def poll_changes(config: VtnConfig, portfolio: Portfolio, store: TimeSeriesStore, now: datetime | None = None,
                 committed: Mapping[str, str | None] | None = None) -> Polled:
    """Ask the VTN (or the sample feed, for today and tomorrow) once per VEN (2.0b) or per distinct query
    (3.0.1) and list what changed for each site of the portfolio. `committed`: per VEN name, the mark of the last
    2.0b fetch whose changes were committed (the previous tick's cursor)."""
    now = now or datetime.now(UTC)
    committed = committed or {}
    changes: dict[str, list[EventChange]] = {}
    marks: dict[str, str | None] = {}
    if config.is_sample:
        for site_id in portfolio.site_ids:
            site = portfolio.site(site_id)
            today = now.astimezone(site.tz).date()
            events = sample_events(today, site.timezone) + sample_events(today + timedelta(days=1), site.timezone)
            changes[site_id] = changes_of(events, site, store, site_id=site_id)
    elif config.protocol == "2.0b":
        for ven_name, site_ids in ven_groups(portfolio).items():
            with ven_20b(config, portfolio.site(site_ids[0]), store) as ven:
                if not ven.poll_due(now):
                    marks[ven_name] = committed.get(ven_name)
                    changes.update({site_id: [] for site_id in site_ids})
                    continue
                distribution, marks[ven_name] = ven.fetch(now, committed.get(ven_name))
            for site_id in site_ids:
                changes[site_id] = changes_of(list(distribution.events), portfolio.site(site_id), store,
                                              site_id=site_id)
    else:
        listings: dict[Ven301, Listing] = {}  # sites with the same query (one cached VEN) share one walk
        for site_id in portfolio.site_ids:
            site = portfolio.site(site_id)
            ven = ven_301(config, site, targets_of(config, portfolio, site_id))
            if ven not in listings:
                listings[ven] = ven.listing()
            listing = listings[ven]
            changes[site_id] = (changes_of(listing.events, site, store, site_id=site_id)
                                + deleted_301(listing, ven, site, store, now, site_id=site_id))
    return Polled(changes, marks)


def deleted_301(listing: Listing, ven: Ven301, site: Site, store: TimeSeriesStore,
                now: datetime, *, site_id: str) -> list[EventChange]:
    """3.0.1 events `site_id` stored with values still ahead that the VTN deleted (`ven301.deleted_events`), as
    the version after their stored one (what `still_pending` counts a withdrawn event as)."""
    deleted = deleted_events(ven, listing, store, now, site_id=site_id)
    since = AbsenceLog(store.engine, site_id=site_id).of(ven.vtn_id)
    return [
        EventChange(record.event_id, record.modification_number + 1, "cancelled",
                    local_days(max(record.covered_start or now, now), record.covered_end or now, site.tz),
                    f"~deleted{since[record.event_id].absent_since.timestamp():.0f}")
        for record in deleted
    ]
