"""From a database URL to a SQLAlchemy engine, with errors that name the host and never the password."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

DATABASE_URL_ENV = "CARIFLEX_DATABASE_URL"
STORE_FILE_NAME = "cariflex_store.sqlite"


class StoreUnavailableError(RuntimeError):
    """The time-series database cannot be reached or the URL is unusable."""


def default_database_url() -> str:
    """CARIFLEX_DATABASE_URL, else a SQLite file under the Dagster home (./.dagster_home when unset)."""
    configured = os.environ.get(DATABASE_URL_ENV)
    if configured:
        return configured
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    return f"sqlite:///{dagster_home / STORE_FILE_NAME}"


def parse_database_url(database_url: str) -> URL:
    """Parse a URL; `postgresql://` means psycopg2 here (SQLAlchemy 2.1 would otherwise pick psycopg 3)."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise StoreUnavailableError("the database URL is not a valid SQLAlchemy URL") from None
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    if url.get_backend_name() not in {"postgresql", "sqlite"}:
        raise StoreUnavailableError(f"unsupported database backend {url.get_backend_name()!r}")
    return url


def describe_url(url: URL) -> str:
    """Where a URL points, safe to log: backend, host, port and database, never credentials."""
    if url.get_backend_name() == "sqlite":
        return f"sqlite file {url.database or ':memory:'}"
    return f"postgresql at {url.host or 'localhost'}:{url.port or 5432}/{url.database}"


def create_store_engine(database_url: str) -> Engine:
    url = parse_database_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def check_connection(engine: Engine) -> None:
    """Open one connection; on failure raise StoreUnavailableError naming the host, not the password."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
        password = engine.url.password
        if password:
            reason = reason.replace(str(password), "***")
        raise StoreUnavailableError(
            f"cannot reach the time-series database ({describe_url(engine.url)}): {reason}"
        ) from None


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
