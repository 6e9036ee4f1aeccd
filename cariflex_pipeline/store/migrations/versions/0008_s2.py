"""S2 energy manager: resource managers, the FRBC instruction outbox with its history, and the message log.

Revision ID: 0008_s2
Revises: 0007_openadr_absences
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_s2"
down_revision = "0007_openadr_absences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "s2_resources",
        sa.Column("resource_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("device", sa.String(64)),
        sa.Column("control_type", sa.String(40), nullable=False, server_default="NO_SELECTION"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
        sa.Column("system_description", sa.Text),
        sa.Column("fill_level", sa.Float),
        sa.Column("fill_level_at", sa.DateTime(timezone=True)),
        sa.Column("actuator_status", sa.Text),
        sa.Column("usage_forecast", sa.Text),
        sa.Column("fill_level_target", sa.Text),
        sa.Column("connected_at", sa.DateTime(timezone=True)),
        sa.Column("disconnected_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_s2_resources_device", "s2_resources", ["device"])
    op.create_table(
        "s2_instructions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("instruction_id", sa.String(36), nullable=False, unique=True),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("actuator_id", sa.String(36), nullable=False),
        sa.Column("operation_mode_id", sa.String(36), nullable=False),
        sa.Column("operation_mode_factor", sa.Float, nullable=False),
        sa.Column("power_kw", sa.Float, nullable=False),
        sa.Column("execution_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("plan_key", sa.String(64), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("message_id", sa.String(36), unique=True),
        sa.Column("revoke_message_id", sa.String(36), unique=True),
        sa.Column("reception_status", sa.String(20)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("answered_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_s2_instructions_resource_status", "s2_instructions", ["resource_id", "status"])
    op.create_table(
        "s2_instruction_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("instruction_row", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_s2_instruction_events_row", "s2_instruction_events", ["instruction_row"])
    op.create_table(
        "s2_messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("resource_id", sa.String(64)),
        sa.Column("connection_id", sa.String(36), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("message_type", sa.String(40), nullable=False),
        sa.Column("message_id", sa.String(64)),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("reception_status", sa.String(20)),
        sa.Column("diagnostic", sa.Text, nullable=False, server_default=""),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_s2_messages_resource", "s2_messages", ["resource_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_s2_messages_resource", table_name="s2_messages")
    op.drop_table("s2_messages")
    op.drop_index("ix_s2_instruction_events_row", table_name="s2_instruction_events")
    op.drop_table("s2_instruction_events")
    op.drop_index("ix_s2_instructions_resource_status", table_name="s2_instructions")
    op.drop_table("s2_instructions")
    op.drop_index("ix_s2_resources_device", table_name="s2_resources")
    op.drop_table("s2_resources")
