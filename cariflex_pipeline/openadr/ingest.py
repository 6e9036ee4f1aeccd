"""Ingestion: received events -> audit log + beliefs of sensors 84/86/87, idempotently.

For each event version (VTN, event id, modification number):
- already stored -> nothing changes (the same event twice writes nothing);
- older than the stored one -> ignored with a warning;
- cancelled -> the values of the previous version are withdrawn (store.delete_beliefs), the version logged;
- otherwise normalized first (EventRejected: nothing of it is written, it is reported), then the previous
  version's values are withdrawn, the new values written, and the version logged;
- a 3.0.1 event whose values were withdrawn because the VTN had deleted it, listed again: its values are
  written again.
Anything an event makes fail (its fields, values, times) rejects that event only.
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
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from cariflex_pipeline.openadr.days import event_days, local_days, split_at_midnight
from cariflex_pipeline.openadr.errors import EventRejected
from cariflex_pipeline.openadr.limits import identity_problems, shown, source_name
from cariflex_pipeline.openadr.model import OpenAdrEvent
from cariflex_pipeline.openadr.normalize import normalize_event
from cariflex_pipeline.openadr.repository import AbsenceLog, EventLog, EventRecord
from cariflex_pipeline.site_model import Site
from cariflex_pipeline.store import TimeSeriesStore

log = logging.getLogger(__name__)

SOURCE_TYPE = "vtn"
# What a hostile event can make Python raise in parsing, normalization or the store's own checks (BeliefValidation-
# Error is a ValueError): caught per event, so it is that event's rejection, not the end of the batch. Database
# errors are not among them: a store that fails fails the run, and the checks keep bad fields away from it.
DATA_ERRORS = (ValueError, TypeError, ArithmeticError, RecursionError, LookupError)


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


def current_version(event: OpenAdrEvent, stored: EventRecord | None) -> OpenAdrEvent:
    """`event` numbered as ingestion orders it: by its own version, or, for a `sequenced` 3.0.1 event (no
    modificationDateTime), by a local sequence kept in the store: the stored number while its content is the
    same, the next one when it changed. A checksum would say "other", never "newer"."""
    if not event.sequenced:
        return event
    if stored is None:
        number = 0
    elif stored.raw_payload == event.raw_payload:
        number = stored.modification_number
    else:
        number = stored.modification_number + 1
    return replace(event, modification_number=number, sequenced=False)


def ingest_events(
    events: Iterable[OpenAdrEvent],
    site: Site,
    store: TimeSeriesStore,
    received_at: datetime | None = None,
) -> IngestReport:
    """Ingest each event on its own: one that cannot be ingested is reported as rejected (with its reason,
    answered optOut) and never stops the others."""
    received_at = received_at or datetime.now(UTC)
    context = _Context(site, store, EventLog(store.engine), AbsenceLog(store.engine), received_at)
    report = IngestReport()
    latest: dict[tuple[str, str], OpenAdrEvent] = {}
    for event in events:
        report.events_seen += 1
        key = (event.vtn_id, event.event_id)
        if key not in latest or event.modification_number > latest[key].modification_number:
            latest[key] = event
    for event in latest.values():
        try:
            _ingest_one(event, context, report)
        except EventRejected as error:
            _rejected(event, error.reason, report, site.tz)
        except DATA_ERRORS as error:  # the boundary: whatever slipped past the checks is this event's problem
            _rejected(event, f"cannot be ingested ({type(error).__name__}: {shown(str(error), 200)})", report,
                      site.tz)
    return report


@dataclass
class _Context:
    site: Site
    store: TimeSeriesStore
    event_log: EventLog
    absences: AbsenceLog
    received_at: datetime
    withdrawn: dict[str, set[str]] = field(default_factory=dict)  # VTN -> events whose values were withdrawn

    def was_withdrawn(self, event: OpenAdrEvent) -> bool:
        if event.protocol != "3.0.1":
            return False
        if event.vtn_id not in self.withdrawn:
            self.withdrawn[event.vtn_id] = {event_id for event_id, absence in self.absences.of(event.vtn_id).items()
                                            if absence.withdrawn_at is not None}
        return event.event_id in self.withdrawn[event.vtn_id]


def _rejected(event: OpenAdrEvent, reason: str, report: IngestReport, tz: ZoneInfo) -> None:
    error = EventRejected(event.event_id, reason, vtn_id=event.vtn_id)
    log.error("%s", error)
    report.rejected[event.event_id] = reason
    report.opt[event.key] = "optOut"
    try:
        days = event_days(event, tz)
    except DATA_ERRORS:  # the days themselves may be what made it fail
        days = ()
    report._count("rejected", days)


def _ingest_one(event: OpenAdrEvent, context: _Context, report: IngestReport) -> None:
    problems = identity_problems(event)
    if problems:  # before any query: these fields key the lookups and the audit row
        raise EventRejected(event.event_id, "; ".join(problems))
    site, store, event_log = context.site, context.store, context.event_log
    prior = event_log.latest(event.vtn_id, event.event_id)
    event = current_version(event, prior)
    key = event.key
    days = event_days(event, site.tz) or _covered_days(prior, site.tz)

    def done(outcome: Outcome, opt: str | None = "optIn") -> None:
        getattr(report, outcome).append(event.event_id)
        report._count(outcome, days)
        if opt is not None:
            report.opt[key] = opt

    restoring = prior is not None and prior.modification_number == event.modification_number \
        and context.was_withdrawn(event)
    if prior is not None and prior.modification_number == event.modification_number and not restoring:
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
                event_log.record(event, context.received_at, None, [], 0, connection=connection)
        except IntegrityError:
            done("unchanged")  # a concurrent run applied this version first
            return
        _count_withdrawn(report, withdrawn)
        done("cancelled")
        log.info("event %r of VTN %r (modification %d) cancelled: values withdrawn", event.event_id, event.vtn_id,
                 event.modification_number)
        return
    normalized = normalize_event(event, site)
    report.warnings.extend(normalized.warnings)
    frame = normalized.frame[["sensor_id", "event_start", "value", "belief_time"]]
    try:
        with store.transaction() as connection:
            withdrawn = _withdraw(prior, store, connection, site.tz)
            written = store.write_beliefs(frame, source=source_name(event.vtn_id, event.event_id),
                                          source_type=SOURCE_TYPE, connection=connection)
            if restoring:  # listed again after its values were withdrawn: the version is logged already
                context.absences.restored(event.vtn_id, event.event_id, connection)
            else:
                event_log.record(event, context.received_at, normalized.covered, normalized.sensor_ids, written,
                                 connection=connection)
    except IntegrityError:
        done("unchanged")  # a concurrent run applied this version first
        return
    _count_withdrawn(report, withdrawn)
    report.values_written += written
    if not frame.empty:
        local_days_of_values = pd.to_datetime(frame["event_start"], utc=True).dt.tz_convert(site.tz).dt.date
        report._add_values("values_written", {day: int(n) for day, n in local_days_of_values.value_counts().items()})
    if restoring:
        log.info("event %r of VTN %r is listed again: its values are back", event.event_id, event.vtn_id)
    done("modified" if prior is not None and not restoring else "new")


def _count_withdrawn(report: IngestReport, withdrawn: dict[date, int]) -> None:
    report.values_withdrawn += sum(withdrawn.values())
    report._add_values("values_withdrawn", withdrawn)


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


def withdraw_deleted(records: Iterable[EventRecord], site: Site, store: TimeSeriesStore,
                     now: datetime) -> IngestReport:
    """3.0.1: withdraw the values of events the VTN deleted (`ven301.deleted_events`); each withdrawal and the
    mark that it happened land together. The event's logged version stays: listed again, it gets its values
    back (`ingest_events`)."""
    absences = AbsenceLog(store.engine)
    report = IngestReport()
    for record in records:
        with store.transaction() as connection:
            withdrawn = _withdraw(record, store, connection, site.tz)
            absences.withdrawn(record.vtn_id, record.event_id, now, connection)
        _count_withdrawn(report, withdrawn)
        report.cancelled.append(record.event_id)
        report._count("cancelled", _covered_days(record, site.tz))
        log.info("event %r of VTN %r deleted: values withdrawn", record.event_id, record.vtn_id)
    return report
