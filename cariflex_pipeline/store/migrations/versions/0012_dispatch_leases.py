"""One dispatch run per site at a time: `ocpp_dispatch_leases` holds a row per site while a run stores its profiles
in the outbox, sends them and records what the transport did with them.

Two runs of one site (the 15-minute tick and a session change) otherwise interleave: the second supersedes the
first's pending entry while the first is sending it (the station gets the profile twice), or sends its newer plan
before the first's older one reaches the station (the station keeps the older plan). The row expires
(`expires_at`), so a run that crashed holding it delays the next one by at most that long.

Revision ID: 0012_dispatch_leases
Revises: 0011_lz4_payloads
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_dispatch_leases"
down_revision = "0011_lz4_payloads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocpp_dispatch_leases",
        sa.Column("site_id", sa.String(63), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ocpp_dispatch_leases")
