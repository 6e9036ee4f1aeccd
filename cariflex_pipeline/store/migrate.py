"""Alembic, driven from code: the store migrates itself, and `python -m cariflex_pipeline.store` does it by hand."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Not Alembic's default name: Dagster's own PostgreSQL storage keeps an `alembic_version` table too, and the
# two may share one database.
VERSION_TABLE = "cariflex_alembic_version"
# Any fixed number: serializes concurrent migrations (parallel Dagster steps) on PostgreSQL.
_MIGRATION_LOCK_ID = 7_146_023


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade_to_head(engine: Engine) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def current_revisions(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_heads())
