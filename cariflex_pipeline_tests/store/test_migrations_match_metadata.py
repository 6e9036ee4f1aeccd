"""Drift guard: the Alembic head creates exactly the tables the code declares, on SQLite and on PostgreSQL.

Every table is declared twice, once on `cariflex_pipeline.store.schema.metadata` (what the code reads and writes)
and once in a migration (what a database gets); autogenerate's comparison of a migrated store against the
metadata (tables, columns, types, nullability, server defaults, indexes, unique constraints) must find nothing,
or one of the two has drifted.
"""

from __future__ import annotations

import re
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, DefaultClause, Engine, MetaData

# Imported for their side effect: the domain modules declare their tables on the shared metadata (one left out
# shows up as a table the database has and the metadata lacks).
import cariflex_pipeline.dispatch.tables
import cariflex_pipeline.openadr.tables
import cariflex_pipeline.s2.tables  # noqa: F401
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline.store.migrate import VERSION_TABLE
from cariflex_pipeline.store.schema import metadata


def _not_the_version_table(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    # the store's own Alembic bookkeeping table is in the database but, rightly, not in the metadata
    return not (type_ == "table" and name == VERSION_TABLE)


def _unparenthesized(sql: str | None) -> str | None:
    return None if sql is None else re.sub(r"^\((.*)\)$", r"\1", sql)


def _sqlite_defaults_differ(context: MigrationContext, inspected: Column, declared: Column,
                            inspected_default: str | None, declared_default: DefaultClause | None,
                            rendered_declared_default: str | None) -> bool | None:
    # Alembic's own SQLite comparison reports every empty-string default as changed (it unquotes only non-empty
    # literals, and a table rebuilt by a batch migration reflects "" as ('')), so compare SQL with SQL here: a
    # declared plain string is the literal it becomes in DDL. None leaves PostgreSQL to Alembic, which asks the
    # server itself.
    if context.dialect.name != "sqlite":
        return None
    declared_sql = rendered_declared_default
    if declared_default is not None and isinstance(declared_default.arg, str):
        declared_sql = "'" + declared_default.arg.replace("'", "''") + "'"
    return _unparenthesized(inspected_default) != _unparenthesized(declared_sql)


def differences(engine: Engine, declared: MetaData) -> list[Any]:
    """What autogenerate would write to turn the database at `engine` into `declared`."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": _sqlite_defaults_differ,
                              "include_object": _not_the_version_table},
        )
        return compare_metadata(context, declared)


def test_the_migrated_store_matches_the_metadata(store: TimeSeriesStore) -> None:
    assert differences(store.engine, metadata) == []


def test_a_changed_server_default_is_drift(store: TimeSeriesStore) -> None:
    # the SQLite default comparison above is ours: it must still see a default that really differs
    changed = MetaData()
    for table in metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["sensors"].c.description.server_default.arg = "none"
    # a column's changes come as a list of (op, schema, table, column, ...) tuples
    column_changes = [change[:4] for found in differences(store.engine, changed) if isinstance(found, list)
                      for change in found]
    assert column_changes == [("modify_default", None, "sensors", "description")]
