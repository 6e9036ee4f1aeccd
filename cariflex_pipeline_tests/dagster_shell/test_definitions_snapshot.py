"""Drift guard: the code location's shape (assets, checks, jobs, sensors, schedules, partitions) is the checked-in one.

An unintended change (an asset renamed or regrouped, a check dropped or no longer blocking, a job losing an asset,
a sensor retargeted or no longer running by default, a schedule's cron or time zone, a partitions definition)
fails this test with the difference. After an intended change, refresh the snapshot and review it in the diff:

    CARIFLEX_UPDATE_SNAPSHOT=1 .venv/bin/pytest cariflex_pipeline_tests/dagster_shell/test_definitions_snapshot.py
    git diff cariflex_pipeline_tests/dagster_shell/definitions_snapshot.json
"""

import difflib
import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

from cariflex_pipeline.definitions import defs

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")
UPDATE_ENV = "CARIFLEX_UPDATE_SNAPSHOT"


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> dict[str, Any] | None:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return {"type": type(partitions_def).__name__, "cron_schedule": partitions_def.cron_schedule,
                "start": partitions_def.start.isoformat(), "timezone": partitions_def.timezone,
                "fmt": partitions_def.fmt, "end_offset": partitions_def.end_offset}
    # no other kind in the code location yet; its description still shows a change
    return {"type": type(partitions_def).__name__, "description": str(partitions_def)}


def _keys(keys: Any) -> list[str]:
    return sorted(key.to_user_string() for key in keys)


def snapshot(definitions: dg.Definitions) -> dict[str, Any]:
    """What the code location defines, as plain JSON data with a stable order."""
    graph = definitions.resolve_asset_graph()
    checks: dict[str, list[dict[str, Any]]] = {}
    for check_key in graph.asset_check_keys:
        checks.setdefault(check_key.asset_key.to_user_string(), []).append(
            {"name": check_key.name, "blocking": graph.get(check_key).blocking})
    assets = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assets[name] = {"group": node.group_name, "deps": _keys(node.parent_keys),
                        "partitions": _partitions(node.partitions_def),
                        "checks": sorted(checks.get(name, []), key=lambda check: check["name"])}
    jobs = {}
    for job in definitions.resolve_all_job_defs():
        if not job.name.startswith("__"):  # Dagster's implicit asset job: not ours to keep stable
            jobs[job.name] = {"assets": _keys(job.asset_layer.executable_asset_keys),
                              "partitions": _partitions(job.partitions_def)}
    sensors = {sensor.name: {"jobs": sorted(target.job_name for target in sensor.targets),
                             "default_status": sensor.default_status.value,
                             "minimum_interval_seconds": sensor.minimum_interval_seconds}
               for sensor in definitions.sensors or []}
    schedules = {schedule.name: {"cron_schedule": schedule.cron_schedule, "timezone": schedule.execution_timezone,
                                 "job": schedule.job_name, "default_status": schedule.default_status.value}
                 for schedule in definitions.schedules or []}
    return {"assets": assets, "jobs": jobs, "sensors": sensors, "schedules": schedules}


def test_the_code_location_is_the_snapshot() -> None:
    current = json.dumps(snapshot(defs), indent=2, sort_keys=True) + "\n"
    if os.environ.get(UPDATE_ENV) == "1":
        SNAPSHOT.write_text(current)
    stored = SNAPSHOT.read_text()
    difference = "".join(difflib.unified_diff(stored.splitlines(keepends=True), current.splitlines(keepends=True),
                                              "definitions_snapshot.json", "cariflex_pipeline.definitions.defs"))
    assert current == stored, f"the code location changed; if intended, refresh ({UPDATE_ENV}=1):\n{difference}"
