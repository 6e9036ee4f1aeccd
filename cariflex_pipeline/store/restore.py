"""Restoring a backup (`backup.py`) into an empty database, checked before and after.

Before anything is written: the manifest reads, every file matches its size and SHA-256, the backup's schema
revision is one this code knows, the backend matches, and the target holds no table at all (a restore never
overwrites). After: the restored rows per table are those the manifest counted, and the schema is migrated
to this code's head.
"""

from __future__ import annotations

import json
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect

from cariflex_pipeline.store.backup import (
    MANIFEST,
    BackupError,
    StoreState,
    copy_sqlite,
    libpq,
    run_tool,
    sha256,
    state_of,
)
from cariflex_pipeline.store.engine import create_store_engine, describe_url, parse_database_url
from cariflex_pipeline.store.migrate import alembic_config, upgrade_to_head


def restore(backup_path: Path, database_url: str) -> StoreState:
    """Restore the store of the backup at `backup_path` (its folder, or a file in it) into the empty database
    at `database_url`; returns what the restored store holds."""
    folder = backup_path if backup_path.is_dir() else backup_path.parent
    manifest = read_manifest(folder)
    check_files(folder, manifest)
    url = parse_database_url(database_url)
    where = describe_url(url)
    if url.get_backend_name() != manifest.get("backend"):
        raise BackupError(f"backup {folder} is of a {manifest.get('backend')} store; {where} is not")
    _check_revision(folder, manifest.get("revision"))
    _require_empty(database_url, where)
    if url.get_backend_name() == "sqlite":
        target = Path(url.database or "")
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_sqlite(folder / "store.sqlite", target, f"restore into {where}")
    else:
        conninfo, env = libpq(url)
        run_tool(["pg_restore", "--no-owner", "--exit-on-error", "--single-transaction", f"--dbname={conninfo}",
                  str(folder / "store.dump")], env, f"pg_restore into {where}", url.password and str(url.password))
    state = state_of(database_url)
    if state.rows != manifest["rows"]:
        differ = sorted(name for name in set(state.rows) | set(manifest["rows"])
                        if state.rows.get(name) != manifest["rows"].get(name))
        raise BackupError(f"restored into {where}, but the rows of {differ} differ from the backup's manifest")
    engine = create_store_engine(database_url)
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()
    return state


def read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except OSError as error:
        raise BackupError(f"backup {folder}: no readable {MANIFEST} ({error.strerror})") from None
    except ValueError:
        raise BackupError(f"backup {folder}: {MANIFEST} is not valid JSON (corrupt backup)") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict) \
            or not isinstance(manifest.get("rows"), dict):
        raise BackupError(f"backup {folder}: {MANIFEST} lacks its files or rows (corrupt backup)")
    return manifest


def check_files(folder: Path, manifest: dict) -> None:
    """Every file the manifest lists is there with its size and checksum."""
    for name, entry in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise BackupError(f"backup {folder}: {name} is missing")
        if path.stat().st_size != entry.get("bytes") or sha256(path) != entry.get("sha256"):
            raise BackupError(f"backup {folder}: {name} does not match its checksum (corrupt backup)")


def _check_revision(folder: Path, revision: str | None) -> None:
    if revision is None:
        raise BackupError(f"backup {folder}: the manifest names no schema revision")
    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        known = None
    if known is None:
        raise BackupError(f"backup {folder} has schema revision {revision!r}, unknown to this version of "
                          "cariflex_pipeline (a backup of a newer version?)")


def _require_empty(database_url: str, where: str) -> None:
    url = parse_database_url(database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return
    engine = create_store_engine(database_url)
    try:
        with engine.connect() as connection:
            tables = inspect(connection).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise BackupError(f"{where} is not empty ({len(tables)} tables, e.g. {sorted(tables)[0]!r}); "
                          "restore only into an empty database: nothing was written")

