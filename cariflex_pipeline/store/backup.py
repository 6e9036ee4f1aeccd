"""Backups of the store (and of the Dagster instance's database), each a folder with a manifest of checksums.

    DEST/20261202T031500Z/
        manifest.json       what is here: files with size and SHA-256, the store's revision and row counts
        store.dump          PostgreSQL: pg_dump custom format   (SQLite: store.sqlite, by the online backup API)
        instance.dump       the Dagster instance's PostgreSQL database, when it has one
        files/...           the site file and the deployment configuration

A backup is written into `DEST/.<name>.partial` and renamed when every file is written and checked: a folder
without that prefix holds a whole backup. Whatever fails (a full or read-only target, a dump that stops halfway)
removes the partial folder and raises BackupError; earlier backups are never touched by a failed one.
`prune` keeps the newest backup of each of the last N days and M ISO weeks. Restoring is `restore.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import URL

from cariflex_pipeline.site_model import default_site_file
from cariflex_pipeline.store.engine import (
    StoreUnavailableError,
    check_connection,
    create_store_engine,
    describe_url,
    parse_database_url,
)
from cariflex_pipeline.store.migrate import VERSION_TABLE

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_STAMP = "%Y%m%dT%H%M%SZ"


class BackupError(RuntimeError):
    """A backup or restore that did not happen; the message says what, where and why (never a password)."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: dict
    seconds: float

    @property
    def size_bytes(self) -> int:
        return sum(entry["bytes"] for entry in self.manifest["files"].values())


def backup(database_url: str, dest: Path, *, instance_url: str | None = None, files: Sequence[Path] = (),
           now: datetime | None = None) -> BackupResult:
    """Back up the store at `database_url` (and the instance database at `instance_url`) into a new folder of
    `dest`, with copies of `files`."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    name = now.astimezone(UTC).strftime(_STAMP)
    final = dest / name
    partial = dest / f".{name}.partial"
    try:
        dest.mkdir(parents=True, exist_ok=True)
        if final.exists():
            raise BackupError(f"backup {final} exists already; nothing written")
        partial.mkdir()
        store_file, state = _dump(database_url, partial, "store")
        written = [store_file]
        if instance_url:
            written.append(_dump(instance_url, partial, "instance")[0])
        for source in files:
            target = partial / "files" / source.name
            target.parent.mkdir(exist_ok=True)
            shutil.copy2(source, target)
            written.append(target)
        manifest = {
            "format": FORMAT_VERSION,
            "created_at": now.astimezone(UTC).isoformat(),
            "store": _describe(database_url),
            "backend": parse_database_url(database_url).get_backend_name(),
            "revision": state.revision,
            "rows": state.rows,
            "instance": _describe(instance_url) if instance_url else None,
            "files": {str(path.relative_to(partial)): {"bytes": path.stat().st_size, "sha256": sha256(path)}
                      for path in written},
        }
        manifest_path = partial / MANIFEST
        manifest_path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        _fsync(manifest_path)
        partial.rename(final)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise BackupError(f"backup into {dest} failed: {error.strerror or error} "
                          f"({error.filename or 'writing the backup'}); nothing kept of it") from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return BackupResult(final, manifest, time.monotonic() - started)


def instance_database_url() -> str | None:
    """The Dagster instance's PostgreSQL database, from the variables deploy/production/dagster.yaml reads
    (None when $DAGSTER_PG_HOST is unset: the instance is on SQLite under $DAGSTER_HOME, in its files)."""
    host = os.environ.get("DAGSTER_PG_HOST")
    if not host:
        return None
    return URL.create(
        "postgresql+psycopg2", username=os.environ.get("DAGSTER_PG_USER"),
        password=os.environ.get("DAGSTER_PG_PASSWORD"), host=host,
        port=int(os.environ.get("DAGSTER_PG_PORT") or 5432), database=os.environ.get("DAGSTER_PG_DB"),
    ).render_as_string(hide_password=False)


def configuration_files() -> list[Path]:
    """What a backup keeps beside the databases: the site file and the instance's dagster.yaml (the secrets in
    the environment or an .env file are not copied: they belong in the operator's secret store)."""
    candidates = [default_site_file()]
    if os.environ.get("DAGSTER_HOME"):
        candidates.append(Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml")
    return [path for path in candidates if path.is_file()]


def backups(dest: Path) -> list[Path]:
    """The whole backups in `dest` (folders named by their time, with a manifest), oldest first."""
    if not dest.is_dir():
        return []
    return sorted(path for path in dest.iterdir()
                  if path.is_dir() and _is_stamp(path.name) and (path / MANIFEST).is_file())


def prune(dest: Path, daily: int, weekly: int) -> list[Path]:
    """Delete the backups that are neither the newest of one of the last `daily` days nor of one of the last
    `weekly` ISO weeks (days and weeks that have a backup). Returns what was deleted."""
    if daily < 1:
        raise BackupError(f"retention must keep at least one daily backup, got {daily}")
    newest_first = list(reversed(backups(dest)))
    keep: set[Path] = set()
    for period, count in ((_day, daily), (_week, weekly)):
        seen: list[str] = []
        for path in newest_first:
            key = period(path)
            if key not in seen:
                seen.append(key)
                if len(seen) <= count:
                    keep.add(path)
    removed = [path for path in newest_first if path not in keep]
    for path in removed:
        shutil.rmtree(path)
    return removed


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoreState:
    """What a dump holds: the schema revision and the rows per table (Alembic's version table included)."""

    revision: str | None
    rows: dict[str, int]


def store_state(connection: Connection) -> StoreState:
    names = sorted(inspect(connection).get_table_names())
    rows = {name: connection.scalar(text(f'SELECT count(*) FROM "{name}"')) for name in names}
    revision = connection.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}")) if VERSION_TABLE in names \
        else None
    return StoreState(revision, rows)


def libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password, and the environment that carries it (PGPASSWORD): a
    password on a command line is visible to every user of the machine."""
    conninfo = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    return conninfo, env


def run_tool(command: list[str], env: dict[str, str], what: str, secret: str | None) -> None:
    """Run pg_dump or pg_restore; BackupError with the end of its stderr (the password scrubbed) on failure."""
    try:
        finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BackupError(f"{what}: {command[0]} is not installed (PostgreSQL's client tools)") from None
    if finished.returncode != 0:
        reason = " ".join(finished.stderr.strip().splitlines()[-3:]) or f"exit status {finished.returncode}"
        if secret:
            reason = reason.replace(secret, "***")
        raise BackupError(f"{what} failed: {reason}")


def _dump(database_url: str, folder: Path, name: str) -> tuple[Path, StoreState]:
    """Dump one database into `folder`; its state is read from exactly what was dumped."""
    url = parse_database_url(database_url)
    if url.get_backend_name() == "sqlite":
        target = folder / f"{name}.sqlite"
        if not url.database or not Path(url.database).is_file():
            raise BackupError(f"backup of {describe_url(url)} failed: no such database file")
        copy_sqlite(Path(url.database), target, f"backup of {describe_url(url)}")
        return target, state_of(f"sqlite:///{target}")
    target = folder / f"{name}.dump"
    conninfo, env = libpq(url)
    engine = create_store_engine(database_url)
    try:
        check_connection(engine)
        # pg_dump reads the snapshot this transaction exports, so the counts describe the dump exactly, however
        # much the pipeline writes meanwhile
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection, \
                connection.begin():
            snapshot = connection.scalar(text("SELECT pg_export_snapshot()"))
            state = store_state(connection)
            run_tool(["pg_dump", "--format=custom", "--no-owner", f"--snapshot={snapshot}", f"--file={target}",
                      f"--dbname={conninfo}"], env, f"pg_dump of {describe_url(url)}",
                     url.password and str(url.password))
    except StoreUnavailableError as error:
        raise BackupError(f"backup failed: {error}") from None
    finally:
        engine.dispose()
    return target, state


def copy_sqlite(source: Path, target: Path, what: str) -> None:
    """SQLite's online backup API: a consistent copy, while the pipeline may go on writing to `source`."""
    copy_from = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        copy_to = sqlite3.connect(target)
        try:
            copy_from.backup(copy_to)
        finally:
            copy_to.close()
    except sqlite3.Error as error:
        raise BackupError(f"{what} failed writing {target}: {error}") from None
    finally:
        copy_from.close()


def state_of(database_url: str) -> StoreState:
    engine = create_store_engine(database_url)
    try:
        with engine.connect() as connection:
            return store_state(connection)
    finally:
        engine.dispose()


def _describe(database_url: str) -> str:
    return describe_url(parse_database_url(database_url))


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _is_stamp(name: str) -> bool:
    try:
        datetime.strptime(name, _STAMP)
    except ValueError:
        return False
    return True


def _created(path: Path) -> datetime:
    return datetime.strptime(path.name, _STAMP).replace(tzinfo=UTC)


def _day(path: Path) -> str:
    return _created(path).date().isoformat()


def _week(path: Path) -> str:
    year, week, _ = _created(path).isocalendar()
    return f"{year}-W{week:02d}"
