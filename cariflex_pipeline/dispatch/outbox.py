"""The outbox: every profile is stored before it is sent, with its status, correlation id and timestamps, and
every status change is kept with its time and reason (`ocpp_outbox_events`).

Statuses: `pending` (stored, not yet sent) -> `sent` (the broker routed it / CitrineOS took it) -> `accepted` or
`rejected` (the station's answer, by correlation id); `unroutable` (station not connected), `failed` (broker or
HTTP error), `unanswered` (sent, no answer within the deadline); `superseded` (a newer entry replaced it before an
answer), `expired` (validTo passed first).

Rules ("identical" is by effect, `equivalence.compare_effect`: same identity, the same limit at every instant both
cover from now on, and the old profile in force at least `min_validity_ahead` more):
- a profile identical to the station's last accepted one is not sent again unless forced (`unchanged`);
- nor is one identical to the station's last answered profile when the station rejected it, until the plan
  changes or it is forced (`repeat_rejected`);
- nor one identical to a profile sent and still awaiting its answer within the deadline;
- an undelivered attempt (pending, failed, unroutable, unanswered) is never re-sent as it was: the station's next
  attempt is the run's profile, built from the current plan, under the same profile id, after the backoff of
  `DeliveryPolicy`, and at most `max_attempts` times for the same effect; undelivered entries of a station the run
  has no profile for are superseded, not re-sent stale;
- a run selects at most one profile per station, so no station gets the same profile twice from one run;
- a run works on one site's entries (`site_id`, the site whose plan it dispatches): another site's undelivered
  entries are never its to supersede.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update

from cariflex_pipeline.dispatch.composite import compare_composite
from cariflex_pipeline.dispatch.delivery import DeliveryPolicy, StationDelivery, station_delivery
from cariflex_pipeline.dispatch.equivalence import (
    DEFAULT_MIN_VALIDITY_AHEAD,
    EffectComparison,
    compare_effect,
    payload_hash,
)
from cariflex_pipeline.dispatch.profiles import BuiltProfile
from cariflex_pipeline.dispatch.tables import UNDELIVERED_STATUSES, ocpp_outbox, ocpp_outbox_events
from cariflex_pipeline.dispatch.transports import Answer
from cariflex_pipeline.store.times import from_db_time, to_db_time

# statuses of an entry the station may hold (it reached CitrineOS and was not refused)
_MAY_BE_HELD = ("accepted", "sent", "unanswered", "superseded")
# statuses the transport's report of a hand-over may replace: an answer, a successor or the end of validity wins
_BEFORE_HANDOVER = ("pending", "failed", "unroutable")
# how often a transaction is redone when another writer changed an entry it read (each time, one writer progressed)
_CONFLICT_RETRIES = 10

T = TypeVar("T")


class _Conflict(Exception):
    """An entry changed between this transaction's read and its write: the transaction is rolled back and redone
    from what the store holds now."""


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    site_id: str
    station_id: str
    evse_id: int
    profile_id: int
    stack_level: int
    purpose: str
    transaction_id: str | None
    correlation_id: str
    payload: dict[str, Any]
    payload_hash: str
    status: str
    status_reason: str
    delivery_uncertain: bool
    transport: str
    run_id: str
    attempts: int
    valid_to: datetime
    created_at: datetime
    sent_at: datetime | None
    answered_at: datetime | None
    updated_at: datetime
    retry_after: datetime | None = None
    clear_correlation_id: str | None = None
    clear_status: str | None = None
    readback_correlation_id: str | None = None
    readback_status: str | None = None
    readback_detail: str | None = None
    readback_at: datetime | None = None
    forced: bool = False  # sent by a run that overrode the outbox's rules (`prepare(force=True)`)

    @property
    def limits(self) -> list[tuple[int, float]]:
        periods = self.payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]
        return [(p["startPeriod"], p["limit"]) for p in periods]

    @property
    def rate_unit(self) -> str:
        return self.payload["chargingProfile"]["chargingSchedule"][0]["chargingRateUnit"]


@dataclass
class PreparedRun:
    """What a run will send, and why the other stations are skipped."""

    to_send: list[OutboxEntry] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # station -> why nothing is sent to it in this run
    unchanged: dict[str, int] = field(default_factory=dict)  # station -> outbox id of the accepted twin
    repeat_rejected: dict[str, int] = field(default_factory=dict)  # station -> outbox id of the rejected twin
    backing_off: dict[str, str] = field(default_factory=dict)  # station -> until when / why no retry yet


_TIME_COLUMNS = ("valid_to", "created_at", "sent_at", "answered_at", "updated_at", "retry_after", "readback_at")


def _entry(row: Any) -> OutboxEntry:
    values = dict(row._mapping)
    values["payload"] = json.loads(values["payload"])
    values["delivery_uncertain"] = bool(values["delivery_uncertain"])
    values["forced"] = bool(values["forced"])
    for column in _TIME_COLUMNS:
        values[column] = from_db_time(values[column])
    return OutboxEntry(**values)


class Outbox:
    """The outbox table, through a SQLAlchemy engine (the store's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _t(self, moment: datetime | None) -> datetime | None:
        return to_db_time(self.engine, moment)

    # --- status changes, each with its event ---------------------------------------------------------------
    def _transaction(self, work: Callable[[Connection], T]) -> T:
        """`work` in one transaction, redone from a fresh read when it met a changed entry (`_Conflict`)."""
        for _ in range(_CONFLICT_RETRIES):
            try:
                with self.engine.begin() as connection:
                    return work(connection)
            except _Conflict:
                continue
        raise RuntimeError(f"outbox entries kept changing under {_CONFLICT_RETRIES} attempts of one transaction")

    def _change(self, connection: Any, row: Any, event: str, reason: str, now: datetime, **values: Any) -> None:
        """Update one entry and record the event (a status, or a clear/read-back step) with its time and reason,
        only while the entry is as `row` read it: its status, and the clear or read-back status this change sets.
        Another writer (an answer, a run, a timeout) may have committed since the read; then nothing is written and
        `_Conflict` redoes the transaction, so no decision is ever taken on a stale read (compare-and-set)."""
        if "status" in values:
            values.setdefault("status_reason", reason)
        guard = [ocpp_outbox.c.id == row.id, ocpp_outbox.c.status == row.status]
        guard += [ocpp_outbox.c[column] == getattr(row, column)  # None compares as IS NULL
                  for column in ("clear_status", "readback_status") if column in values]
        changed = connection.execute(update(ocpp_outbox).where(and_(*guard))
                                     .values(updated_at=self._t(now), **values)).rowcount
        if changed != 1:
            raise _Conflict
        connection.execute(insert(ocpp_outbox_events).values(
            outbox_id=row.id, site_id=row.site_id, station_id=row.station_id, at=self._t(now), event=event,
            reason=reason[:2000]))

    def _supersede(self, connection: Any, rows: Iterable[Any], reason: str, now: datetime) -> None:
        for row in rows:
            self._change(connection, row, "superseded", reason, now, status="superseded")

    # --- timeouts ---------------------------------------------------------------------------------------------
    def expire_unanswered(self, now: datetime, policy: DeliveryPolicy) -> list[OutboxEntry]:
        """Sent entries (and composite read-backs) without an answer within the deadline become `unanswered`;
        entries that were never delivered and whose validTo passed become `expired`."""
        cutoff = self._t(now - policy.answer_deadline)

        def expire(connection: Connection) -> list[Any]:
            late = connection.execute(select(ocpp_outbox).where(and_(
                ocpp_outbox.c.status == "sent", ocpp_outbox.c.sent_at <= cutoff))).all()
            for row in late:
                sent = from_db_time(row.sent_at)
                self._change(connection, row, "unanswered",
                             f"no answer within {policy.answer_deadline.total_seconds():g} s of sending at "
                             f"{sent.isoformat()}", now, status="unanswered", retry_after=self._t(now))
            readbacks = connection.execute(select(ocpp_outbox).where(and_(
                ocpp_outbox.c.readback_status == "requested", ocpp_outbox.c.readback_at <= cutoff))).all()
            for row in readbacks:
                self._change(connection, row, "readback_unanswered",
                             "no GetCompositeSchedule answer within the deadline", now, readback_status="unanswered",
                             readback_detail="the station did not answer GetCompositeSchedule")
            stale = connection.execute(select(ocpp_outbox).where(and_(
                ocpp_outbox.c.status.in_(UNDELIVERED_STATUSES), ocpp_outbox.c.valid_to <= self._t(now)))).all()
            for row in stale:
                self._change(connection, row, "expired", "validTo passed before delivery", now, status="expired")
            return late

        return self.entries(ids=[row.id for row in self._transaction(expire)])

    # --- choosing what to send --------------------------------------------------------------------------------
    def prepare(
        self,
        profiles: Sequence[BuiltProfile],
        *,
        site_id: str,
        run_id: str,
        transport: str,
        force: bool = False,
        now: datetime | None = None,
        min_validity_ahead: timedelta = DEFAULT_MIN_VALIDITY_AHEAD,
        policy: DeliveryPolicy | None = None,
    ) -> PreparedRun:
        """Store the run's profiles as pending entries of `site_id` (the site whose plan they carry) and pick what
        to send (at most one entry per station); only that site's open entries are considered or superseded."""
        now = now or datetime.now(UTC)
        policy = policy or DeliveryPolicy()
        stations = [p.station_id for p in profiles]
        duplicates = {s for s in stations if stations.count(s) > 1}
        if duplicates:
            raise ValueError(f"more than one profile for station(s) {sorted(duplicates)} in one run")

        def choose(connection: Connection) -> PreparedRun:
            prepared = PreparedRun()
            open_rows = connection.execute(
                select(ocpp_outbox).where(and_(ocpp_outbox.c.site_id == site_id,
                                               ocpp_outbox.c.status.in_((*UNDELIVERED_STATUSES, "sent"))))
                .order_by(ocpp_outbox.c.id)).all()
            by_station: dict[str, list[Any]] = {}
            for row in open_rows:
                by_station.setdefault(row.station_id, []).append(row)
            for profile in profiles:
                selected = self._prepare_one(connection, profile, by_station.pop(profile.station_id, []),
                                             site_id=site_id, run_id=run_id, transport=transport, force=force, now=now,
                                             min_validity_ahead=min_validity_ahead, policy=policy,
                                             prepared=prepared)
                if selected is not None:
                    prepared.to_send.append(selected)
            for station_id, rows in by_station.items():
                undelivered = [r for r in rows if r.status in UNDELIVERED_STATUSES]
                self._supersede(connection, undelivered, f"run {run_id} has no profile for {station_id} "
                                                         "(nothing planned): not re-sent stale", now)
                if len(undelivered) < len(rows):
                    prepared.skipped[station_id] = "awaiting the station's answer"
            return prepared

        return self._transaction(choose)

    def _prepare_one(self, connection: Any, profile: BuiltProfile, open_rows: list[Any], *, site_id: str, run_id: str,
                     transport: str, force: bool, now: datetime, min_validity_ahead: timedelta,
                     policy: DeliveryPolicy, prepared: PreparedRun) -> OutboxEntry | None:
        undelivered = [r for r in open_rows if r.status in UNDELIVERED_STATUSES]
        chain = undelivered[-1] if undelivered else None
        tried = chain is not None and chain.status != "pending"  # a pending entry was never handed over
        if not force and self._skip(connection, profile, open_rows, chain if tried else None, now=now,
                                    min_validity_ahead=min_validity_ahead, policy=policy, prepared=prepared):
            return None
        attempts = (chain.attempts + 1 if tried else chain.attempts) if chain is not None else 1
        new_id = self._insert(connection, profile, site_id=site_id, run_id=run_id, transport=transport, force=force,
                              now=now, attempts=attempts, clear=transport == "rest" and self._held_tx_profile(
                                  connection, profile))
        self._supersede(connection, undelivered, f"superseded by #{new_id} (rebuilt from the current plan)", now)
        return _entry(connection.execute(select(ocpp_outbox).where(ocpp_outbox.c.id == new_id)).one())

    def _skip(self, connection: Any, profile: BuiltProfile, open_rows: list[Any], chain: Any, *, now: datetime,
              min_validity_ahead: timedelta, policy: DeliveryPolicy, prepared: PreparedRun) -> bool:
        """Whether the station is left alone this run; the reason lands in `prepared`."""
        station = profile.station_id

        def same(row: Any) -> EffectComparison:
            return compare_effect(profile.payload, json.loads(row.payload), now=now,
                                  min_validity_ahead=min_validity_ahead)

        last_accepted = self._last(connection, station, ("accepted",))
        if last_accepted is not None and not any(r.id > last_accepted.id for r in open_rows):
            comparison = same(last_accepted)
            if comparison.skip:
                prepared.skipped[station] = (f"identical to last accepted profile (outbox #{last_accepted.id}) "
                                             f"in effect: {comparison.reason}")
                prepared.unchanged[station] = last_accepted.id
                return True
        last_answered = self._last(connection, station, ("accepted", "rejected"))
        if (last_answered is not None and last_answered.status == "rejected"
                and not any(r.id > last_answered.id for r in open_rows) and same(last_answered).skip):
            reason = f": {last_answered.status_reason}" if last_answered.status_reason else ""
            prepared.skipped[station] = (f"identical to profile rejected by the station (outbox #{last_answered.id}"
                                         f"{reason}); not resent unless forced or the plan changes")
            prepared.repeat_rejected[station] = last_answered.id
            return True
        awaiting = [r for r in open_rows if r.status == "sent" and same(r).skip]
        if awaiting:
            prepared.skipped[station] = f"identical profile awaiting answer (outbox #{awaiting[-1].id})"
            return True
        if chain is None:
            return False
        retry_after = from_db_time(chain.retry_after)
        if retry_after is not None and retry_after > now:
            why = (f"retry after {retry_after.isoformat()} (attempt {chain.attempts} {chain.status}: "
                   f"{chain.status_reason})")
            prepared.skipped[station] = prepared.backing_off[station] = why
            return True
        if chain.attempts >= policy.max_attempts and same(chain).same:
            why = (f"gave up after {chain.attempts} attempts (outbox #{chain.id} {chain.status}: "
                   f"{chain.status_reason}); a changed plan or force sends again")
            prepared.skipped[station] = prepared.backing_off[station] = why
            return True
        return False

    def _last(self, connection: Any, station_id: str, statuses: tuple[str, ...]) -> Any:
        return connection.execute(
            select(ocpp_outbox).where(and_(ocpp_outbox.c.station_id == station_id,
                                           ocpp_outbox.c.status.in_(statuses)))
            .order_by(ocpp_outbox.c.id.desc()).limit(1)).first()

    def _held_tx_profile(self, connection: Any, profile: BuiltProfile) -> bool:
        """Whether CitrineOS may hold this TxProfile (same id, same transaction) as active: its REST side then
        refuses the update (K01.FR.39) until a ClearChargingProfile has been accepted."""
        transaction = profile.payload["chargingProfile"].get("transactionId")
        if not transaction:  # build_profile gives a transactionId to TxProfiles only
            return False
        return connection.execute(select(ocpp_outbox.c.id).where(and_(
            ocpp_outbox.c.station_id == profile.station_id, ocpp_outbox.c.profile_id == profile.profile_id,
            ocpp_outbox.c.transaction_id == transaction, ocpp_outbox.c.status.in_(_MAY_BE_HELD),
            ocpp_outbox.c.sent_at.is_not(None))).limit(1)).first() is not None

    def _insert(self, connection: Any, profile: BuiltProfile, *, site_id: str, run_id: str, transport: str, force: bool,
                now: datetime, attempts: int, clear: bool) -> int:
        charging = profile.payload["chargingProfile"]
        valid_to = datetime.fromisoformat(charging["validTo"])  # Python 3.11 reads the "Z"
        new_id = connection.execute(insert(ocpp_outbox).values(
            site_id=site_id, station_id=profile.station_id, evse_id=profile.payload["evseId"],
            profile_id=profile.profile_id, stack_level=profile.stack_level, purpose=profile.purpose,
            transaction_id=charging.get("transactionId"),
            correlation_id=str(uuid.uuid4()), payload=json.dumps(profile.payload, separators=(",", ":")),
            payload_hash=payload_hash(profile.payload), status="pending", status_reason="",
            delivery_uncertain=False, transport=transport, run_id=run_id, forced=force, attempts=attempts,
            valid_to=self._t(valid_to), created_at=self._t(now), updated_at=self._t(now),
            clear_correlation_id=str(uuid.uuid4()) if clear else None, clear_status="pending" if clear else None,
        ).returning(ocpp_outbox.c.id)).scalar_one()
        row = connection.execute(select(ocpp_outbox).where(ocpp_outbox.c.id == new_id)).one()
        note = f"attempt {attempts}" + (", ClearChargingProfile first (TxProfile update)" if clear else "")
        connection.execute(insert(ocpp_outbox_events).values(
            outbox_id=new_id, site_id=site_id, station_id=row.station_id, at=self._t(now), event="pending",
            reason=note))
        return new_id

    # --- transport outcomes and answers -----------------------------------------------------------------------
    def mark_sent(self, correlation_ids: Sequence[str], now: datetime | None = None) -> None:
        """Record that the transport handed these entries over: status `sent` with its time (what the answer
        deadline counts from) and the event, in one transaction of a few statements for any number of entries. An
        entry already answered keeps its answer, and the time sent its answer stamped (`record_answer`); one a newer
        run superseded meanwhile stays superseded (its successor is what counts) and keeps the time it went out,
        since the station may hold it (`valid_to_to_outlast`)."""
        at = self._t(now or datetime.now(UTC))
        ids = list(correlation_ids)
        with self.engine.begin() as connection:
            for start in range(0, len(ids), 500):
                chunk = ocpp_outbox.c.correlation_id.in_(ids[start:start + 500])
                changed = connection.execute(
                    update(ocpp_outbox).where(and_(chunk, ocpp_outbox.c.status.in_(_BEFORE_HANDOVER)))
                    .values(status="sent", status_reason="", delivery_uncertain=False, sent_at=at, updated_at=at)
                    .returning(ocpp_outbox.c.id, ocpp_outbox.c.site_id, ocpp_outbox.c.station_id)).all()
                overtaken = connection.execute(
                    update(ocpp_outbox).where(and_(chunk, ocpp_outbox.c.status == "superseded",
                                                   ocpp_outbox.c.sent_at.is_(None)))
                    .values(sent_at=at, updated_at=at)
                    .returning(ocpp_outbox.c.id, ocpp_outbox.c.site_id, ocpp_outbox.c.station_id)).all()
                events = [(row, "") for row in changed]
                events += [(row, "after it was superseded: the station may hold it") for row in overtaken]
                if events:
                    connection.execute(insert(ocpp_outbox_events), [
                        {"outbox_id": row.id, "site_id": row.site_id, "station_id": row.station_id, "at": at,
                         "event": "sent", "reason": reason}
                        for row, reason in events])

    def mark(self, correlation_id: str, status: str, reason: str = "", *, uncertain: bool = False,
             now: datetime | None = None, policy: DeliveryPolicy | None = None) -> None:
        """Record the transport's outcome for one entry (sent, unroutable, failed, pending)."""
        now = now or datetime.now(UTC)
        policy = policy or DeliveryPolicy()

        def record(connection: Connection) -> None:
            row = connection.execute(select(ocpp_outbox).where(ocpp_outbox.c.correlation_id == correlation_id)).first()
            if row is None:
                return
            if row.status not in (*_BEFORE_HANDOVER, "sent"):
                # the answer came first (a fast station, a REST callback): it is never overwritten, and it stamped
                # the time sent already (what was sent counts for the validity a re-plan must outlast); a newer
                # entry superseded it, or its validity ran out: a failure to deliver it changes nothing
                return
            values: dict[str, Any] = {"status": status, "delivery_uncertain": uncertain}
            if status == "sent":
                values["sent_at"] = self._t(now)
            if status in ("failed", "unroutable"):
                values["retry_after"] = self._t(now + policy.retry_delay(row.attempts))
            self._change(connection, row, status, reason, now, **values)

        self._transaction(record)

    def mark_clear(self, correlation_id: str, status: str, reason: str = "", now: datetime | None = None) -> None:
        """Record what became of the ClearChargingProfile sent before a TxProfile update (sent, failed); an answer
        that came first (the callback can beat the HTTP response) is kept."""
        self._set_by("clear_correlation_id", correlation_id, f"clear_{status}", reason, now,
                     only_from=("pending",), clear_status=status)

    def mark_readback(self, correlation_id: str, status: str, reason: str = "", now: datetime | None = None) -> None:
        """Record what became of a GetCompositeSchedule request (sent, failed); an answer that came first is
        kept."""
        values: dict[str, Any] = {"readback_status": "requested" if status == "sent" else status}
        if status != "sent":
            values["readback_detail"] = reason
        self._set_by("readback_correlation_id", correlation_id, f"readback_{status}", reason, now,
                     only_from=("pending",), **values)

    def _set_by(self, column: str, correlation_id: str, event: str, reason: str, now: datetime | None,
                only_from: tuple[str, ...] | None = None, **values: Any) -> bool:
        """Change the entry whose `column` is `correlation_id`; with `only_from`, only while the status that
        `column` belongs to (clear or read-back) is one of those. False when no entry has that id."""
        now = now or datetime.now(UTC)
        status_column = {"clear_correlation_id": "clear_status", "readback_correlation_id": "readback_status"}[column]

        def change(connection: Connection) -> bool:
            row = connection.execute(select(ocpp_outbox).where(ocpp_outbox.c[column] == correlation_id)).first()
            if row is None:
                return False
            if only_from is None or getattr(row, status_column) in only_from:
                self._change(connection, row, event, reason, now, **values)
            return True

        return self._transaction(change)

    def apply_answer(self, answer: Answer, now: datetime | None = None) -> bool:
        """Record a station's answer to any of our calls; False when the correlation id is not ours."""
        now = now or datetime.now(UTC)
        if answer.action == "ClearChargingProfile":
            return self._set_by("clear_correlation_id", answer.correlation_id, "clear_answered",
                                f"{answer.status} {answer.reason}".strip(), now, clear_status=answer.status.lower())
        if answer.action == "GetCompositeSchedule":
            return self._record_readback(answer, now)
        return self.record_answer(answer.correlation_id, answer.status, answer.reason, now)

    def record_answer(self, correlation_id: str, station_status: str, reason: str = "",
                      now: datetime | None = None) -> bool:
        """Record a station's Accepted/Rejected to a SetChargingProfile; False when the correlation id is not
        ours. A late answer to a superseded entry is kept as an event; the newer entry is what counts."""
        now = now or datetime.now(UTC)
        status = {"Accepted": "accepted", "Rejected": "rejected"}.get(station_status)
        if status is None:
            status, reason = "failed", f"station answered {station_status!r} {reason}".strip()

        def record(connection: Connection) -> bool:
            row = connection.execute(select(ocpp_outbox).where(ocpp_outbox.c.correlation_id == correlation_id)).first()
            if row is None:
                return False
            if row.status == "superseded":
                self._change(connection, row, f"late_{status}", f"answer after it was superseded {reason}".strip(),
                             now, answered_at=self._t(now))
            else:
                self._change(connection, row, status, reason, now, status=status, delivery_uncertain=False,
                             answered_at=self._t(now), sent_at=row.sent_at or self._t(now))
            return True

        return self._transaction(record)

    def _record_readback(self, answer: Answer, now: datetime) -> bool:
        def record(connection: Connection) -> bool:
            row = connection.execute(select(ocpp_outbox).where(
                ocpp_outbox.c.readback_correlation_id == answer.correlation_id)).first()
            if row is None:
                return False
            differences = compare_composite(json.loads(row.payload), answer.payload)
            status = "matches" if not differences else (
                "differs" if answer.status == "Accepted" and answer.payload.get("schedule") else "failed")
            detail = "; ".join(differences) if differences else "the station's composite schedule equals the plan"
            self._change(connection, row, f"readback_{status}", detail, now, readback_status=status,
                         readback_detail=detail)
            return True

        return self._transaction(record)

    def request_readbacks(self, entries: Sequence[OutboxEntry], now: datetime | None = None) -> list[OutboxEntry]:
        """Give each accepted entry a stored GetCompositeSchedule correlation id before it is asked for."""
        now = now or datetime.now(UTC)

        def request(connection: Connection) -> None:
            for entry in entries:
                row = connection.execute(select(ocpp_outbox).where(ocpp_outbox.c.id == entry.id)).one()
                self._change(connection, row, "readback_pending", "GetCompositeSchedule to be asked", now,
                             readback_correlation_id=str(uuid.uuid4()), readback_status="pending",
                             readback_at=self._t(now), readback_detail="")

        self._transaction(request)
        return self.entries(ids=[entry.id for entry in entries])

    def answered(self, correlation_ids: set[str]) -> list[Answer]:
        """The answers already recorded for these correlation ids (Set, Clear or read-back): what a transport whose
        answers arrive elsewhere (REST callbacks) waits for."""
        if not correlation_ids:
            return []
        ids = list(correlation_ids)
        with self.engine.connect() as connection:
            rows = connection.execute(select(ocpp_outbox).where(or_(
                ocpp_outbox.c.correlation_id.in_(ids), ocpp_outbox.c.clear_correlation_id.in_(ids),
                ocpp_outbox.c.readback_correlation_id.in_(ids)))).all()
        out: list[Answer] = []
        for row in rows:
            if row.correlation_id in correlation_ids and row.status in ("accepted", "rejected"):
                out.append(Answer(row.correlation_id, row.station_id, row.status.capitalize(), row.status_reason))
            if row.clear_correlation_id in correlation_ids and row.clear_status not in (None, "pending", "sent"):
                out.append(Answer(row.clear_correlation_id, row.station_id, row.clear_status.capitalize(), "",
                                  action="ClearChargingProfile"))
            if row.readback_correlation_id in correlation_ids and row.readback_status in ("matches", "differs",
                                                                                          "failed"):
                out.append(Answer(row.readback_correlation_id, row.station_id, row.readback_status,
                                  row.readback_detail or "", action="GetCompositeSchedule"))
        return out

    # --- reads ------------------------------------------------------------------------------------------------
    def uncertain_correlation_ids(self) -> set[str]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(ocpp_outbox.c.correlation_id).where(
                and_(ocpp_outbox.c.delivery_uncertain.is_(True), ocpp_outbox.c.status == "failed")))
            return {row.correlation_id for row in rows}

    def entries(self, station_ids: Iterable[str] | None = None, run_id: str | None = None,
                ids: Iterable[int] | None = None, site_id: str | None = None) -> list[OutboxEntry]:
        """Entries oldest first; each filter given narrows them (`site_id`: one site's entries)."""
        query = select(ocpp_outbox).order_by(ocpp_outbox.c.id)
        if site_id is not None:
            query = query.where(ocpp_outbox.c.site_id == site_id)
        if station_ids is not None:
            query = query.where(ocpp_outbox.c.station_id.in_(list(station_ids)))
        if run_id is not None:
            query = query.where(ocpp_outbox.c.run_id == run_id)
        if ids is not None:
            query = query.where(ocpp_outbox.c.id.in_(list(ids)))
        with self.engine.connect() as connection:
            return [_entry(row) for row in connection.execute(query)]

    def events(self, outbox_id: int) -> list[tuple[datetime, str, str]]:
        """(time, event, reason) of one entry, oldest first: its delivery history."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(ocpp_outbox_events).where(ocpp_outbox_events.c.outbox_id == outbox_id)
                                      .order_by(ocpp_outbox_events.c.id)).all()
        return [(from_db_time(row.at), row.event, row.reason) for row in rows]

    def get(self, correlation_id: str) -> OutboxEntry | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(ocpp_outbox).where(
                ocpp_outbox.c.correlation_id == correlation_id)).first()
            return _entry(row) if row else None

    def last_in_force(self, now: datetime) -> dict[str, OutboxEntry]:
        """station -> its newest profile the station may hold (it reached CitrineOS and was not refused), when
        its validTo still lies ahead: what a station with nothing planned must be told to drop.

        Reads one row per station (the outbox keeps every accepted profile, so it only grows)."""
        newest = (select(func.max(ocpp_outbox.c.id))
                  .where(and_(ocpp_outbox.c.status.in_(_MAY_BE_HELD), ocpp_outbox.c.sent_at.is_not(None)))
                  .group_by(ocpp_outbox.c.station_id))
        with self.engine.connect() as connection:
            rows = connection.execute(select(ocpp_outbox).where(ocpp_outbox.c.id.in_(newest))).all()
        entries = [_entry(row) for row in rows]
        return {entry.station_id: entry for entry in entries if entry.valid_to > now}

    def valid_to_to_outlast(self, now: datetime) -> dict[tuple[str, str, int], datetime]:
        """(station, purpose, stack level) -> the latest validTo CitrineOS may hold as active for it: a new
        profile of the same stack level and purpose must run past it (CitrineOS's REST rule)."""
        query = (select(ocpp_outbox.c.station_id, ocpp_outbox.c.purpose, ocpp_outbox.c.stack_level,
                        func.max(ocpp_outbox.c.valid_to).label("valid_to"))
                 .where(and_(ocpp_outbox.c.status.in_(_MAY_BE_HELD), ocpp_outbox.c.sent_at.is_not(None),
                             ocpp_outbox.c.valid_to > self._t(now)))
                 .group_by(ocpp_outbox.c.station_id, ocpp_outbox.c.purpose, ocpp_outbox.c.stack_level))
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return {(row.station_id, row.purpose, row.stack_level): from_db_time(row.valid_to) for row in rows}

    def delivery(self, station_ids: Iterable[str], now: datetime) -> dict[str, StationDelivery]:
        """Per station: does it hold a confirmed profile, and since when has the one we want gone unconfirmed."""
        stations = list(station_ids)
        by_station: dict[str, list[OutboxEntry]] = {station: [] for station in stations}
        for entry in self.entries(station_ids=stations):
            by_station[entry.station_id].append(entry)
        return {station: station_delivery(station, rows, now) for station, rows in by_station.items()}

    def latest_by_station(self) -> dict[str, OutboxEntry]:
        latest: dict[str, OutboxEntry] = {}
        for entry in self.entries():
            if entry.status not in ("superseded",):
                latest[entry.station_id] = entry
        return latest
