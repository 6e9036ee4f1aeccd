"""The outbox: every profile is stored before it is sent, with its status, correlation id and timestamps.

Rules ("identical" is by effect, `equivalence.compare_effect`: same profile id, purpose, transactionId, stack
level, EVSE and unit, the same limit at every instant both cover from now on, and the old profile in force for at
least `min_validity_ahead` more - otherwise the new one is sent to extend it; startSchedule, validFrom and validTo
moving with each 15-minute re-plan change nothing):
- a profile identical to the station's last accepted one is not sent again unless forced
  (`PreparedRun.unchanged` names these stations);
- nor is one identical to the station's last answered profile when the station rejected it: the station would
  refuse the same limits again, so resending floods it and the log; forced, or once the plan changes, it is sent
  (`PreparedRun.repeat_rejected` names these stations);
- one identical to a profile already sent and awaiting its answer is not sent again unless forced;
- pending, failed and unroutable profiles are retried by the next run with the same correlation id; a newer
  profile for the same station supersedes them;
- a run selects at most one profile per station, so no station gets the same profile twice from one run.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, insert, select, update

from cariflex_pipeline.dispatch.equivalence import (
    DEFAULT_MIN_VALIDITY_AHEAD,
    EffectComparison,
    compare_effect,
    payload_hash,
)
from cariflex_pipeline.dispatch.profiles import BuiltProfile
from cariflex_pipeline.dispatch.tables import RETRYABLE_STATUSES, ocpp_outbox
from cariflex_pipeline.store.times import from_db_time, to_db_time


@dataclass(frozen=True)
class OutboxEntry:
    id: int
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

    @property
    def limits(self) -> list[tuple[int, float]]:
        periods = self.payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]
        return [(p["startPeriod"], p["limit"]) for p in periods]


@dataclass
class PreparedRun:
    """What a run will send, and why the other stations are skipped."""

    to_send: list[OutboxEntry] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # station -> why nothing is sent to it in this run
    unchanged: dict[str, int] = field(default_factory=dict)  # station -> outbox id of the accepted twin
    repeat_rejected: dict[str, int] = field(default_factory=dict)  # station -> outbox id of the rejected twin


def _entry(row: Any) -> OutboxEntry:
    return OutboxEntry(
        id=row.id,
        station_id=row.station_id,
        evse_id=row.evse_id,
        profile_id=row.profile_id,
        stack_level=row.stack_level,
        purpose=row.purpose,
        transaction_id=row.transaction_id,
        correlation_id=row.correlation_id,
        payload=json.loads(row.payload),
        payload_hash=row.payload_hash,
        status=row.status,
        status_reason=row.status_reason,
        delivery_uncertain=bool(row.delivery_uncertain),
        transport=row.transport,
        run_id=row.run_id,
        attempts=row.attempts,
        valid_to=from_db_time(row.valid_to),
        created_at=from_db_time(row.created_at),
        sent_at=from_db_time(row.sent_at),
        answered_at=from_db_time(row.answered_at),
        updated_at=from_db_time(row.updated_at),
    )


class Outbox:
    """The outbox table, through a SQLAlchemy engine (the store's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _t(self, moment: datetime | None) -> datetime | None:
        return to_db_time(self.engine, moment)

    def prepare(
        self,
        profiles: Sequence[BuiltProfile],
        *,
        run_id: str,
        transport: str,
        force: bool = False,
        now: datetime | None = None,
        min_validity_ahead: timedelta = DEFAULT_MIN_VALIDITY_AHEAD,
    ) -> PreparedRun:
        """Store the run's profiles as pending and pick what to send (at most one entry per station).

        A profile with the same effect as the station's last accepted one, its last answered one when that was
        rejected, or one awaiting its answer (`equivalence.compare_effect`: same limits over the time both
        cover from `now`, and the old one in force at least `min_validity_ahead` longer) is not sent."""
        now = now or datetime.now(UTC)
        stations = [p.station_id for p in profiles]
        duplicates = {s for s in stations if stations.count(s) > 1}
        if duplicates:
            raise ValueError(f"more than one profile for station(s) {sorted(duplicates)} in one run")
        prepared = PreparedRun()
        with self.engine.begin() as connection:
            open_rows = connection.execute(
                select(ocpp_outbox).where(ocpp_outbox.c.status.in_((*RETRYABLE_STATUSES, "sent")))
                .order_by(ocpp_outbox.c.id)
            ).all()
            by_station: dict[str, list[Any]] = {}
            for row in open_rows:
                by_station.setdefault(row.station_id, []).append(row)
            for profile in profiles:
                selected = self._prepare_one(connection, profile, by_station.pop(profile.station_id, []),
                                             run_id=run_id, transport=transport, force=force, now=now,
                                             min_validity_ahead=min_validity_ahead, prepared=prepared)
                if selected is not None:
                    prepared.to_send.append(selected)
            # stations without a new profile: retry their newest open entry, expire the outdated ones
            for station_id, rows in by_station.items():
                retry = [r for r in rows if r.status in RETRYABLE_STATUSES]
                if not retry:
                    prepared.skipped[station_id] = "awaiting the station's answer"
                    continue
                newest = retry[-1]
                for row in retry[:-1]:
                    self._set(connection, row.id, status="superseded", status_reason=f"superseded by #{newest.id}",
                              updated_at=self._t(now))
                if from_db_time(newest.valid_to) <= now:
                    self._set(connection, newest.id, status="expired", status_reason="validTo passed before sending",
                              updated_at=self._t(now))
                    prepared.skipped[station_id] = "retry expired"
                    continue
                prepared.to_send.append(self._retry(connection, newest, run_id, transport, now))
        return prepared

    def _prepare_one(self, connection: Any, profile: BuiltProfile, open_rows: list[Any], *, run_id: str,
                     transport: str, force: bool, now: datetime, min_validity_ahead: timedelta,
                     prepared: PreparedRun) -> OutboxEntry | None:
        digest = payload_hash(profile.payload)
        skipped = prepared.skipped
        if not force:
            def same(row: Any) -> EffectComparison:
                return compare_effect(profile.payload, json.loads(row.payload), now=now,
                                      min_validity_ahead=min_validity_ahead)

            last_accepted = connection.execute(
                select(ocpp_outbox.c.payload, ocpp_outbox.c.id)
                .where(and_(ocpp_outbox.c.station_id == profile.station_id, ocpp_outbox.c.status == "accepted"))
                .order_by(ocpp_outbox.c.answered_at.desc(), ocpp_outbox.c.id.desc()).limit(1)
            ).first()
            newer_open = [r for r in open_rows if last_accepted is None or r.id > last_accepted.id]
            if last_accepted is not None and not newer_open:
                comparison = same(last_accepted)
                if comparison.skip:
                    skipped[profile.station_id] = (
                        f"identical to last accepted profile (outbox #{last_accepted.id}) in effect: "
                        f"{comparison.reason}")
                    prepared.unchanged[profile.station_id] = last_accepted.id
                    return None
            last_answered = connection.execute(
                select(ocpp_outbox.c.payload, ocpp_outbox.c.id, ocpp_outbox.c.status, ocpp_outbox.c.status_reason)
                .where(and_(ocpp_outbox.c.station_id == profile.station_id,
                            ocpp_outbox.c.status.in_(("accepted", "rejected"))))
                .order_by(ocpp_outbox.c.id.desc()).limit(1)
            ).first()
            if (last_answered is not None and last_answered.status == "rejected"
                    and not any(r.id > last_answered.id for r in open_rows)):
                comparison = same(last_answered)
                if comparison.skip:
                    reason = f": {last_answered.status_reason}" if last_answered.status_reason else ""
                    skipped[profile.station_id] = (
                        f"identical to profile rejected by the station (outbox #{last_answered.id}{reason}); "
                        "not resent unless forced or the plan changes")
                    prepared.repeat_rejected[profile.station_id] = last_answered.id
                    return None
            same_sent = [r for r in open_rows if r.status == "sent" and same(r).skip]
            if same_sent:
                skipped[profile.station_id] = f"identical profile awaiting answer (outbox #{same_sent[-1].id})"
                return None
            same_open = [r for r in open_rows if r.status in RETRYABLE_STATUSES and same(r).skip]
            if same_open:
                keep = same_open[-1]
                for row in open_rows:
                    if row.id != keep.id and row.status in RETRYABLE_STATUSES:
                        self._set(connection, row.id, status="superseded",
                                  status_reason=f"superseded by #{keep.id}", updated_at=self._t(now))
                return self._retry(connection, keep, run_id, transport, now)
        schedule = profile.payload["chargingProfile"]
        valid_to = datetime.fromisoformat(schedule["validTo"].replace("Z", "+00:00"))
        new_id = connection.execute(
            insert(ocpp_outbox).values(
                station_id=profile.station_id,
                evse_id=profile.payload["evseId"],
                profile_id=profile.profile_id,
                stack_level=profile.stack_level,
                purpose=profile.purpose,
                transaction_id=schedule.get("transactionId"),
                correlation_id=str(uuid.uuid4()),
                payload=json.dumps(profile.payload, separators=(",", ":")),
                payload_hash=digest,
                status="pending",
                status_reason="",
                delivery_uncertain=False,
                transport=transport,
                run_id=run_id,
                forced=force,
                attempts=1,
                valid_to=self._t(valid_to),
                created_at=self._t(now),
                updated_at=self._t(now),
            ).returning(ocpp_outbox.c.id)
        ).scalar_one()
        for row in open_rows:
            if row.status in RETRYABLE_STATUSES:
                self._set(connection, row.id, status="superseded", status_reason=f"superseded by #{new_id}",
                          updated_at=self._t(now))
        return _entry(connection.execute(select(ocpp_outbox).where(ocpp_outbox.c.id == new_id)).one())

    def _retry(self, connection: Any, row: Any, run_id: str, transport: str, now: datetime) -> OutboxEntry:
        self._set(connection, row.id, status="pending", attempts=row.attempts + 1, run_id=run_id,
                  transport=transport, updated_at=self._t(now))
        return _entry(connection.execute(select(ocpp_outbox).where(ocpp_outbox.c.id == row.id)).one())

    @staticmethod
    def _set(connection: Any, entry_id: int, **values: Any) -> None:
        connection.execute(update(ocpp_outbox).where(ocpp_outbox.c.id == entry_id).values(**values))

    def mark(self, correlation_id: str, status: str, reason: str = "", *, uncertain: bool = False,
             now: datetime | None = None) -> None:
        """Record the transport's outcome for an entry (sent, unroutable, failed)."""
        now = now or datetime.now(UTC)
        values: dict[str, Any] = {"status": status, "status_reason": reason, "delivery_uncertain": uncertain,
                                  "updated_at": self._t(now)}
        if status == "sent":
            values["sent_at"] = self._t(now)
        with self.engine.begin() as connection:
            # an answer that arrived first (fast station) is never overwritten by the transport's outcome
            connection.execute(
                update(ocpp_outbox)
                .where(and_(ocpp_outbox.c.correlation_id == correlation_id,
                            ocpp_outbox.c.status.not_in(("accepted", "rejected"))))
                .values(**values))

    def record_answer(self, correlation_id: str, station_status: str, reason: str = "",
                      now: datetime | None = None) -> bool:
        """Record a station's Accepted/Rejected; False when the correlation id is not ours."""
        now = now or datetime.now(UTC)
        status = {"Accepted": "accepted", "Rejected": "rejected"}.get(station_status)
        if status is None:
            status, reason = "failed", f"station answered {station_status!r} {reason}".strip()
        with self.engine.begin() as connection:
            result = connection.execute(
                update(ocpp_outbox).where(ocpp_outbox.c.correlation_id == correlation_id)
                .values(status=status, status_reason=reason, delivery_uncertain=False,
                        answered_at=self._t(now), updated_at=self._t(now)))
            return result.rowcount > 0

    def uncertain_correlation_ids(self) -> set[str]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(ocpp_outbox.c.correlation_id).where(
                and_(ocpp_outbox.c.delivery_uncertain.is_(True), ocpp_outbox.c.status == "failed")))
            return {row.correlation_id for row in rows}

    def entries(self, station_ids: Iterable[str] | None = None, run_id: str | None = None) -> list[OutboxEntry]:
        query = select(ocpp_outbox).order_by(ocpp_outbox.c.id)
        if station_ids is not None:
            query = query.where(ocpp_outbox.c.station_id.in_(list(station_ids)))
        if run_id is not None:
            query = query.where(ocpp_outbox.c.run_id == run_id)
        with self.engine.connect() as connection:
            return [_entry(row) for row in connection.execute(query)]

    def get(self, correlation_id: str) -> OutboxEntry | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(ocpp_outbox).where(
                ocpp_outbox.c.correlation_id == correlation_id)).first()
            return _entry(row) if row else None

    def last_in_force(self, now: datetime) -> dict[str, OutboxEntry]:
        """station -> its newest profile the station follows or will be sent (not superseded, expired or
        rejected), when its validTo still lies ahead: what a station with nothing planned must be told to drop.

        Reads one row per station (the outbox keeps every accepted profile, so it only grows)."""
        newest = (select(func.max(ocpp_outbox.c.id))
                  .where(ocpp_outbox.c.status.not_in(("superseded", "expired", "rejected")))
                  .group_by(ocpp_outbox.c.station_id))
        with self.engine.connect() as connection:
            rows = connection.execute(select(ocpp_outbox).where(ocpp_outbox.c.id.in_(newest))).all()
        entries = [_entry(row) for row in rows]
        return {entry.station_id: entry for entry in entries if entry.valid_to > now}

    def latest_by_station(self) -> dict[str, OutboxEntry]:
        latest: dict[str, OutboxEntry] = {}
        for entry in self.entries():
            if entry.status not in ("superseded",):
                latest[entry.station_id] = entry
        return latest
