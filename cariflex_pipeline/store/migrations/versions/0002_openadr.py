"""OpenADR: received events (audit) and VEN state.

Revision ID: 0002_openadr
Revises: 0001_timeseries
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_openadr"
down_revision = "0001_timeseries"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "openadr_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("vtn_id", sa.String(200), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("modification_number", sa.BigInteger, nullable=False),
        sa.Column("protocol", sa.String(10), nullable=False),
        sa.Column("program", sa.String(400), nullable=True),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("raw_payload", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("covered_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("covered_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sensor_ids", sa.String(200), nullable=False, server_default=""),
        sa.Column("values_written", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("vtn_id", "event_id", "modification_number", name="uq_openadr_events_version"),
    )
    op.create_index("ix_openadr_events_vtn_event", "openadr_events", ["vtn_id", "event_id"])
    op.create_table(
        "openadr_ven_state",
        sa.Column("vtn_url", sa.String(500), primary_key=True),
        sa.Column("protocol", sa.String(10), nullable=False),
        sa.Column("vtn_id", sa.String(200), nullable=True),
        sa.Column("ven_id", sa.String(200), nullable=True),
        sa.Column("registration_id", sa.String(200), nullable=True),
        sa.Column("poll_freq_seconds", sa.Float, nullable=True),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("openadr_ven_state")
    op.drop_index("ix_openadr_events_vtn_event", table_name="openadr_events")
    op.drop_table("openadr_events")
