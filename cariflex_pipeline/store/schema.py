"""Tables of the time-series store, as SQLAlchemy Core metadata.

Domain modules (OpenADR, dispatch) declare their own tables on the same `metadata`; Alembic revisions under
`migrations/versions/` create them. Times are stored as UTC `timestamptz` (naive UTC on SQLite).
"""

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

sensors = Table(
    "sensors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("unit", String(40), nullable=False),
    Column("resolution_seconds", Integer, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
)

data_sources = Table(
    "data_sources",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("type", String(60), nullable=False),
)

# One row per belief: what `source` believed at `belief_time` about the event starting at `event_start`.
# The primary key makes a rerun or an overlapping backfill an update, never a duplicate. No foreign keys:
# their per-row triggers cost two thirds of a bulk write; the store checks sensor ids against the registry
# before writing, and source ids come from its own upsert in the same transaction.
beliefs = Table(
    "beliefs",
    metadata,
    Column("sensor_id", Integer, primary_key=True),
    Column("event_start", DateTime(timezone=True), primary_key=True),
    Column("source_id", Integer, primary_key=True),
    Column("belief_time", DateTime(timezone=True), primary_key=True),
    Column("event_resolution_seconds", Integer, nullable=False),
    Column("value", Float(precision=53), nullable=False),
)

BELIEF_KEY = ("sensor_id", "event_start", "source_id", "belief_time")

