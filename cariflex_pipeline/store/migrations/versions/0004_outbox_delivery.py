"""Outbox delivery you can trust: unanswered entries, backoff, ClearChargingProfile, composite read-back, and
the history of every status change.

Revision ID: 0004_outbox_delivery
Revises: 0003_dispatch
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_outbox_delivery"
down_revision = "0003_dispatch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ocpp_outbox") as batch:
        batch.add_column(sa.Column("retry_after", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("clear_correlation_id", sa.String(64)))
        batch.add_column(sa.Column("clear_status", sa.String(16)))
        batch.add_column(sa.Column("readback_correlation_id", sa.String(64)))
        batch.add_column(sa.Column("readback_status", sa.String(16)))
        batch.add_column(sa.Column("readback_detail", sa.Text))
        batch.add_column(sa.Column("readback_at", sa.DateTime(timezone=True)))
        batch.create_unique_constraint("uq_ocpp_outbox_readback_correlation_id", ["readback_correlation_id"])
    op.create_table(
        "ocpp_outbox_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("outbox_id", sa.Integer, nullable=False),
        sa.Column("station_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_ocpp_outbox_events_outbox", "ocpp_outbox_events", ["outbox_id"])


def downgrade() -> None:
    op.drop_index("ix_ocpp_outbox_events_outbox", table_name="ocpp_outbox_events")
    op.drop_table("ocpp_outbox_events")
    with op.batch_alter_table("ocpp_outbox") as batch:
        batch.drop_constraint("uq_ocpp_outbox_readback_correlation_id", type_="unique")
        for column in ("readback_at", "readback_detail", "readback_status", "readback_correlation_id",
                       "clear_status", "clear_correlation_id", "retry_after"):
            batch.drop_column(column)
