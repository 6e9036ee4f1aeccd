"""Tables of the time-series store, as SQLAlchemy Core metadata.

Domain modules (OpenADR, dispatch) declare their own tables on the same `metadata`; Alembic revisions under
`migrations/versions/` create them. Every row of a site (sessions, outbox entries, S2 rows and their histories)
carries its portfolio site id in `site_id` (SITE_ID_LENGTH, a slug); "" is a row of a station or device that no
site of the portfolio has (`NO_SITE`). Times are stored as UTC `timestamptz` (naive UTC on SQLite).
"""

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

SITE_ID_LENGTH = 63  # a portfolio site id: a slug of at most 63 characters (site_model.portfolio.SiteId)
NO_SITE = ""  # the site_id of a row whose station, device or sensor no site of the portfolio has

sensors = Table(
    "sensors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("unit", String(40), nullable=False),
    Column("resolution_seconds", Integer, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    # the portfolio site that owns the sensor; NULL: shared by every site (weather, prices, DSO signals); "": a
    # sensor the portfolio places in no site (registered without one, or no longer in the file)
    Column("site_id", String(63)),
    Index("ix_sensors_site", "site_id"),
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

