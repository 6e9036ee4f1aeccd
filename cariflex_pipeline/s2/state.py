"""What the CEM knows, in the store: resource managers, the instruction outbox and its history, the message log.

The CEM service writes here as messages arrive; Dagster reads here and stages a plan's instructions here, so the
two never talk directly (as with the OCPP outbox). Every instruction is stored before it is sent.

Instruction statuses: `pending` (stored, to be sent) -> `sent` -> `received` (ReceptionStatus OK) -> `accepted`
-> `started` -> `succeeded` (the RM's InstructionStatusUpdates), or `rejected` / `aborted` (the RM), `invalid`
(a ReceptionStatus other than OK), `unanswered` (no ReceptionStatus in time: a new attempt is rebuilt from the
planned power against the RM's current description), `outside_ranges` (the RM's current description no longer
allows it: never sent), `superseded` (a new plan replaced it before it was sent), `revoking` -> `revoked` (a new
plan replaced it after it was sent: RevokeObject).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, or_, select, update

from cariflex_pipeline.s2.frbc import POWER_TOLERANCE_KW, Setpoint
from cariflex_pipeline.s2.tables import (
    IN_FORCE_STATUSES,
    s2_instruction_events,
    s2_instructions,
    s2_messages,
    s2_resources,
)
from cariflex_pipeline.store.times import from_db_time, to_db_time

_TIME_COLUMNS = ("execution_time", "created_at", "sent_at", "answered_at", "updated_at", "fill_level_at",
                 "connected_at", "disconnected_at", "at")


def _row(mapping: Any) -> dict[str, Any]:
    row = dict(mapping)
    for column in _TIME_COLUMNS:
        if column in row:
            row[column] = from_db_time(row[column])
    return row


def _storable(text: str) -> str:
    # PostgreSQL text cannot hold NUL; a hostile RM's NUL is kept visibly escaped instead of failing the log
    return text.replace("\x00", "\\x00")


def record_message(engine: Engine, *, site_id: str, connection_id: str, resource_id: str | None, direction: str,
                   message_type: str, message_id: str | None, payload: str, at: datetime,
                   reception_status: str | None = None, diagnostic: str = "") -> None:
    """One message in or out, as it crossed the wire (a NUL character escaped); `site_id` is its RM's device's
    site, NO_SITE ("") while the RM has named no device of the portfolio."""
    with engine.begin() as connection:
        connection.execute(insert(s2_messages).values(
            site_id=site_id, connection_id=connection_id, resource_id=resource_id, direction=direction,
            message_type=_storable(message_type), message_id=message_id, payload=_storable(payload),
            reception_status=reception_status, diagnostic=_storable(diagnostic), at=to_db_time(engine, at)))


def record_reception(engine: Engine, message_id: str, status: str, diagnostic: str) -> None:
    """The ReceptionStatus the RM gave one of our messages."""
    with engine.begin() as connection:
        connection.execute(update(s2_messages).where(s2_messages.c.message_id == message_id,
                                                     s2_messages.c.direction == "out")
                           .values(reception_status=status, diagnostic=diagnostic))


def messages(engine: Engine, resource_id: str | None = None, site_id: str | None = None) -> list[dict[str, Any]]:
    """The message log, oldest first: of one RM, of one site, each when given."""
    query = select(s2_messages).order_by(s2_messages.c.id)
    if resource_id is not None:
        query = query.where(s2_messages.c.resource_id == resource_id)
    if site_id is not None:
        query = query.where(s2_messages.c.site_id == site_id)
    with engine.connect() as connection:
        return [_row(row) for row in connection.execute(query).mappings()]


def save_resource(engine: Engine, resource_id: str, now: datetime, **values: Any) -> None:
    """Insert or update what is known of one RM (times are converted; JSON values are given as text). A new RM
    needs its `site_id` among the values: its device's site, NO_SITE ("") when it names no device of the
    portfolio."""
    for column in _TIME_COLUMNS:
        if column in values:
            values[column] = to_db_time(engine, values[column])
    values["updated_at"] = to_db_time(engine, now)
    with engine.begin() as connection:
        exists = connection.scalar(select(s2_resources.c.resource_id)
                                   .where(s2_resources.c.resource_id == resource_id))
        if exists is None:
            values.setdefault("status", "connected")
            connection.execute(insert(s2_resources).values(resource_id=resource_id, **values))
        else:
            connection.execute(update(s2_resources).where(s2_resources.c.resource_id == resource_id)
                               .values(**values))


def resource(engine: Engine, resource_id: str) -> dict[str, Any] | None:
    with engine.connect() as connection:
        found = connection.execute(select(s2_resources).where(s2_resources.c.resource_id == resource_id))
        row = found.mappings().first()
    return None if row is None else _row(row)


def resources(engine: Engine, site_id: str | None = None) -> list[dict[str, Any]]:
    """Every RM the CEM has known, by resource id; of one site if `site_id` is given."""
    query = select(s2_resources).order_by(s2_resources.c.resource_id)
    if site_id is not None:
        query = query.where(s2_resources.c.site_id == site_id)
    with engine.connect() as connection:
        return [_row(row) for row in connection.execute(query).mappings()]


def newest_by_device(engine: Engine, devices: Collection[str]) -> dict[str, dict[str, Any]]:
    """For each of these site devices that ever had an RM, the RM row updated last (an RM replaced by another
    under a new resource id is history)."""
    newest: dict[str, dict[str, Any]] = {}
    for row in resources(engine):
        device = row["device"]
        if device in devices and (device not in newest or row["updated_at"] > newest[device]["updated_at"]):
            newest[device] = row
    return newest


def actuator_statuses(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["actuator_status"]) if row.get("actuator_status") else {}


# --- the instruction outbox -------------------------------------------------------------------------------


def _event(connection: Connection, row_id: int, at: Any, event: str, reason: str) -> None:
    # the event carries its instruction's site, read in the same statement
    site_id = select(s2_instructions.c.site_id).where(s2_instructions.c.id == row_id).scalar_subquery()
    connection.execute(insert(s2_instruction_events).values(instruction_row=row_id, site_id=site_id, at=at,
                                                            event=event, reason=reason))


# where an RM's progress answer (received, accepted, started) may move an instruction: not out of `revoking`, as a
# new plan that replaced it while the answer was on its way still has to revoke it
ANSWERABLE_STATUSES = ("sent", "received", "accepted", "started")


def transition(engine: Engine, row_id: int, status: str, now: datetime, reason: str = "",
               only_from: Sequence[str] | None = None, **values: Any) -> bool:
    """Move one instruction to `status`, keeping the change in its history. With `only_from`, only from one of
    those statuses, checked in the same statement (the CEM and a staging run change rows concurrently): whether
    it moved."""
    at = to_db_time(engine, now)
    for column in ("sent_at", "answered_at"):
        if column in values:
            values[column] = to_db_time(engine, values[column])
    query = update(s2_instructions).where(s2_instructions.c.id == row_id)
    if only_from is not None:
        query = query.where(s2_instructions.c.status.in_(list(only_from)))
    with engine.begin() as connection:
        if connection.execute(query.values(status=status, status_reason=reason, updated_at=at, **values)).rowcount == 0:
            return False
        _event(connection, row_id, at, status, reason)
    return True


def instructions(engine: Engine, resource_id: str | None = None,
                 statuses: Sequence[str] | None = None) -> list[dict[str, Any]]:
    query = select(s2_instructions).order_by(s2_instructions.c.execution_time, s2_instructions.c.id)
    if resource_id is not None:
        query = query.where(s2_instructions.c.resource_id == resource_id)
    if statuses is not None:
        query = query.where(s2_instructions.c.status.in_(list(statuses)))
    with engine.connect() as connection:
        return [_row(row) for row in connection.execute(query).mappings()]


def instruction_events(engine: Engine, row_id: int) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        found = connection.execute(select(s2_instruction_events).where(s2_instruction_events.c.instruction_row
                                                                       == row_id).order_by(s2_instruction_events.c.id))
        return [_row(row) for row in found.mappings()]


def in_force(engine: Engine, resource_id: str, now: datetime) -> list[dict[str, Any]]:
    """The instructions the RM should hold now: the latest one already executing and every later one."""
    rows = instructions(engine, resource_id, IN_FORCE_STATUSES)
    started = [row for row in rows if row["execution_time"] <= now]
    current = started[-1:] if started else []
    return current + [row for row in rows if row["execution_time"] > now]


@dataclass(frozen=True)
class Staged:
    """What staging a plan for one RM did."""

    kept: int
    added: int
    superseded: int
    revoking: int


def _same(row: dict[str, Any], point: Setpoint) -> bool:
    return (row["execution_time"] == point.execution_time and row["actuator_id"] == point.mode.actuator_id
            and row["operation_mode_id"] == point.mode.mode_id
            and abs(row["power_kw"] - point.power_kw) <= POWER_TOLERANCE_KW)


def stage_setpoints(engine: Engine, resource_id: str, device: str, setpoints: Sequence[Setpoint], plan_key: str,
                    now: datetime, *, site_id: str) -> Staged:
    """Store a plan's setpoints for one RM as pending instructions of `site_id` (the site whose plan they are),
    idempotently: a setpoint already in force is kept as it is, an instruction in force that the plan no longer has
    is superseded (never sent) or revoked."""
    current = in_force(engine, resource_id, now)
    wanted = list(setpoints)
    kept_rows = [row for row in current if any(_same(row, point) for point in wanted)]
    new_points = [point for point in wanted if not any(_same(row, point) for row in kept_rows)]
    dropped = [row for row in current if row not in kept_rows]
    at = to_db_time(engine, now)
    with engine.begin() as connection:
        for point in new_points:
            reason = (f"plan asked {point.clamped_from_kw:.3f} kW, beyond the declared ranges"
                      if point.clamped_from_kw is not None else "")
            row_id = connection.execute(insert(s2_instructions).values(
                instruction_id=str(uuid.uuid4()), site_id=site_id, resource_id=resource_id, device=device,
                actuator_id=point.mode.actuator_id, operation_mode_id=point.mode.mode_id,
                operation_mode_factor=point.factor, power_kw=point.power_kw,
                execution_time=to_db_time(engine, point.execution_time), plan_key=plan_key, status="pending",
                status_reason=reason, created_at=at, updated_at=at)).inserted_primary_key[0]
            _event(connection, row_id, at, "pending", reason or f"plan {plan_key}")
        replaced = [status for row in dropped if (status := _replace(connection, row, plan_key, at)) is not None]
    superseded = replaced.count("superseded")
    return Staged(len(kept_rows), len(new_points), superseded, len(replaced) - superseded)


def _replace(connection: Connection, row: dict[str, Any], plan_key: str, at: Any) -> str | None:
    """Supersede (never sent) or revoke an instruction a new plan no longer has, from its status as it is now: the
    CEM may have sent or settled it since `row` was read. None when it is no longer in force."""
    current = connection.scalar(select(s2_instructions.c.status).where(s2_instructions.c.id == row["id"])
                                .with_for_update())
    if current not in IN_FORCE_STATUSES:
        return None
    status = "superseded" if current == "pending" else "revoking"
    connection.execute(update(s2_instructions).where(s2_instructions.c.id == row["id"])
                       .values(status=status, status_reason=f"replaced by plan {plan_key}", updated_at=at))
    _event(connection, row["id"], at, status, f"replaced by plan {plan_key}")
    return status


def requeue_in_force(engine: Engine, resource_id: str, now: datetime, reason: str) -> int:
    """A (re)connected RM holds nothing: what is in force is sent again. The number requeued."""
    rows = [row for row in in_force(engine, resource_id, now) if row["status"] != "pending"]
    for row in rows:
        transition(engine, row["id"], "pending", now, reason)
    return len(rows)


def by_message_id(engine: Engine, message_id: str) -> dict[str, Any] | None:
    """The instruction an FRBC.Instruction or a RevokeObject with this message id carried."""
    with engine.connect() as connection:
        row = connection.execute(select(s2_instructions).where(or_(
            s2_instructions.c.message_id == message_id, s2_instructions.c.revoke_message_id == message_id)))
        found = row.mappings().first()
    return None if found is None else _row(found)


def by_instruction_id(engine: Engine, resource_id: str, instruction_id: str) -> dict[str, Any] | None:
    with engine.connect() as connection:
        row = connection.execute(select(s2_instructions).where(and_(
            s2_instructions.c.resource_id == resource_id, s2_instructions.c.instruction_id == instruction_id)))
        found = row.mappings().first()
    return None if found is None else _row(found)


def retry_from_plan(engine: Engine, row: dict[str, Any], point: Setpoint, now: datetime) -> None:
    """An unanswered instruction's new attempt, rebuilt from its planned power against the current description."""
    at = to_db_time(engine, now)
    with engine.begin() as connection:
        row_id = connection.execute(insert(s2_instructions).values(
            instruction_id=str(uuid.uuid4()), site_id=row["site_id"], resource_id=row["resource_id"],
            device=row["device"],
            actuator_id=point.mode.actuator_id, operation_mode_id=point.mode.mode_id,
            operation_mode_factor=point.factor, power_kw=point.power_kw,
            execution_time=to_db_time(engine, row["execution_time"]), plan_key=row["plan_key"], status="pending",
            status_reason=f"retry of instruction {row['instruction_id']}", attempts=row["attempts"],
            created_at=at, updated_at=at)).inserted_primary_key[0]
        _event(connection, row_id, at, "pending", f"retry of instruction {row['instruction_id']}")
