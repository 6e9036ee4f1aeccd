"""Shared fixtures: the real PostgreSQL and RabbitMQ of this machine, a migrated store, the bundled site.

Under CI=true a test whose service is missing fails instead of skipping, so a green CI means it really ran.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from cariflex_pipeline.defs.resources import forget_ready_stores
from cariflex_pipeline.site_model import Site, load_site
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline.store.migrate import alembic_config

POSTGRES_ADMIN_URL = os.environ.get(
    "CARIFLEX_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
AMQP_URL = os.environ.get("CARIFLEX_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> None:
    """Skip locally, fail under CI, when a service a test needs is not there."""
    if _reachable(url, default_port):
        return
    host = urlsplit(url).hostname
    message = f"{name} is not reachable at {host}:{urlsplit(url).port or default_port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: services are required)")
    pytest.skip(message)


def require_tool(name: str, why: str) -> str:
    """The path of a command a test needs: skip locally, fail under CI, when it is not installed."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed ({why})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the project installs what its tests need)")
    pytest.skip(message)


@contextmanager
def scratch_postgres_database(prefix: str) -> Iterator[str]:
    """A new empty database on the real PostgreSQL, dropped when the block ends."""
    require_service("PostgreSQL", POSTGRES_ADMIN_URL, 5432)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the real PostgreSQL for this test session, dropped at the end."""
    with scratch_postgres_database("cariflex_test") as url:
        yield url


@pytest.fixture(scope="session")
def amqp_url() -> str:
    require_service("RabbitMQ", AMQP_URL, 5672)
    return AMQP_URL


@pytest.fixture(scope="session")
def site() -> Site:
    return load_site()


def _fresh_postgres_schema(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    # The store resource migrates a URL once per process; the schema it migrated is gone.
    forget_ready_stores()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database, on SQLite and on the real PostgreSQL (a fresh schema of the session's)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    url = request.getfixturevalue("postgres_url")
    _fresh_postgres_schema(url)
    return url


def migrated_to(url: str, revision: str) -> Engine:
    """An engine on `url` with the store's migrations applied up to `revision` only (a store as older code left it)."""
    engine = TimeSeriesStore(url).engine
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return engine


@pytest.fixture
def store(empty_database_url: str, site: Site) -> Iterator[TimeSeriesStore]:
    """A migrated store with the site's sensors, empty of beliefs, on SQLite and on the real PostgreSQL."""
    timeseries_store = TimeSeriesStore(empty_database_url)
    timeseries_store.migrate()
    timeseries_store.register_sensors(site.sensors)
    yield timeseries_store
    timeseries_store.engine.dispose()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 (its own CA), made by openssl."""
    require_tool("openssl", "to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-addext",
                    "basicConstraints=critical,CA:TRUE", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key
