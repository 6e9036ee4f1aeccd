"""`insert_rows` (a text COPY on PostgreSQL, an executemany on SQLite) stores exactly the rows it is given, on both
stores, and fails as an execute fails; `0011_lz4_payloads` compresses new audit payloads with lz4 where it can."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError

from cariflex_pipeline.openadr.tables import openadr_events
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline.store.bulk import insert_rows
from cariflex_pipeline_tests.conftest import migrated_to

RECEIVED = datetime(2027, 1, 2, 4, 30, 15, 123456, tzinfo=UTC)
# what COPY's text format has to escape, and what it must not mistake for NULL
_awkward_text = st.lists(st.sampled_from(["a", "é", "\\", "\t", "\n", "\r", "N", "\\N", " ", "€", "𝄞"]),
                         max_size=12).map("".join)


def _row(event_id: str, raw_payload: str, program: str | None) -> dict:
    return {"site_id": "", "vtn_id": "vtn", "event_id": event_id, "modification_number": 2**62,
            "protocol": "3.0.1", "program": program, "status": "active", "raw_payload": raw_payload,
            "received_at": RECEIVED, "covered_start": None, "covered_end": RECEIVED, "sensor_ids": "",
            "values_written": 0}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(_awkward_text, min_size=1, max_size=5), program=st.none() | _awkward_text)
def test_rows_come_back_exactly_as_given(store: TimeSeriesStore, payloads: list[str], program: str | None):
    rows = [_row(f"e{number}", payload, program) for number, payload in enumerate(payloads)]
    with store.transaction() as connection:
        connection.execute(delete(openadr_events))
        insert_rows(connection, openadr_events, rows)
    with store.engine.connect() as connection:
        stored = connection.execute(select(openadr_events).order_by(openadr_events.c.id)).mappings().all()
    assert [(row["event_id"], row["raw_payload"], row["program"], row["site_id"], row["sensor_ids"],
             row["modification_number"], row["covered_start"]) for row in stored] == [
        (row["event_id"], row["raw_payload"], row["program"], "", "", 2**62, None) for row in rows]
    assert {row["received_at"].replace(tzinfo=UTC) for row in stored} == {RECEIVED}


def test_a_duplicate_key_is_sqlalchemy_integrity_error(store: TimeSeriesStore):
    """As from an execute: ingestion takes IntegrityError for "a concurrent run logged this version first"."""
    with store.transaction() as connection:
        insert_rows(connection, openadr_events, [_row("e", "{}", None)])
    with pytest.raises(IntegrityError), store.transaction() as connection:
        insert_rows(connection, openadr_events, [_row("f", "{}", None), _row("e", "{}", None)])
    with store.engine.connect() as connection:  # all rows or none
        assert connection.execute(select(openadr_events.c.event_id)).scalars().all() == ["e"]


@pytest.mark.parametrize("empty_database_url", ["postgres"], indirect=True)  # SQLite compresses nothing
def test_audit_payloads_are_compressed_with_lz4_where_postgresql_has_it(empty_database_url: str):
    engine = migrated_to(empty_database_url, "0010_openadr_sites")
    assert _compression(engine) == ""  # the server's default, pglz
    migrated_to(empty_database_url, "0011_lz4_payloads")
    with engine.connect() as connection:
        has_lz4 = connection.execute(text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                                          "WHERE name = 'default_toast_compression'")).scalar()
    assert _compression(engine) == ("l" if has_lz4 else "")
    assert has_lz4  # this machine's PostgreSQL 15 (Debian) has it: the branch above that matters is taken


def _compression(engine) -> str:
    with engine.connect() as connection:
        return connection.execute(text("SELECT attcompression FROM pg_attribute WHERE attname = 'raw_payload' "
                                       "AND attrelid = 'openadr_events'::regclass")).scalar()
