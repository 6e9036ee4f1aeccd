"""Ingestion: received events -> audit log + beliefs of sensors 84/86/87, idempotently.

For each event version (VTN, event id, modification number):
- already stored -> nothing changes (the same event twice writes nothing);
- older than the stored one -> ignored with a warning;
- cancelled -> the values of the previous version are withdrawn (store.delete_beliefs), the version logged;
- otherwise normalized first (EventRejected: nothing of it is written, it is reported), then the previous
  version's values are withdrawn, the new values written, and the version logged.
Withdrawal, values and audit row of one event version share one transaction: all land or none. Each event's
values carry a data source of their own (`openadr:<VTN>/<event id>`), so withdrawing a modified or cancelled
event never touches another event's values on the same sensors; where two events overlap, a read takes the
one with the later belief time (the event's modification time).

The report also counts per local day of the site (`IngestReport.days`): an event counts on the days its
intervals touch (a cancellation: the days of the values it withdrew), values written and withdrawn on the day
their slot starts. The Dagster assets turn these into the figures of each day partition.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from cariflex_pipeline.openadr.days import event_days, local_days, split_at_midnight
from cariflex_pipeline.openadr.errors import EventRejected
from cariflex_pipeline.openadr.model import OpenAdrEvent
from cariflex_pipeline.openadr.normalize import normalize_event
from cariflex_pipeline.openadr.repository import EventLog, EventRecord
from cariflex_pipeline.site_model import Site
from cariflex_pipeline.store import TimeSeriesStore

log = logging.getLogger(__name__)

SOURCE_TYPE = "vtn"


Outcome = Literal["new", "modified", "cancelled", "unchanged", "stale", "rejected"]


@dataclass
class DayFigures:
    """What one ingestion did on one local day."""

    events: Counter[str] = field(default_factory=Counter)  # outcome -> number of events touching the day
    values_written: int = 0
    values_withdrawn: int = 0

    @property
    def events_seen(self) -> int:
        return sum(self.events.values())

    def merge(self, other: DayFigures) -> None:
        self.events.update(other.events)
        self.values_written += other.values_written
        self.values_withdrawn += other.values_withdrawn


@dataclass
class IngestReport:
    events_seen: int = 0
    new: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    values_written: int = 0
    values_withdrawn: int = 0
    opt: dict[tuple[str, int], str] = field(default_factory=dict)  # (event id, modification) -> optIn/optOut
    days: dict[date, DayFigures] = field(default_factory=dict)  # per local day of the site

    def day(self, day: date) -> DayFigures:
        """The figures of one local day (zeros when the ingestion did not touch it)."""
        return self.days.get(day, DayFigures())

    def _count(self, outcome: Outcome, days: tuple[date, ...]) -> None:
        for day in days:
            self.days.setdefault(day, DayFigures()).events[outcome] += 1

    def _add_values(self, kind: Literal["values_written", "values_withdrawn"], by_day: dict[date, int]) -> None:
        for day, count in by_day.items():
            figures = self.days.setdefault(day, DayFigures())
            setattr(figures, kind, getattr(figures, kind) + count)

    def merge(self, other: IngestReport) -> None:
        self.events_seen += other.events_seen
        for name in ("new", "modified", "cancelled", "unchanged", "stale", "warnings"):
            getattr(self, name).extend(getattr(other, name))
        self.rejected.update(other.rejected)
        self.values_written += other.values_written
        self.values_withdrawn += other.values_withdrawn
        self.opt.update(other.opt)
        for day, figures in other.days.items():
            self.days.setdefault(day, DayFigures()).merge(figures)


def source_name(vtn_id: str, event_id: str) -> str:
    """The data source of one event's values in the store."""
    return f"openadr:{vtn_id}/{event_id}"


def ingest_events(
    events: Iterable[OpenAdrEvent],
    site: Site,
    store: TimeSeriesStore,
    received_at: datetime | None = None,
) -> IngestReport:
    received_at = received_at or datetime.now(UTC)
    event_log = EventLog(store.engine)
    report = IngestReport()
    latest: dict[tuple[str, str], OpenAdrEvent] = {}
    for event in events:
        report.events_seen += 1
        key = (event.vtn_id, event.event_id)
        if key not in latest or event.modification_number > latest[key].modification_number:
            latest[key] = event
    for event in latest.values():
        _ingest_one(event, site, store, event_log, received_at, report)
    return report


def _ingest_one(
    event: OpenAdrEvent,
    site: Site,
    store: TimeSeriesStore,
    event_log: EventLog,
    received_at: datetime,
    report: IngestReport,
) -> None:
    prior = event_log.latest(event.vtn_id, event.event_id)
    key = event.key
    days = event_days(event, site.tz) or _covered_days(prior, site.tz)

    def done(outcome: Outcome, opt: str | None = "optIn") -> None:
        if outcome != "rejected":  # rejected events are listed with their reason
            getattr(report, outcome).append(event.event_id)
        report._count(outcome, days)
        if opt is not None:
            report.opt[key] = opt

    if prior is not None and prior.modification_number == event.modification_number:
        done("unchanged")
        return
    if prior is not None and prior.modification_number > event.modification_number:
        message = (f"event {event.event_id!r} of VTN {event.vtn_id!r}: modification {event.modification_number} "
                   f"is older than the stored {prior.modification_number}; ignored")
        log.warning(message)
        report.warnings.append(message)
        done("stale", opt=None)
        return
    if event.cancelled:
        try:
            with store.transaction() as connection:
                withdrawn = _withdraw(prior, store, connection, site.tz)
                event_log.record(event, received_at, None, [], 0, connection=connection)
        except IntegrityError:
            done("unchanged")  # a concurrent run applied this version first
            return
        report.values_withdrawn += sum(withdrawn.values())
        report._add_values("values_withdrawn", withdrawn)
        done("cancelled")
        log.info("event %r of VTN %r (modification %d) cancelled: values withdrawn", event.event_id, event.vtn_id,
                 event.modification_number)
        return
    try:
        normalized = normalize_event(event, site)
    except EventRejected as error:
        log.error("VTN %r: %s", event.vtn_id, error)
        report.rejected[event.event_id] = error.reason
        done("rejected", opt="optOut")
        return
    report.warnings.extend(normalized.warnings)
    frame = normalized.frame[["sensor_id", "event_start", "value", "belief_time"]]
    try:
        with store.transaction() as connection:
            withdrawn = _withdraw(prior, store, connection, site.tz)
            written = store.write_beliefs(frame, source=source_name(event.vtn_id, event.event_id),
                                          source_type=SOURCE_TYPE, connection=connection)
            event_log.record(event, received_at, normalized.covered, normalized.sensor_ids, written,
                             connection=connection)
    except IntegrityError:
        done("unchanged")  # a concurrent run applied this version first
        return
    report.values_withdrawn += sum(withdrawn.values())
    report.values_written += written
    report._add_values("values_withdrawn", withdrawn)
    if not frame.empty:
        local_days_of_values = pd.to_datetime(frame["event_start"], utc=True).dt.tz_convert(site.tz).dt.date
        report._add_values("values_written", {day: int(n) for day, n in local_days_of_values.value_counts().items()})
    done("modified" if prior is not None else "new")


def _covered_days(record: EventRecord | None, tz: ZoneInfo) -> tuple[date, ...]:
    if record is None or record.covered_start is None or record.covered_end is None:
        return ()
    return local_days(record.covered_start, record.covered_end, tz)


def _withdraw(prior: EventRecord | None, store: TimeSeriesStore, connection: Connection,
              tz: ZoneInfo) -> dict[date, int]:
    """Delete the values of `prior` (one event version), counted per local day."""
    if prior is None or prior.covered_start is None or prior.covered_end is None or not prior.sensor_ids:
        return {}
    source = source_name(prior.vtn_id, prior.event_id)
    return {
        day: store.delete_beliefs(list(prior.sensor_ids), start, end, source=source, connection=connection)
        for day, start, end in split_at_midnight(prior.covered_start, prior.covered_end, tz)
    }


def absent_events(present: Iterable[OpenAdrEvent], vtn_id: str, programs: set[str | None], event_log: EventLog,
                  now: datetime) -> list[EventRecord]:
    """3.0.1: the stored events of `vtn_id` (of `programs`; None: any) that the VTN no longer lists (deleted) and
    whose values still lie ahead. Past values are kept: a VTN purging old events does not rewrite history."""
    listed = {event.event_id for event in present}
    return [
        record for (_vtn, event_id), record in event_log.latest_versions(vtn_id).items()
        if event_id not in listed and record.status != "cancelled"
        and (None in programs or record.program in programs)
        and record.covered_end is not None and record.covered_end > now
    ]


def withdraw_absent(
    present: Iterable[OpenAdrEvent],
    vtn_id: str,
    programs: set[str | None],
    site: Site,
    store: TimeSeriesStore,
    now: datetime,
    received_at: datetime | None = None,
) -> IngestReport:
    """3.0.1: an event the VTN no longer lists (deleted) whose values still lie ahead is treated as cancelled: a
    cancelled version of it (a tombstone) goes through ingestion like any cancellation."""
    tombstones = [
        OpenAdrEvent(
            protocol="3.0.1", vtn_id=vtn_id, event_id=record.event_id,
            modification_number=record.modification_number + 1, status="cancelled", program=record.program,
            response_required=False, signals=(), raw_payload='{"absent": "event no longer listed by the VTN"}',
        )
        for record in absent_events(present, vtn_id, programs, EventLog(store.engine), now)
    ]
    report = ingest_events(tombstones, site, store, received_at)
    report.events_seen = 0  # tombstones are not events the VTN sent
    return report
