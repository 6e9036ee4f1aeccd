"""ev_sessions: drop the unique constraint that only repeated its primary key.

0003 declared UNIQUE (station_id, transaction_id) beside the same primary key. PostgreSQL folded the two into
one constraint, SQLite kept both, so the two stores differed from each other and from the tables in code (the
drift test found it). The primary key alone keeps a transaction once per station.

Revision ID: 0006_ev_sessions_key
Revises: 0005_ev_needs_answers
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_ev_sessions_key"
down_revision = "0005_ev_needs_answers"
branch_labels = None
depends_on = None

NAME = "uq_ev_sessions_station_tx"


def upgrade() -> None:
    names = {c["name"] for c in sa.inspect(op.get_bind()).get_unique_constraints("ev_sessions")}
    if NAME in names:
        with op.batch_alter_table("ev_sessions") as batch:
            batch.drop_constraint(NAME, type_="unique")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":  # where 0003 left it
        with op.batch_alter_table("ev_sessions") as batch:
            batch.create_unique_constraint(NAME, ["station_id", "transaction_id"])
