"""OpenADR tables, declared on the store's metadata and created by the `0002_openadr`, `0007_openadr_absences` and
`0010_openadr_sites` Alembic revisions.

- `openadr_events`: every event version as a site received it (site, VTN, event id, modification number, raw
  payload, received at) for audit, with what it did there: the time range and sensors it covered, the number of
  values written. Keyed by site: each site ingests every event for itself with its own mappings, so one site's
  stored version never makes another skip the event as "already stored".
- `openadr_ven_state`: per VTN URL and VEN name (not per site: sites sharing a VEN name are one VEN at the VTN,
  registered once, polled once; docs/fleet.md), the VEN's registration (venID, registrationID), the poll
  frequency the VTN asked for, and the time of the last poll, so a restarted process carries on without
  re-registering; the poll whose events are not known to be committed yet (`open_poll`) and the last full
  resync, so that a crash between poll and commit costs one tick, not the change.
- `openadr_absences`: per site (each site lists with its own 3.0.1 targets), events a complete listing no longer
  holds, since when, and when their values were withdrawn; a row goes when the event is listed again (its
  values come back if they were withdrawn).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Float, Index, Integer, String, Table, Text, UniqueConstraint

from cariflex_pipeline.store.schema import metadata

openadr_events = Table(
    "openadr_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(63), nullable=False),
    Column("vtn_id", String(200), nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("modification_number", BigInteger, nullable=False),
    Column("protocol", String(10), nullable=False),
    Column("program", String(400), nullable=True),
    Column("status", String(40), nullable=False),
    Column("raw_payload", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("covered_start", DateTime(timezone=True), nullable=True),
    Column("covered_end", DateTime(timezone=True), nullable=True),
    Column("sensor_ids", String(200), nullable=False, server_default=""),
    Column("values_written", Integer, nullable=False, server_default="0"),
    UniqueConstraint("site_id", "vtn_id", "event_id", "modification_number", name="uq_openadr_events_version"),
    Index("ix_openadr_events_vtn_event", "site_id", "vtn_id", "event_id"),
)

openadr_ven_state = Table(
    "openadr_ven_state",
    metadata,
    Column("vtn_url", String(500), primary_key=True),
    Column("ven_name", String(200), primary_key=True),
    Column("protocol", String(10), nullable=False),
    Column("vtn_id", String(200), nullable=True),
    Column("ven_id", String(200), nullable=True),
    Column("registration_id", String(200), nullable=True),
    Column("poll_freq_seconds", Float, nullable=True),
    Column("last_poll_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("open_poll", String(64), nullable=True),
    Column("last_resync_at", DateTime(timezone=True), nullable=True),
)

openadr_absences = Table(
    "openadr_absences",
    metadata,
    Column("site_id", String(63), primary_key=True),
    Column("vtn_id", String(200), primary_key=True),
    Column("event_id", String(200), primary_key=True),
    Column("absent_since", DateTime(timezone=True), nullable=False),
    Column("withdrawn_at", DateTime(timezone=True), nullable=True),
)
