"""The store by hand.

    python -m cariflex_pipeline.store [migrate] [URL]           migrate and register the site's sensors
    python -m cariflex_pipeline.store backup DEST [URL]         a new backup folder in DEST (see backup.py)
    python -m cariflex_pipeline.store restore BACKUP URL        into an empty database (see restore.py)
    python -m cariflex_pipeline.store prune DEST [--daily N] [--weekly M]

URL defaults to $CARIFLEX_DATABASE_URL (else the embedded SQLite store). A backup also takes the Dagster
instance's PostgreSQL database when $DAGSTER_PG_HOST names one, the site file and the instance's dagster.yaml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cariflex_pipeline.site_model import load_portfolio
from cariflex_pipeline.store import TimeSeriesStore, default_database_url
from cariflex_pipeline.store.backup import BackupError, backup, configuration_files, instance_database_url, prune
from cariflex_pipeline.store.restore import restore

COMMANDS = ("migrate", "backup", "restore", "prune")


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in COMMANDS:
        argv = [argv[0], "migrate", *argv[1:]]  # the bare form, as the store's first versions took it
    parser = argparse.ArgumentParser(prog="python -m cariflex_pipeline.store", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    migrate_parser = commands.add_parser("migrate", help="migrate the store and register the site's sensors")
    migrate_parser.add_argument("url", nargs="?", default=None)
    backup_parser = commands.add_parser("backup", help="back up the store into a new folder of DEST")
    backup_parser.add_argument("dest", type=Path)
    backup_parser.add_argument("url", nargs="?", default=None)
    restore_parser = commands.add_parser("restore", help="restore a backup into an empty database")
    restore_parser.add_argument("backup", type=Path, help="a backup folder, or a file in it")
    restore_parser.add_argument("url")
    prune_parser = commands.add_parser("prune", help="keep the newest backup of the last N days and M weeks")
    prune_parser.add_argument("dest", type=Path)
    prune_parser.add_argument("--daily", type=int, default=7)
    prune_parser.add_argument("--weekly", type=int, default=4)
    args = parser.parse_args(argv[1:])
    if args.command == "migrate":
        return _migrate(args.url or default_database_url())
    try:
        if args.command == "backup":
            result = backup(args.url or default_database_url(), args.dest, instance_url=instance_database_url(),
                            files=configuration_files())
            print(f"backup {result.path}: {result.size_bytes:,} bytes in {result.seconds:.1f} s, "
                  f"{sum(result.manifest['rows'].values()):,} rows of {result.manifest['store']}")
        elif args.command == "restore":
            state = restore(args.backup, args.url)
            print(f"restored {args.backup} ({sum(state.rows.values()):,} rows, revision {state.revision}); "
                  "migrated to head")
        else:
            removed = prune(args.dest, args.daily, args.weekly)
            print(f"pruned {len(removed)} backup(s) from {args.dest}")
    except BackupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _migrate(database_url: str) -> int:
    store = TimeSeriesStore(database_url)
    store.migrate()
    count = store.register_portfolio(load_portfolio())
    print(f"store at {store.describe()} migrated; {count} sensors registered")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
