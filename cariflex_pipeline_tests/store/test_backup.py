"""Backups and restores of the store, on SQLite and on the real PostgreSQL: a round trip of what the main job
wrote, table for table, and the faults an operator meets (full or unwritable target, a dump that stops halfway,
a corrupt backup, a restore into a database that is not empty)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import create_engine, inspect, text

from cariflex_pipeline.definitions import MAIN_JOB_NAME, defs
from cariflex_pipeline.site_model import load_site
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline.store.__main__ import main as store_cli
from cariflex_pipeline.store.backup import MANIFEST, BackupError, backup, backups, prune
from cariflex_pipeline.store.restore import check_files, read_manifest, restore
from cariflex_pipeline_tests.conftest import _fresh_postgres_schema, scratch_postgres_database


def url_of(store: TimeSeriesStore) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def fingerprints(url: str) -> dict[str, tuple[int, str]]:
    """Per table: its row count and a SHA-256 of every row, in a fixed order."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            result = {}
            for name in sorted(inspect(connection).get_table_names()):
                width = len(inspect(connection).get_columns(name))
                order = ", ".join(str(position) for position in range(1, width + 1))
                rows = connection.execute(text(f'SELECT * FROM "{name}" ORDER BY {order}')).all()
                result[name] = (len(rows), hashlib.sha256(repr([tuple(row) for row in rows]).encode()).hexdigest())
            return result
    finally:
        engine.dispose()


@pytest.fixture
def empty_database(store: TimeSeriesStore, tmp_path: Path) -> Iterator[str]:
    """A database of the store's backend with nothing in it."""
    if not store.is_postgres:
        yield f"sqlite:///{tmp_path / 'restored' / 'store.sqlite'}"
        return
    with scratch_postgres_database("cariflex_restore") as url:
        yield url


def run_main_job(store: TimeSeriesStore, monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("CARIFLEX_DATABASE_URL", url_of(store))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    today = datetime.now(load_site().tz).strftime("%Y-%m-%d")
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(MAIN_JOB_NAME).execute_in_process(instance=instance, partition_key=today)
    assert result.success


def test_what_the_main_job_wrote_comes_back_table_for_table(store, empty_database, monkeypatch, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "dagster.yaml", home)  # as scripts/env.sh does
    run_main_job(store, monkeypatch, home)
    before = fingerprints(url_of(store))
    assert before["beliefs"][0] > 2000  # the measurements of today and the day ahead, at least

    dest = tmp_path / "backups"
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("store_backup").execute_in_process(
            instance=instance, run_config={"ops": {"back_up_store": {"config": {"dest": str(dest)}}}})
    assert result.success
    [output] = [event for event in result.all_events if event.event_type_value == "STEP_OUTPUT"]
    metadata = output.step_output_data.metadata
    [folder] = backups(dest)
    assert metadata["path"].value == str(folder)
    assert metadata["size (MB)"].value > 0 and metadata["rows"].value == sum(count for count, _ in before.values())
    assert sorted(read_manifest(folder)["files"]) == sorted(
        ["store.dump" if store.is_postgres else "store.sqlite", "files/martinique.yaml", "files/dagster.yaml"])

    assert store_cli(["store", "restore", str(folder), empty_database]) == 0
    assert fingerprints(empty_database) == before


def test_a_restore_never_writes_into_a_database_that_is_not_empty(store, tmp_path):
    [folder] = [backup(url_of(store), tmp_path / "backups").path]
    store.write_beliefs(_one_belief(), source="meter")
    before = fingerprints(url_of(store))
    with pytest.raises(BackupError, match=r"is not empty .* nothing was written"):
        restore(folder, url_of(store))
    assert fingerprints(url_of(store)) == before


def test_a_corrupt_backup_is_refused_before_anything_is_written(store, empty_database, tmp_path):
    folder = backup(url_of(store), tmp_path / "backups").path
    dump = next(path for path in folder.iterdir() if path.name.startswith("store."))
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=f"{dump.name} does not match its checksum"):
        restore(folder, empty_database)
    (folder / MANIFEST).write_text("{not json", encoding="utf-8")
    with pytest.raises(BackupError, match="not valid JSON"):
        restore(folder, empty_database)
    assert not _has_tables(empty_database)


def test_a_full_target_keeps_the_earlier_backup_and_no_partial_one(store, tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    first_size = _backup_size(store, tmp_path / "sizing")
    # room for one backup and a half: the second runs out of space midway
    _mount_tmpfs(mount, int(first_size * 1.5) + 16 * 1024)
    try:
        first = backup(url_of(store), mount, now=datetime(2026, 12, 1, 3, tzinfo=UTC)).path
        with pytest.raises(BackupError, match=r"No space left on device|disk is full"):
            backup(url_of(store), mount, now=datetime(2026, 12, 2, 3, tzinfo=UTC))
        assert backups(mount) == [first] and sorted(path.name for path in mount.iterdir()) == [first.name]
        check_files(first, read_manifest(first))  # untouched
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_target_that_cannot_be_written_is_a_clear_error(store, tmp_path):
    not_a_folder = tmp_path / "backups"
    not_a_folder.write_text("a file where the backup folder should be", encoding="utf-8")
    with pytest.raises(BackupError, match=f"backup into {not_a_folder} failed"):
        backup(url_of(store), not_a_folder)
    assert not_a_folder.read_text(encoding="utf-8").startswith("a file")


def test_a_dump_that_stops_halfway_leaves_nothing_and_names_the_reason(postgres_url, tmp_path, monkeypatch):
    # PostgreSQL only: SQLite's backup API copies in one call, and its failures are the full-target test's
    _fresh_postgres_schema(postgres_url)
    store = TimeSeriesStore(postgres_url)
    store.migrate()
    dest = tmp_path / "backups"
    earlier = backup(url_of(store), dest, now=datetime(2026, 12, 1, 3, tzinfo=UTC)).path
    # A stand-in for pg_dump losing its disk or connection midway, which the real one cannot be made to do on
    # cue: it writes half a dump, then fails as pg_dump does.
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "pg_dump"
    fake.write_text('#!/bin/sh\nfor a; do case "$a" in --file=*) printf PGDMP > "${a#--file=}";; esac; done\n'
                    'echo "pg_dump: error: could not write to output file: connection lost" >&2\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(BackupError, match=r"pg_dump of postgresql at .* failed: .*connection lost"):
        backup(url_of(store), dest, now=datetime(2026, 12, 2, 3, tzinfo=UTC))
    assert backups(dest) == [earlier] and sorted(path.name for path in dest.iterdir()) == [earlier.name]


def test_a_password_reaches_pg_dump_through_the_environment_and_never_a_message(postgres_url, tmp_path):
    secret = "s3cret-Pa55"
    url = postgres_url.replace("postgres@", f"postgres:{secret}@").rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(BackupError) as refused:
        backup(url, tmp_path / "backups")
    assert "no_such_database" in str(refused.value) and secret not in str(refused.value)
    assert not backups(tmp_path / "backups")


def test_the_instance_database_is_dumped_beside_the_store_when_it_is_on_postgres(postgres_url, tmp_path,
                                                                                  monkeypatch):
    from sqlalchemy.engine import make_url

    instance = make_url(postgres_url)
    store = TimeSeriesStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    store.migrate()
    for name, value in (("DAGSTER_PG_HOST", instance.host), ("DAGSTER_PG_PORT", str(instance.port or 5432)),
                        ("DAGSTER_PG_USER", instance.username), ("DAGSTER_PG_DB", instance.database)):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert store_cli(["store", "backup", str(tmp_path / "backups"), url_of(store)]) == 0
    [folder] = backups(tmp_path / "backups")
    manifest = read_manifest(folder)
    assert "instance.dump" in manifest["files"] and manifest["instance"].endswith(f"/{instance.database}")
    assert (folder / "instance.dump").read_bytes().startswith(b"PGDMP")  # pg_dump's custom format


def test_retention_keeps_the_newest_of_each_recent_day_and_week(tmp_path):
    dest = tmp_path / "backups"
    start = datetime(2026, 11, 1, 3, tzinfo=UTC)
    made = []
    for day in range(30):
        for hour in (0, 12):  # two a day: only the later one of a day may be kept
            moment = start + timedelta(days=day, hours=hour)
            folder = dest / moment.strftime("%Y%m%dT%H%M%SZ")
            folder.mkdir(parents=True)
            (folder / MANIFEST).write_text("{}", encoding="utf-8")
            made.append(folder)
    (dest / ".20261201T030000Z.partial").mkdir()  # a failed backup's leftovers are not a backup

    removed = prune(dest, daily=3, weekly=3)

    kept = [path.name for path in backups(dest)]
    # the later backup of each of the last three days (Nov 28-30), and the newest of each of the last three ISO
    # weeks: Monday Nov 30 (kept already), Nov 23-29 (Sunday the 29th, kept already), Nov 16-22 (the 22nd)
    assert kept == ["20261122T150000Z", "20261128T150000Z", "20261129T150000Z", "20261130T150000Z"]
    assert len(removed) == len(made) - 4
    with pytest.raises(BackupError, match="at least one daily"):
        prune(dest, daily=0, weekly=4)


def _one_belief():
    import pandas as pd

    moment = pd.Timestamp("2026-12-01T12:00Z")
    return pd.DataFrame({"sensor_id": [41], "event_start": [moment], "value": [1.5], "belief_time": [moment]})


def _has_tables(url: str) -> bool:
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return False
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return bool(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def _backup_size(store: TimeSeriesStore, dest: Path) -> int:
    result = backup(url_of(store), dest)
    size = result.size_bytes
    shutil.rmtree(dest)
    return size


def _mount_tmpfs(path: Path, size_bytes: int) -> None:
    """A small file system of our own to fill (root can mount one here; CI runs as root on this machine)."""
    finished = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
                              capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        message = f"cannot mount a tmpfs to fill: {finished.stderr.strip()}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
