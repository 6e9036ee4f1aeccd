"""Time-series core: sensors, data sources and beliefs.

Revision ID: 0001_timeseries
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_timeseries"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sensors",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("unit", sa.String(40), nullable=False),
        sa.Column("resolution_seconds", sa.Integer, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
    )
    op.create_table(
        "data_sources",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("type", sa.String(60), nullable=False),
    )
    op.create_table(
        "beliefs",
        sa.Column("sensor_id", sa.Integer, primary_key=True),
        sa.Column("event_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("source_id", sa.Integer, primary_key=True),
        sa.Column("belief_time", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("event_resolution_seconds", sa.Integer, nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("beliefs")
    op.drop_table("data_sources")
    op.drop_table("sensors")
