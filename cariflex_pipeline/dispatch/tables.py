"""Dispatch tables on the store's metadata: the profile outbox, EV sessions and station status.

Created by the Alembic revision `0003_dispatch`. Times are UTC (`timestamptz` on PostgreSQL, naive UTC on
SQLite); use `cariflex_pipeline.store.times` at the boundary.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from cariflex_pipeline.store.schema import metadata

OUTBOX_STATUSES = ("pending", "sent", "accepted", "rejected", "unroutable", "failed", "superseded", "expired")
RETRYABLE_STATUSES = ("pending", "failed", "unroutable")

ocpp_outbox = Table(
    "ocpp_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station_id", String(64), nullable=False),
    Column("evse_id", Integer, nullable=False),
    Column("profile_id", Integer, nullable=False),
    Column("stack_level", Integer, nullable=False),
    Column("purpose", String(40), nullable=False),
    Column("transaction_id", String(36)),
    Column("correlation_id", String(64), nullable=False, unique=True),
    Column("payload", Text, nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_reason", Text, nullable=False, server_default=""),
    Column("delivery_uncertain", Boolean, nullable=False, server_default=false()),
    Column("transport", String(16), nullable=False),
    Column("run_id", String(64), nullable=False, server_default=""),
    Column("forced", Boolean, nullable=False, server_default=false()),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("valid_to", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Column("answered_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_ocpp_outbox_station_status", "station_id", "status"),
)

ev_sessions = Table(
    "ev_sessions",
    metadata,
    Column("station_id", String(64), primary_key=True),
    Column("transaction_id", String(36), primary_key=True),
    Column("evse_id", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # active | ended
    Column("arrival", DateTime(timezone=True), nullable=False),
    Column("departure", DateTime(timezone=True), nullable=False),
    Column("departure_is_default", Boolean, nullable=False),
    Column("energy_requested_kwh", Float, nullable=False),
    Column("energy_is_default", Boolean, nullable=False),
    Column("meter_start_wh", Float),
    Column("energy_delivered_kwh", Float, nullable=False, server_default="0"),
    Column("last_power_kw", Float),
    Column("last_seq_no", Integer),
    Column("ended_at", DateTime(timezone=True)),
    Column("stopped_reason", String(40)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("station_id", "transaction_id", name="uq_ev_sessions_station_tx"),
)

ev_station_status = Table(
    "ev_station_status",
    metadata,
    Column("station_id", String(64), primary_key=True),
    Column("evse_id", Integer, primary_key=True),
    Column("connector_id", Integer, nullable=False),
    Column("connector_status", String(20)),
    Column("status_at", DateTime(timezone=True)),
    Column("pending_departure", DateTime(timezone=True)),
    Column("pending_energy_kwh", Float),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
