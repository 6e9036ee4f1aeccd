"""Ingestion: received events -> audit log + beliefs of sensors 84/86/87, idempotently, for one site.

Everything is the site's own (`site_id`): its mappings decide which sensors an event feeds (its own and the shared
ones), and its audit rows decide what is already stored, so a site never skips an event because another site
stored it. Shared sensors are written by every site they belong to, with the same values under the same data
source (an idempotent upsert): nothing is doubled.

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
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from cariflex_pipeline.openadr.days import event_days, local_days, split_at_midnight
from cariflex_pipeline.openadr.errors import EventRejected
from cariflex_pipeline.openadr.limits import gc_paused, identity_problems, shown, source_name
from cariflex_pipeline.openadr.model import OpenAdrEvent
from cariflex_pipeline.openadr.normalize import NormalizedEvent, from_microseconds, microseconds, normalize_event
from cariflex_pipeline.openadr.repository import AbsenceLog, EventLog, EventRecord, LoggedVersion
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
    return replace(event, modification_number=number)


def ingest_events(
    events: Iterable[OpenAdrEvent],
    site: Site,
    store: TimeSeriesStore,
    received_at: datetime | None = None,
    *,
    site_id: str,
) -> IngestReport:
    """Ingest each event on its own terms: one that cannot be ingested is reported as rejected (with its reason,
    answered optOut) and never stops the others.

    What the events write lands in one transaction (a listing of thousands of events: one bulk write, not
    thousands). Should that transaction fail on what one event holds, it rolls back whole and each event is
    written again in a transaction of its own, so that only that event is rejected.
    """
    received_at = received_at or datetime.now(UTC)
    context = _Context(site, store, EventLog(store.engine, site_id=site_id), AbsenceLog(store.engine, site_id=site_id),
                       received_at)
    report = IngestReport()
    latest: dict[tuple[str, str], OpenAdrEvent] = {}
    for event in events:
        report.events_seen += 1
        key = (event.vtn_id, event.event_id)
        if key not in latest or event.modification_number > latest[key].modification_number:
            latest[key] = event
    identified = []
    for event in latest.values():
        problems = identity_problems(event)
        if problems:  # before any query: these fields key the lookups and the audit row
            _rejected(event, "; ".join(problems), report, site.tz)
        else:
            identified.append(event)
    priors = _priors(identified, context.event_log)
    writes = []
    with gc_paused():  # normalization builds lists of hundreds of thousands of values (see `gc_paused`)
        for event in identified:
            with _event_boundary(event, report, site.tz):
                write = _plan(event, priors.get((event.vtn_id, event.event_id)), context, report)
                if write is not None:
                    writes.append(write)
    _write_all(writes, context, report)
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


@dataclass
class _Write:
    """An event version that writes: its values (None: a cancellation), after withdrawing its prior's."""

    event: OpenAdrEvent
    prior: EventRecord | None
    normalized: NormalizedEvent | None
    restoring: bool  # listed again after its values were withdrawn: the version is logged already
    days: tuple[date, ...]
    outcome: Outcome


@contextmanager
def _event_boundary(event: OpenAdrEvent, report: IngestReport, tz: ZoneInfo) -> Iterator[None]:
    """Whatever `event` makes fail inside is that event's rejection, not the end of the batch."""
    try:
        yield
    except EventRejected as error:
        _rejected(event, error.reason, report, tz)
    except DATA_ERRORS as error:  # whatever slipped past the checks
        _rejected(event, f"cannot be ingested ({type(error).__name__}: {shown(str(error), 200)})", report, tz)


def _rejected(event: OpenAdrEvent, reason: str, report: IngestReport, tz: ZoneInfo) -> None:
    log.error(str(EventRejected(event.event_id, reason, vtn_id=event.vtn_id)))
    report.rejected[event.event_id] = reason
    report.opt[event.key] = "optOut"
    try:
        days = event_days(event, tz)
    except DATA_ERRORS:  # the days themselves may be what made it fail
        days = ()
    report._count("rejected", days)


def _priors(events: list[OpenAdrEvent], event_log: EventLog) -> dict[tuple[str, str], EventRecord]:
    """The latest stored version of each event, a few queries per VTN."""
    by_vtn: dict[str, list[str]] = {}
    for event in events:
        by_vtn.setdefault(event.vtn_id, []).append(event.event_id)
    return {(vtn_id, event_id): record for vtn_id, event_ids in by_vtn.items()
            for event_id, record in event_log.latest_of(vtn_id, event_ids).items()}


def _done(report: IngestReport, event: OpenAdrEvent, outcome: Outcome, days: tuple[date, ...],
          opt: str | None = "optIn") -> None:
    getattr(report, outcome).append(event.event_id)
    report._count(outcome, days)
    if opt is not None:
        report.opt[event.key] = opt


def _plan(event: OpenAdrEvent, prior: EventRecord | None, context: _Context, report: IngestReport) -> _Write | None:
    """What `event` changes, checked and normalized, nothing written yet; None when it changes nothing."""
    event = current_version(event, prior)
    days = event_days(event, context.site.tz) or _covered_days(prior, context.site.tz)
    same_version = prior is not None and prior.modification_number == event.modification_number
    restoring = same_version and context.was_withdrawn(event)
    if same_version and not restoring:
        _done(report, event, "unchanged", days)
        return None
    if prior is not None and prior.modification_number > event.modification_number:
        message = (f"event {event.event_id!r} of VTN {event.vtn_id!r}: modification {event.modification_number} "
                   f"is older than the stored {prior.modification_number}; ignored")
        log.warning(message)
        report.warnings.append(message)
        _done(report, event, "stale", days, opt=None)
        return None
    if event.cancelled:
        return _Write(event, prior, None, restoring, days, "cancelled")
    normalized = normalize_event(event, context.site)
    report.warnings.extend(normalized.warnings)
    return _Write(event, prior, normalized, restoring, days,
                  "modified" if prior is not None and not restoring else "new")


def _write_all(writes: list[_Write], context: _Context, report: IngestReport) -> None:
    if len(writes) > 1:
        try:
            withdrawn = _write_together(writes, context)
        except (IntegrityError, *DATA_ERRORS) as error:
            log.warning("writing %d events together failed (%s); writing each on its own", len(writes),
                        shown(str(error), 200))
        else:
            for write, withdrawn_by_day in zip(writes, withdrawn, strict=True):
                _applied(write, withdrawn_by_day, report, context.site.tz)
            return
    for write in writes:  # one by one: what made the batch fail is now one event's rejection
        with _event_boundary(write.event, report, context.site.tz):
            try:
                withdrawn = _write_together([write], context)
            except IntegrityError:
                _done(report, write.event, "unchanged", write.days)  # a concurrent run applied this version first
                continue
            _applied(write, withdrawn[0], report, context.site.tz)


def _write_together(writes: list[_Write], context: _Context) -> list[dict[date, int]]:
    """Log the versions, withdraw the priors, write the values: one transaction. Returns what each withdrew."""
    store, tz = context.store, context.site.tz
    valued = [write for write in writes if write.normalized is not None and len(write.normalized)]
    with store.transaction() as connection:
        # the log first: a version a concurrent run logged already fails here, before the values are written
        context.event_log.record_all([_logged(write) for write in writes if not write.restoring],
                                     context.received_at, connection)
        withdrawn = [_withdraw(write.prior, store, connection, tz) for write in writes]
        if valued:
            store.write_beliefs_of_sources(_values_frame(valued), source_type=SOURCE_TYPE, connection=connection)
        restored: dict[str, list[str]] = {}
        for write in writes:
            if write.restoring:
                restored.setdefault(write.event.vtn_id, []).append(write.event.event_id)
        for vtn_id, event_ids in restored.items():
            context.absences.restored(vtn_id, event_ids, connection)
    return withdrawn


def _logged(write: _Write) -> LoggedVersion:
    normalized = write.normalized
    if normalized is None:
        return LoggedVersion(write.event, None, (), 0)
    return LoggedVersion(write.event, normalized.covered, tuple(normalized.sensor_ids), len(normalized))


def _values_frame(writes: list[_Write]) -> pd.DataFrame:
    """The values of all these events in one frame, each event its own data source."""
    normalized = [write.normalized for write in writes if write.normalized is not None]
    sizes = np.array([len(values) for values in normalized])
    total = int(sizes.sum())

    def joined(column: str) -> np.ndarray:
        return np.fromiter(chain.from_iterable(getattr(values, column) for values in normalized),
                           dtype="float64" if column == "values" else "int64", count=total)

    sources = [source_name(values.event.vtn_id, values.event.event_id) for values in normalized]
    return pd.DataFrame({
        "sensor_id": joined("value_sensor_ids"),
        "event_start": pd.to_datetime(joined("starts_us"), unit="us", utc=True),
        "value": joined("values"),
        "belief_time": pd.to_datetime(np.repeat([values.belief_time_us for values in normalized], sizes),
                                      unit="us", utc=True),
        "source": pd.Categorical.from_codes(np.repeat(np.arange(len(normalized)), sizes), categories=sources),
    })


def _applied(write: _Write, withdrawn: dict[date, int], report: IngestReport, tz: ZoneInfo) -> None:
    """Report a write that committed."""
    event = write.event
    _count_withdrawn(report, withdrawn)
    if write.normalized is not None and len(write.normalized):
        report.values_written += len(write.normalized)
        report._add_values("values_written", _values_per_day(write.normalized.starts_us, tz))
    if write.outcome == "cancelled":
        log.info("event %r of VTN %r (modification %d) cancelled: values withdrawn", event.event_id, event.vtn_id,
                 event.modification_number)
    elif write.restoring:
        log.info("event %r of VTN %r is listed again: its values are back", event.event_id, event.vtn_id)
    _done(report, event, write.outcome, write.days)


def _values_per_day(starts_us: list[int], tz: ZoneInfo) -> dict[date, int]:
    """How many of these slot starts fall on each local day."""
    ordered = sorted(starts_us)
    counts: dict[date, int] = {}
    position = 0
    last = from_microseconds(ordered[-1]) + timedelta(microseconds=1)
    for day, _piece_start, piece_end in split_at_midnight(from_microseconds(ordered[0]), last, tz):
        index = bisect_left(ordered, microseconds(piece_end), position)
        if index > position:
            counts[day] = index - position
        position = index
    return counts


def _count_withdrawn(report: IngestReport, withdrawn: dict[date, int]) -> None:
    report.values_withdrawn += sum(withdrawn.values())
    report._add_values("values_withdrawn", withdrawn)


def _covered_days(record: EventRecord | None, tz: ZoneInfo) -> tuple[date, ...]:
    if record is None or record.covered is None:
        return ()
    return local_days(*record.covered, tz)


def _withdraw(prior: EventRecord | None, store: TimeSeriesStore, connection: Connection,
              tz: ZoneInfo) -> dict[date, int]:
    """Delete the values of `prior` (one event version), counted per local day."""
    if prior is None or prior.covered is None or not prior.sensor_ids:
        return {}
    source = source_name(prior.vtn_id, prior.event_id)
    return {
        day: store.delete_beliefs(list(prior.sensor_ids), start, end, source=source, connection=connection)
        for day, start, end in split_at_midnight(*prior.covered, tz)
    }


def withdraw_deleted(records: Iterable[EventRecord], site: Site, store: TimeSeriesStore,
                     now: datetime, *, site_id: str) -> IngestReport:
    """3.0.1: withdraw the values of events the VTN deleted for `site_id` (`ven301.deleted_events`); each
    withdrawal and the mark that it happened land together. The event's logged version stays: listed again, it
    gets its values back (`ingest_events`)."""
    absences = AbsenceLog(store.engine, site_id=site_id)
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
