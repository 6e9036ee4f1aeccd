"""OpenADR at least once: 3.0.1 events absent from complete listings (`openadr_absences`, so that one listing
without an event does not delete it and a reappearing event gets its values back), and the 2.0b VEN's open poll
and last resync (`openadr_ven_state.open_poll`, `.last_resync_at`).

The cancelled versions that the previous VEN logged for an unlisted 3.0.1 event (numbered one above the event's
own version, so the event, listed again unchanged, looked stale for ever) become absences whose values are
withdrawn: the event's values come back when it is listed again.

Revision ID: 0007_openadr_absences
Revises: 0006_ev_sessions_key
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_openadr_absences"
down_revision = "0006_ev_sessions_key"
branch_labels = None
depends_on = None

# what the previous VEN logged as raw payload of the cancelled version of an event no longer listed
OLD_TOMBSTONE = '{"absent": "event no longer listed by the VTN"}'

events = sa.table("openadr_events", sa.column("vtn_id"), sa.column("event_id"), sa.column("raw_payload"),
                  sa.column("received_at"), sa.column("protocol"))
absences = sa.table("openadr_absences", sa.column("vtn_id"), sa.column("event_id"), sa.column("absent_since"),
                    sa.column("withdrawn_at"))


def upgrade() -> None:
    op.create_table(
        "openadr_absences",
        sa.Column("vtn_id", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("absent_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("openadr_ven_state") as batch:
        batch.add_column(sa.Column("open_poll", sa.String(64), nullable=True))
        batch.add_column(sa.Column("last_resync_at", sa.DateTime(timezone=True), nullable=True))
    tombstone = sa.and_(events.c.protocol == "3.0.1", events.c.raw_payload == OLD_TOMBSTONE)
    latest = (sa.select(events.c.vtn_id, events.c.event_id, sa.func.max(events.c.received_at),
                        sa.func.max(events.c.received_at))
              .where(tombstone).group_by(events.c.vtn_id, events.c.event_id))
    op.execute(absences.insert().from_select(["vtn_id", "event_id", "absent_since", "withdrawn_at"], latest))
    op.execute(events.delete().where(tombstone))


def downgrade() -> None:
    with op.batch_alter_table("openadr_ven_state") as batch:
        batch.drop_column("last_resync_at")
        batch.drop_column("open_poll")
    op.drop_table("openadr_absences")
