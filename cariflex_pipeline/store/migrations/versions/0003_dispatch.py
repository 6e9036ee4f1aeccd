"""Dispatch: OCPP profile outbox, EV sessions and station status.

Revision ID: 0003_dispatch
Revises: 0002_openadr
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_dispatch"
down_revision = "0002_openadr"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocpp_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("station_id", sa.String(64), nullable=False),
        sa.Column("evse_id", sa.Integer, nullable=False),
        sa.Column("profile_id", sa.Integer, nullable=False),
        sa.Column("stack_level", sa.Integer, nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("transaction_id", sa.String(36)),
        sa.Column("correlation_id", sa.String(64), nullable=False, unique=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("delivery_uncertain", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("answered_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ocpp_outbox_station_status", "ocpp_outbox", ["station_id", "status"])
    op.create_table(
        "ev_sessions",
        sa.Column("station_id", sa.String(64), primary_key=True),
        sa.Column("transaction_id", sa.String(36), primary_key=True),
        sa.Column("evse_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("arrival", sa.DateTime(timezone=True), nullable=False),
        sa.Column("departure", sa.DateTime(timezone=True), nullable=False),
        sa.Column("departure_is_default", sa.Boolean, nullable=False),
        sa.Column("energy_requested_kwh", sa.Float, nullable=False),
        sa.Column("energy_is_default", sa.Boolean, nullable=False),
        sa.Column("meter_start_wh", sa.Float),
        sa.Column("energy_delivered_kwh", sa.Float, nullable=False, server_default="0"),
        sa.Column("last_power_kw", sa.Float),
        sa.Column("last_seq_no", sa.Integer),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("stopped_reason", sa.String(40)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("station_id", "transaction_id", name="uq_ev_sessions_station_tx"),
    )
    op.create_table(
        "ev_station_status",
        sa.Column("station_id", sa.String(64), primary_key=True),
        sa.Column("evse_id", sa.Integer, primary_key=True),
        sa.Column("connector_id", sa.Integer, nullable=False),
        sa.Column("connector_status", sa.String(20)),
        sa.Column("status_at", sa.DateTime(timezone=True)),
        sa.Column("pending_departure", sa.DateTime(timezone=True)),
        sa.Column("pending_energy_kwh", sa.Float),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ev_station_status")
    op.drop_table("ev_sessions")
    op.drop_index("ix_ocpp_outbox_station_status", table_name="ocpp_outbox")
    op.drop_table("ocpp_outbox")
