"""Dialect-specific bulk writes inside an open transaction: upserts of normalized beliefs, and `insert_rows`.

PostgreSQL: a binary COPY into a temporary staging table, then an optimistic plain INSERT (new history, the
common case of a backfill, costs half of an INSERT ... ON CONFLICT); when any staged key already exists, that
INSERT is rolled back to a savepoint and one INSERT ... ON CONFLICT DO UPDATE merges instead. The COPY buffer is
built with numpy in PostgreSQL's binary format, so no value is formatted as text. SQLite: an executemany of
INSERT ... ON CONFLICT.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import psycopg2
import psycopg2.errors
from sqlalchemy import Connection, Table, insert
from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from cariflex_pipeline.store.schema import BELIEF_KEY, beliefs

_PG_EPOCH = pd.Timestamp("2000-01-01", tz="UTC")  # binary timestamptz: microseconds since this instant

_PG_STAGE = """
CREATE TEMPORARY TABLE beliefs_staging (
    sensor_id integer, event_start timestamptz, source_id integer, belief_time timestamptz,
    event_resolution_seconds integer, value double precision
) ON COMMIT DROP
"""

_PG_INSERT = """
INSERT INTO beliefs (sensor_id, event_start, source_id, belief_time, event_resolution_seconds, value)
SELECT sensor_id, event_start, source_id, belief_time, event_resolution_seconds, value
FROM beliefs_staging
"""

_PG_MERGE = _PG_INSERT + """
ON CONFLICT (sensor_id, event_start, source_id, belief_time) DO UPDATE
SET value = EXCLUDED.value, event_resolution_seconds = EXCLUDED.event_resolution_seconds
WHERE (beliefs.value, beliefs.event_resolution_seconds)
      IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.event_resolution_seconds)
"""

# One staged row in COPY BINARY layout: a field count, then (length, big-endian value) per field.
_PG_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("sensor_id_len", ">i4"), ("sensor_id", ">i4"),
        ("event_start_len", ">i4"), ("event_start", ">i8"),
        ("source_id_len", ">i4"), ("source_id", ">i4"),
        ("belief_time_len", ">i4"), ("belief_time", ">i8"),
        ("resolution_len", ">i4"), ("resolution", ">i4"),
        ("value_len", ">i4"), ("value", ">f8"),
    ]
)
_PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_PG_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)


def upsert_postgres(connection: Connection, rows: pd.DataFrame) -> None:
    """`rows`: normalized beliefs (`validation.normalize_beliefs`) with a `source_id` column."""
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        cursor.execute(_PG_STAGE)
        cursor.copy_expert("COPY beliefs_staging FROM STDIN WITH (FORMAT binary)", io.BytesIO(_copy_binary(rows)))
        cursor.execute("SAVEPOINT cariflex_plain_insert")
        try:
            cursor.execute(_PG_INSERT)
        except psycopg2.errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT cariflex_plain_insert")
            cursor.execute(_PG_MERGE)
        else:
            cursor.execute("RELEASE SAVEPOINT cariflex_plain_insert")
        # ON COMMIT DROP only drops it at the end of the transaction: a second write in the same store
        # transaction (site_measurements writes today and the day ahead) would find it still there
        cursor.execute("DROP TABLE beliefs_staging")
    finally:
        cursor.close()


def _copy_binary(rows: pd.DataFrame) -> bytes:
    packed = np.empty(len(rows), dtype=_PG_ROW)
    packed["fields"] = 6
    for name, size in (("sensor_id", 4), ("event_start", 8), ("source_id", 4), ("belief_time", 8),
                       ("resolution", 4), ("value", 8)):
        packed[f"{name}_len"] = size
    packed["sensor_id"] = rows["sensor_id"].to_numpy()
    packed["event_start"] = _pg_microseconds(rows["event_start"])
    packed["source_id"] = rows["source_id"].to_numpy()
    packed["belief_time"] = _pg_microseconds(rows["belief_time"])
    packed["resolution"] = rows["event_resolution_seconds"].to_numpy()
    packed["value"] = rows["value"].to_numpy()
    return _PG_COPY_HEADER + packed.tobytes() + _PG_COPY_TRAILER


def _pg_microseconds(times: pd.Series) -> np.ndarray:
    return ((times - _PG_EPOCH) // pd.Timedelta(microseconds=1)).to_numpy(dtype="int64")


def dialect_insert(dialect_name: str, table: Table) -> PostgresInsert | SqliteInsert:
    """An INSERT into `table` that takes ON CONFLICT clauses, in the store's dialect (PostgreSQL or SQLite)."""
    return postgres_insert(table) if dialect_name == "postgresql" else sqlite_insert(table)


_COPY_CHUNK = 1 << 20  # bytes per read of a COPY buffer (psycopg2's default, 8 KiB, reads megabytes in thousands)
_COPY_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT `rows` (dicts with the same keys) into `table` inside an open transaction.

    PostgreSQL: one text COPY, where an INSERT of batches of rows spent most of its time building statements and
    binding parameters (an OpenADR listing logs thousands of events of kilobytes each). A failure raises what an
    execute raises (SQLAlchemy's IntegrityError for a duplicate key...). SQLite: an executemany."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), rows)
        return
    columns = list(rows[0])
    lines = "\n".join("\t".join([_copy_text(row[column]) for column in columns]) for row in rows) + "\n"
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN WITH (FORMAT text, ENCODING 'UTF8')"
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        cursor.copy_expert(statement, io.BytesIO(lines.encode()), size=_COPY_CHUNK)
    except psycopg2.Error as error:
        raise DBAPIError.instance(statement, None, error, psycopg2.Error) from error
    finally:
        cursor.close()


def _copy_text(value: object) -> str:
    """`value` as COPY's text format reads it: NULL as \\N, backslash and line or tab breaks escaped."""
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value).translate(_COPY_TEXT_ESCAPES)


def upsert_sqlite(connection: Connection, rows: pd.DataFrame) -> None:
    """`rows`: normalized beliefs (`validation.normalize_beliefs`) with a `source_id` column."""
    records = [
        {
            "sensor_id": int(sensor_id),
            "event_start": event_start.to_pydatetime().replace(tzinfo=None),
            "source_id": int(source_id),
            "belief_time": belief_time.to_pydatetime().replace(tzinfo=None),
            "event_resolution_seconds": int(resolution),
            "value": float(value),
        }
        for sensor_id, event_start, source_id, belief_time, resolution, value in zip(
            rows["sensor_id"],
            rows["event_start"],
            rows["source_id"],
            rows["belief_time"],
            rows["event_resolution_seconds"],
            rows["value"],
            strict=True,
        )
    ]
    statement = sqlite_insert(beliefs)
    statement = statement.on_conflict_do_update(
        index_elements=list(BELIEF_KEY),
        set_={
            "value": statement.excluded.value,
            "event_resolution_seconds": statement.excluded.event_resolution_seconds,
        },
    )
    connection.execute(statement, records)
