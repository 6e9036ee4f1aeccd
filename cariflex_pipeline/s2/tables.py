"""S2 tables on the store's metadata: the resource managers the CEM knows, their instruction outbox and its
history, and every message that crossed the connection.

Created by the Alembic revision `0008_s2`; `0009_site_keys` keys every row by its portfolio site (`site_id`: an
RM's is its device's site, "" while it names no site device; an instruction's is the site whose plan staged it;
an event's and a message's are their instruction's and their RM's). Times are UTC (`timestamptz` on PostgreSQL,
naive UTC on SQLite); use `cariflex_pipeline.store.times` at the boundary. JSON documents (an RM's details, its
latest system description, forecasts) are kept as the RM sent them, as text, so the operator reads what the device
declared.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, Index, Integer, String, Table, Text

from cariflex_pipeline.store.schema import SITE_ID_LENGTH, metadata

# connected: FRBC selected and under control; uncontrolled: connected, but no FRBC (told so, never instructed);
# disconnected: the websocket is gone (planned at zero until it returns)
RESOURCE_STATUSES = ("connected", "uncontrolled", "disconnected")

s2_resources = Table(
    "s2_resources",
    metadata,
    Column("resource_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("device", String(64)),  # the site's battery or V2G charger of that name; none: not a site device
    Column("site_id", String(SITE_ID_LENGTH), nullable=False),  # the device's site; "": no site device
    Column("control_type", String(40), nullable=False, server_default="NO_SELECTION"),
    Column("status", String(16), nullable=False),
    Column("status_reason", Text, nullable=False, server_default=""),
    Column("details", Text, nullable=False, server_default="{}"),  # ResourceManagerDetails
    Column("system_description", Text),  # the latest FRBC.SystemDescription
    Column("fill_level", Float),
    Column("fill_level_at", DateTime(timezone=True)),
    Column("actuator_status", Text),  # the latest FRBC.ActuatorStatus per actuator id, JSON object
    Column("usage_forecast", Text),
    Column("fill_level_target", Text),
    Column("connected_at", DateTime(timezone=True)),
    Column("disconnected_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_s2_resources_device", "device"),
    Index("ix_s2_resources_site", "site_id"),
)

INSTRUCTION_STATUSES = ("pending", "sent", "received", "accepted", "started", "succeeded", "rejected", "aborted",
                        "invalid", "unanswered", "outside_ranges", "superseded", "revoking", "revoked")
# the RM holds, or is about to get, these: what a new plan revokes and a reconnecting RM is sent again
IN_FORCE_STATUSES = ("pending", "sent", "received", "accepted", "started")

s2_instructions = Table(
    "s2_instructions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("instruction_id", String(36), nullable=False, unique=True),  # FRBC.Instruction.id
    Column("site_id", String(SITE_ID_LENGTH), nullable=False),  # the site whose plan staged it
    Column("resource_id", String(64), nullable=False),
    Column("device", String(64), nullable=False),
    Column("actuator_id", String(36), nullable=False),
    Column("operation_mode_id", String(36), nullable=False),
    Column("operation_mode_factor", Float, nullable=False),
    Column("power_kw", Float, nullable=False),  # what the plan asked for; a retry is rebuilt from it
    Column("execution_time", DateTime(timezone=True), nullable=False),
    Column("plan_key", String(64), nullable=False, server_default=""),
    Column("status", String(16), nullable=False),
    Column("status_reason", Text, nullable=False, server_default=""),
    Column("message_id", String(36), unique=True),  # of the last FRBC.Instruction message that carried it
    Column("revoke_message_id", String(36), unique=True),
    Column("reception_status", String(20)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Column("answered_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_s2_instructions_resource_status", "resource_id", "status"),
    Index("ix_s2_instructions_site_status", "site_id", "status"),
)

# Every status change of an instruction, with its time and reason: what an operator reads when a device misbehaves.
s2_instruction_events = Table(
    "s2_instruction_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("instruction_row", Integer, nullable=False),
    Column("site_id", String(SITE_ID_LENGTH), nullable=False),  # its instruction's
    Column("at", DateTime(timezone=True), nullable=False),
    Column("event", String(20), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Index("ix_s2_instruction_events_row", "instruction_row"),
    Index("ix_s2_instruction_events_site", "site_id"),
)

# Every message in and out, with the ReceptionStatus it got: nothing an RM reported is lost with its connection.
s2_messages = Table(
    "s2_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("resource_id", String(64)),  # none before the RM has introduced itself
    Column("site_id", String(SITE_ID_LENGTH), nullable=False),  # its RM's site; "": before it named a site device
    Column("connection_id", String(36), nullable=False),
    Column("direction", String(3), nullable=False),  # in | out
    Column("message_type", String(40), nullable=False),
    Column("message_id", String(64)),
    Column("payload", Text, nullable=False),
    Column("reception_status", String(20)),
    Column("diagnostic", Text, nullable=False, server_default=""),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_s2_messages_resource", "resource_id", "at"),
    Index("ix_s2_messages_site", "site_id", "at"),
)
