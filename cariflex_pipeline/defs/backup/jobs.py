"""`store_backup`: a backup of the store (and the instance's PostgreSQL database) with retention, daily.

The work is `cariflex_pipeline.store.backup`; this wires it to the store resource, the schedule and the UI.
A job of its own, not an asset: a backup is not data the pipeline reads, and the main job (every asset) must
not take one each run.
"""

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from cariflex_pipeline.defs.resources import TimeSeriesStoreResource
from cariflex_pipeline.store import default_database_url
from cariflex_pipeline.store.backup import backup, configuration_files, instance_database_url, prune

BACKUP_DIR_ENV = "CARIFLEX_BACKUP_DIR"


class BackupConfig(dg.Config):
    dest: str | None = Field(default=None, description="Backup folder; default: $CARIFLEX_BACKUP_DIR, else "
                                                       "backups/ under $DAGSTER_HOME.")
    keep_daily: int = Field(default=7, ge=1, description="Keep the newest backup of this many days.")
    keep_weekly: int = Field(default=4, ge=0, description="And of this many ISO weeks.")


@dg.op(description="Back up the store (pg_dump custom format, or SQLite's online backup), the Dagster "
                   "instance's PostgreSQL database if any, the site file and dagster.yaml; then apply retention.")
def back_up_store(context: dg.OpExecutionContext, config: BackupConfig,
                  store: TimeSeriesStoreResource) -> dg.Output[str]:
    dest = Path(config.dest or os.environ.get(BACKUP_DIR_ENV)
                or Path(os.environ.get("DAGSTER_HOME") or ".dagster_home") / "backups")
    result = backup(store.database_url or default_database_url(), dest, instance_url=instance_database_url(),
                    files=configuration_files())
    removed = prune(dest, config.keep_daily, config.keep_weekly)
    context.log.info(f"backup {result.path}: {result.size_bytes:,} bytes in {result.seconds:.1f} s; "
                     f"{len(removed)} older backup(s) pruned")
    return dg.Output(
        str(result.path),
        metadata={
            "path": dg.MetadataValue.path(str(result.path)),
            "size (MB)": dg.MetadataValue.float(round(result.size_bytes / 1e6, 3)),
            "duration (s)": dg.MetadataValue.float(round(result.seconds, 2)),
            "store": result.manifest["store"],
            "schema revision": result.manifest["revision"] or "none",
            "rows": dg.MetadataValue.int(sum(result.manifest["rows"].values())),
            "instance database": result.manifest["instance"] or "on SQLite under DAGSTER_HOME (not dumped)",
            "pruned": dg.MetadataValue.int(len(removed)),
        },
    )


@dg.job(description="Back up the store and the instance database, keep N daily and M weekly backups.")
def store_backup() -> None:
    back_up_store()


daily_backup = dg.ScheduleDefinition(
    name="store_backup_daily",
    job=store_backup,
    cron_schedule="15 3 * * *",
    execution_timezone="America/Martinique",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="A backup at 03:15 site time, when nothing else is busy.",
)
