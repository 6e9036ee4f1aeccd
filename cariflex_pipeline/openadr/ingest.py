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
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from cariflex_pipeline.openadr.errors import EventRejected
from cariflex_pipeline.openadr.model import OpenAdrEvent
from cariflex_pipeline.openadr.normalize import normalize_event
from cariflex_pipeline.openadr.repository import EventLog, EventRecord
from cariflex_pipeline.site_model import Site
from cariflex_pipeline.store import TimeSeriesStore

log = logging.getLogger(__name__)

SOURCE_TYPE = "vtn"


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

    def merge(self, other: IngestReport) -> None:
        self.events_seen += other.events_seen
        for name in ("new", "modified", "cancelled", "unchanged", "stale", "warnings"):
            getattr(self, name).extend(getattr(other, name))
        self.rejected.update(other.rejected)
        self.values_written += other.values_written
        self.values_withdrawn += other.values_withdrawn
        self.opt.update(other.opt)


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
    if prior is not None and prior.modification_number == event.modification_number:
        report.unchanged.append(event.event_id)
        report.opt[key] = "optIn"
        return
    if prior is not None and prior.modification_number > event.modification_number:
        message = (f"event {event.event_id!r}: modification {event.modification_number} is older than the "
                   f"stored {prior.modification_number}; ignored")
        log.warning(message)
        report.stale.append(event.event_id)
        report.warnings.append(message)
        return
    if event.cancelled:
        try:
            with store.transaction() as connection:
                withdrawn = _withdraw(prior, store, connection)
                event_log.record(event, received_at, None, [], 0, connection=connection)
        except IntegrityError:
            report.unchanged.append(event.event_id)  # a concurrent run applied this version first
            report.opt[key] = "optIn"
            return
        report.values_withdrawn += withdrawn
        report.cancelled.append(event.event_id)
        report.opt[key] = "optIn"
        log.info("event %r (modification %d) cancelled: values withdrawn", event.event_id,
                 event.modification_number)
        return
    try:
        normalized = normalize_event(event, site)
    except EventRejected as error:
        log.error("%s", error)
        report.rejected[event.event_id] = error.reason
        report.opt[key] = "optOut"
        return
    report.warnings.extend(normalized.warnings)
    frame = normalized.frame[["sensor_id", "event_start", "value", "belief_time"]]
    try:
        with store.transaction() as connection:
            withdrawn = _withdraw(prior, store, connection)
            written = store.write_beliefs(frame, source=source_name(event.vtn_id, event.event_id),
                                          source_type=SOURCE_TYPE, connection=connection)
            event_log.record(event, received_at, normalized.covered, normalized.sensor_ids, written,
                             connection=connection)
    except IntegrityError:
        report.unchanged.append(event.event_id)  # a concurrent run applied this version first
        report.opt[key] = "optIn"
        return
    report.values_withdrawn += withdrawn
    report.values_written += written
    (report.modified if prior is not None else report.new).append(event.event_id)
    report.opt[key] = "optIn"


def _withdraw(prior: EventRecord | None, store: TimeSeriesStore, connection: Connection) -> int:
    if prior is None or prior.covered_start is None or prior.covered_end is None or not prior.sensor_ids:
        return 0
    return store.delete_beliefs(list(prior.sensor_ids), prior.covered_start, prior.covered_end,
                                source=source_name(prior.vtn_id, prior.event_id), connection=connection)


def withdraw_absent(
    present: Iterable[OpenAdrEvent],
    vtn_id: str,
    programs: set[str | None],
    store: TimeSeriesStore,
    now: datetime,
    received_at: datetime | None = None,
) -> IngestReport:
    """3.0.1: an event the VTN no longer lists (deleted) whose values still lie ahead is treated as cancelled.

    Past values are kept: a VTN purging old events does not rewrite history.
    """
    received_at = received_at or datetime.now(UTC)
    event_log = EventLog(store.engine)
    report = IngestReport()
    listed = {event.event_id for event in present}
    for (_vtn, event_id), record in event_log.latest_versions(vtn_id).items():
        if event_id in listed or record.status == "cancelled":
            continue
        if None not in programs and record.program not in programs:
            continue
        if record.covered_end is None or record.covered_end <= now:
            continue
        tombstone = OpenAdrEvent(
            protocol="3.0.1", vtn_id=vtn_id, event_id=event_id,
            modification_number=record.modification_number + 1, status="cancelled", program=record.program,
            response_required=False, signals=(), raw_payload='{"absent": "event no longer listed by the VTN"}',
        )
        try:
            with store.transaction() as connection:
                withdrawn = _withdraw(record, store, connection)
                event_log.record(tombstone, received_at, None, [], 0, connection=connection)
        except IntegrityError:
            continue  # a concurrent run withdrew it first
        report.values_withdrawn += withdrawn
        report.cancelled.append(event_id)
    return report
