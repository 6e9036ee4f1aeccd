"""EV charging needs wait for CitrineOS's answer: each NotifyEVChargingNeeds exchange (the station's needs and
CitrineOS's Accepted/Processing/Rejected) in `ev_charging_needs`; only accepted needs reach the sessions.

Revision ID: 0005_ev_needs_answers
Revises: 0004_outbox_delivery
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_ev_needs_answers"
down_revision = "0004_outbox_delivery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ev_charging_needs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("station_id", sa.String(64), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("evse_id", sa.Integer),
        sa.Column("departure", sa.DateTime(timezone=True)),
        sa.Column("energy_kwh", sa.Float),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("answer", sa.String(16)),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("transaction_id", sa.String(36)),
        sa.Column("requested_at", sa.DateTime(timezone=True)),
        sa.Column("answered_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("station_id", "correlation_id", name="uq_ev_charging_needs_station_correlation"),
    )
    with op.batch_alter_table("ev_charging_needs") as batch:
        batch.create_index("ix_ev_charging_needs_station_status", ["station_id", "status"])


def downgrade() -> None:
    with op.batch_alter_table("ev_charging_needs") as batch:
        batch.drop_index("ix_ev_charging_needs_station_status")
    op.drop_table("ev_charging_needs")
