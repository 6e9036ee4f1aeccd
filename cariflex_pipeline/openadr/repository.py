"""Reading and writing the OpenADR tables (audit log of events, VEN state) on the store's engine.

The audit log and the absences are a site's own (`EventLog(engine, site_id=...)`): every query and every row is
that site's, so that two sites fed by one VTN each ingest every event for themselves. The VEN state is keyed by
VTN URL and VEN name: sites sharing a VEN name share one registration (docs/fleet.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Connection, Engine, RowMapping, and_, delete, func, insert, select, update

from cariflex_pipeline.openadr.model import OpenAdrEvent
from cariflex_pipeline.openadr.tables import openadr_absences, openadr_events, openadr_ven_state
from cariflex_pipeline.store.bulk import insert_rows
from cariflex_pipeline.store.times import from_db_time, to_db_time

_LOOKUP_CHUNK = 500  # event ids per IN (...) lookup


@dataclass(frozen=True)
class LoggedVersion:
    """What the audit log keeps of one event version besides the event itself."""

    event: OpenAdrEvent
    covered: tuple[datetime, datetime] | None
    sensor_ids: tuple[int, ...]
    values_written: int


@dataclass(frozen=True)
class EventRecord:
    site_id: str
    vtn_id: str
    event_id: str
    modification_number: int
    status: str
    program: str | None
    received_at: datetime
    covered_start: datetime | None
    covered_end: datetime | None
    sensor_ids: tuple[int, ...]
    values_written: int
    raw_payload: str

    @property
    def covered(self) -> tuple[datetime, datetime] | None:
        """The span of the values this version wrote (both ends are stored together, or neither)."""
        if self.covered_start is None or self.covered_end is None:
            return None
        return self.covered_start, self.covered_end


class EventLog:
    """Every event version one site received, for audit and to know what is already applied there."""

    def __init__(self, engine: Engine, *, site_id: str) -> None:
        self.engine = engine
        self.site_id = site_id

    def record(
        self,
        event: OpenAdrEvent,
        received_at: datetime,
        covered: tuple[datetime, datetime] | None,
        sensor_ids: list[int],
        values_written: int,
        connection: Connection,
    ) -> None:
        """Log one event version inside `connection` (a store transaction), so that the row commits with the values
        it describes. A version logged already (a concurrent run got there first) raises IntegrityError, and the
        caller's whole transaction rolls back."""
        self.record_all([LoggedVersion(event, covered, tuple(sensor_ids), values_written)], received_at, connection)

    def record_all(self, versions: list[LoggedVersion], received_at: datetime, connection: Connection) -> None:
        """`record` for many versions in one bulk insert."""
        received = to_db_time(self.engine, received_at)
        insert_rows(connection, openadr_events, [
            {
                "site_id": self.site_id,
                "vtn_id": version.event.vtn_id,
                "event_id": version.event.event_id,
                "modification_number": version.event.modification_number,
                "protocol": version.event.protocol,
                "program": version.event.program,
                "status": version.event.status,
                "raw_payload": version.event.raw_payload,
                "received_at": received,
                "covered_start": to_db_time(self.engine, version.covered[0]) if version.covered else None,
                "covered_end": to_db_time(self.engine, version.covered[1]) if version.covered else None,
                "sensor_ids": ",".join(str(sensor_id) for sensor_id in version.sensor_ids),
                "values_written": version.values_written,
            }
            for version in versions
        ])

    def latest(self, vtn_id: str, event_id: str) -> EventRecord | None:
        return self.latest_of(vtn_id, [event_id]).get(event_id)

    def latest_of(self, vtn_id: str, event_ids: list[str]) -> dict[str, EventRecord]:
        """The latest version of each of these events of one VTN the site stored (absent: never stored), in a
        few queries however many events a listing holds."""
        found: dict[str, EventRecord] = {}
        for first in range(0, len(event_ids), _LOOKUP_CHUNK):
            query = (
                select(openadr_events)
                .where(openadr_events.c.site_id == self.site_id, openadr_events.c.vtn_id == vtn_id,
                       openadr_events.c.event_id.in_(event_ids[first:first + _LOOKUP_CHUNK]))
                .order_by(openadr_events.c.modification_number.desc(), openadr_events.c.id.desc())
            )
            with self.engine.connect() as connection:
                for row in connection.execute(query).mappings():
                    if row["event_id"] not in found:
                        found[row["event_id"]] = _record(row)
        return found

    def latest_versions(self, vtn_id: str | None = None) -> dict[tuple[str, str], EventRecord]:
        """The latest version the site stored of every event (of one VTN, or all), keyed by (vtn_id, event_id)."""
        mine = openadr_events.c.site_id == self.site_id
        newest = (
            select(
                openadr_events.c.vtn_id,
                openadr_events.c.event_id,
                func.max(openadr_events.c.modification_number).label("modification_number"),
            )
            .where(mine)
            .group_by(openadr_events.c.vtn_id, openadr_events.c.event_id)
            .subquery()
        )
        query = select(openadr_events).where(mine).join(
            newest,
            and_(
                openadr_events.c.vtn_id == newest.c.vtn_id,
                openadr_events.c.event_id == newest.c.event_id,
                openadr_events.c.modification_number == newest.c.modification_number,
            ),
        )
        if vtn_id is not None:
            query = query.where(openadr_events.c.vtn_id == vtn_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return {(row["vtn_id"], row["event_id"]): _record(row) for row in rows}

    def all(self) -> list[EventRecord]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(openadr_events).where(openadr_events.c.site_id == self.site_id)
                                      .order_by(openadr_events.c.id)).mappings().all()
        return [_record(row) for row in rows]


def _record(row: RowMapping) -> EventRecord:
    return EventRecord(
        site_id=row["site_id"],
        vtn_id=row["vtn_id"],
        event_id=row["event_id"],
        modification_number=int(row["modification_number"]),
        status=row["status"],
        program=row["program"],
        received_at=from_db_time(row["received_at"]),
        covered_start=from_db_time(row["covered_start"]),
        covered_end=from_db_time(row["covered_end"]),
        sensor_ids=tuple(int(part) for part in row["sensor_ids"].split(",") if part),
        values_written=int(row["values_written"]),
        raw_payload=row["raw_payload"],
    )


@dataclass(frozen=True)
class VenState:
    vtn_url: str
    ven_name: str
    protocol: str
    vtn_id: str | None = None
    ven_id: str | None = None
    registration_id: str | None = None
    poll_freq_seconds: float | None = None
    last_poll_at: datetime | None = None
    open_poll: str | None = None  # the poll (or resync) whose events are not known to be committed yet
    last_resync_at: datetime | None = None


class VenStateStore:
    """The VEN's registration and poll bookkeeping per VTN URL and VEN name, stored so that it survives restarts.
    Not per site: the sites sharing a VEN name are one VEN at the VTN, with one registration and one poll."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, vtn_url: str, ven_name: str) -> VenState | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(openadr_ven_state).where(
                openadr_ven_state.c.vtn_url == vtn_url, openadr_ven_state.c.ven_name == ven_name)).mappings().first()
        if row is None:
            return None
        return VenState(
            vtn_url=row["vtn_url"],
            ven_name=row["ven_name"],
            protocol=row["protocol"],
            vtn_id=row["vtn_id"],
            ven_id=row["ven_id"],
            registration_id=row["registration_id"],
            poll_freq_seconds=row["poll_freq_seconds"],
            last_poll_at=from_db_time(row["last_poll_at"]),
            open_poll=row["open_poll"],
            last_resync_at=from_db_time(row["last_resync_at"]),
        )

    def save(self, state: VenState) -> None:
        values = {
            "protocol": state.protocol,
            "vtn_id": state.vtn_id,
            "ven_id": state.ven_id,
            "registration_id": state.registration_id,
            "poll_freq_seconds": state.poll_freq_seconds,
            "last_poll_at": to_db_time(self.engine, state.last_poll_at),
            "open_poll": state.open_poll,
            "last_resync_at": to_db_time(self.engine, state.last_resync_at),
            "updated_at": to_db_time(self.engine, datetime.now(UTC)),
        }
        with self.engine.begin() as connection:
            changed = connection.execute(update(openadr_ven_state).where(
                openadr_ven_state.c.vtn_url == state.vtn_url, openadr_ven_state.c.ven_name == state.ven_name,
            ).values(**values)).rowcount
            if not changed:
                connection.execute(insert(openadr_ven_state).values(vtn_url=state.vtn_url, ven_name=state.ven_name,
                                                                    **values))


@dataclass(frozen=True)
class Absence:
    absent_since: datetime
    withdrawn_at: datetime | None


class AbsenceLog:
    """3.0.1 events that one site's complete listings no longer hold: since when, and whether their values were
    withdrawn. Per site, because each site lists the VTN with its own targets."""

    def __init__(self, engine: Engine, *, site_id: str) -> None:
        self.engine = engine
        self.site_id = site_id

    def _of_vtn(self, vtn_id: str) -> ColumnElement[bool]:
        return and_(openadr_absences.c.site_id == self.site_id, openadr_absences.c.vtn_id == vtn_id)

    def of(self, vtn_id: str) -> dict[str, Absence]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(openadr_absences).where(self._of_vtn(vtn_id))).all()
        return {row.event_id: Absence(from_db_time(row.absent_since), from_db_time(row.withdrawn_at))
                for row in rows}

    def withdrawn_events(self) -> dict[tuple[str, str], datetime]:
        """(VTN, event) -> when the values were withdrawn, of every VTN."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(openadr_absences).where(
                openadr_absences.c.site_id == self.site_id, openadr_absences.c.withdrawn_at.is_not(None)))
            return {(row.vtn_id, row.event_id): from_db_time(row.withdrawn_at) for row in rows}

    def note_absent(self, vtn_id: str, event_ids: list[str], now: datetime) -> None:
        """Start the clock for events missing from a complete listing (where it is not running already)."""
        known = self.of(vtn_id)
        since = to_db_time(self.engine, now)
        rows = [{"site_id": self.site_id, "vtn_id": vtn_id, "event_id": event_id, "absent_since": since}
                for event_id in event_ids if event_id not in known]
        if rows:
            with self.engine.begin() as connection:
                connection.execute(insert(openadr_absences), rows)

    def forget_listed(self, vtn_id: str, event_ids: list[str]) -> None:
        """Listed again before their values were withdrawn: the clock stops (withdrawn ones wait for ingestion,
        which gives their values back and calls `restored`)."""
        if not event_ids:
            return
        with self.engine.begin() as connection:
            connection.execute(delete(openadr_absences).where(
                self._of_vtn(vtn_id), openadr_absences.c.event_id.in_(event_ids),
                openadr_absences.c.withdrawn_at.is_(None)))

    def withdrawn(self, vtn_id: str, event_id: str, now: datetime, connection: Connection) -> None:
        """Inside the transaction that deletes the event's values."""
        statement = update(openadr_absences).where(self._of_vtn(vtn_id), openadr_absences.c.event_id == event_id)
        if not connection.execute(statement.values(withdrawn_at=to_db_time(self.engine, now))).rowcount:
            connection.execute(insert(openadr_absences).values(
                site_id=self.site_id, vtn_id=vtn_id, event_id=event_id, absent_since=to_db_time(self.engine, now),
                withdrawn_at=to_db_time(self.engine, now)))

    def restored(self, vtn_id: str, event_ids: list[str], connection: Connection) -> None:
        """Inside the transaction that writes the events' values again."""
        for first in range(0, len(event_ids), _LOOKUP_CHUNK):
            connection.execute(delete(openadr_absences).where(
                self._of_vtn(vtn_id),
                openadr_absences.c.event_id.in_(event_ids[first:first + _LOOKUP_CHUNK])))
