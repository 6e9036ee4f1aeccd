"""Dispatch tables on the store's metadata: the profile outbox, EV sessions and station status.

Created by the Alembic revisions `0003_dispatch` and `0004_outbox_delivery`; `0009_site_keys` keys every row by
its portfolio site (`site_id`: the site of the station's charge point). Times are UTC (`timestamptz` on
PostgreSQL, naive UTC on SQLite); use `cariflex_pipeline.store.times` at the boundary.
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

from cariflex_pipeline.store.schema import SITE_ID_LENGTH, metadata

OUTBOX_STATUSES = ("pending", "sent", "accepted", "rejected", "unroutable", "failed", "unanswered", "superseded",
                   "expired")
# not delivered, or delivered without an answer in time: the station's next profile is rebuilt from the current plan
UNDELIVERED_STATUSES = ("pending", "failed", "unroutable", "unanswered")
READBACK_STATUSES = ("requested", "matches", "differs", "failed", "unanswered")

ocpp_outbox = Table(
    "ocpp_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(SITE_ID_LENGTH), nullable=False),  # the site whose plan the entry carries
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
    # earliest time the next attempt for this station may go out (backoff after an undelivered attempt)
    Column("retry_after", DateTime(timezone=True)),
    # REST: the ClearChargingProfile sent first so CitrineOS accepts a TxProfile update (K01.FR.39)
    Column("clear_correlation_id", String(64)),
    Column("clear_status", String(16)),
    # GetCompositeSchedule after Accepted: what the station will really do, compared with this profile
    Column("readback_correlation_id", String(64), unique=True),
    Column("readback_status", String(16)),
    Column("readback_detail", Text),
    Column("readback_at", DateTime(timezone=True)),
    Index("ix_ocpp_outbox_station_status", "station_id", "status"),
    Index("ix_ocpp_outbox_site_status", "site_id", "status"),
)

# Every status change of an outbox entry, with its time and reason: the delivery history an operator reads.
ocpp_outbox_events = Table(
    "ocpp_outbox_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("outbox_id", Integer, nullable=False),
    Column("site_id", String(SITE_ID_LENGTH), nullable=False),  # its entry's
    Column("station_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("event", String(24), nullable=False),  # a status, or readback/clear events
    Column("reason", Text, nullable=False, server_default=""),
    Index("ix_ocpp_outbox_events_outbox", "outbox_id"),
    Index("ix_ocpp_outbox_events_site", "site_id"),
)

ev_sessions = Table(
    "ev_sessions",
    metadata,
    Column("station_id", String(64), primary_key=True),
    Column("transaction_id", String(36), primary_key=True),
    Column("site_id", String(SITE_ID_LENGTH), nullable=False),
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
    Index("ix_ev_sessions_site_status", "site_id", "status"),
)

ev_station_status = Table(
    "ev_station_status",
    metadata,
    Column("station_id", String(64), primary_key=True),
    Column("evse_id", Integer, primary_key=True),
    Column("site_id", String(SITE_ID_LENGTH), nullable=False),
    Column("connector_id", Integer, nullable=False),
    Column("connector_status", String(20)),
    Column("status_at", DateTime(timezone=True)),
    Column("pending_departure", DateTime(timezone=True)),
    Column("pending_energy_kwh", Float),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_ev_station_status_site", "site_id"),
)

# Each NotifyEVChargingNeeds exchange of a station with CitrineOS (Alembic revision `0005_ev_needs_answers`): the
# needs the station sent (request, origin cs) and CitrineOS's answer (origin csms, same correlationId). Needs are
# applied to the session only once CitrineOS answered Accepted or Processing.
EV_NEEDS_STATUSES = ("awaiting", "applied", "rejected", "unmatched")  # unmatched: answer seen, its request not yet

ev_charging_needs = Table(
    "ev_charging_needs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(SITE_ID_LENGTH), nullable=False),
    Column("station_id", String(64), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("evse_id", Integer),  # unknown while only the answer has been seen
    Column("departure", DateTime(timezone=True)),
    Column("energy_kwh", Float),
    Column("status", String(16), nullable=False),
    Column("answer", String(16)),  # Accepted | Processing | Rejected | CallError
    Column("reason", Text, nullable=False, server_default=""),  # statusInfo, or the CallError
    Column("transaction_id", String(36)),  # the session the needs were applied to; none: kept for the next start
    Column("requested_at", DateTime(timezone=True)),
    Column("answered_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("station_id", "correlation_id", name="uq_ev_charging_needs_station_correlation"),
    Index("ix_ev_charging_needs_station_status", "station_id", "status"),
    Index("ix_ev_charging_needs_site", "site_id"),
)

# One dispatch run per site at a time (Alembic revision `0012_dispatch_leases`, `dispatch.lease`): the run holding
# its site's row until `expires_at` stores, sends and marks; another waits for the row.
ocpp_dispatch_leases = Table(
    "ocpp_dispatch_leases",
    metadata,
    Column("site_id", String(SITE_ID_LENGTH), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
