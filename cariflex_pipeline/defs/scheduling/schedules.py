"""Re-plan EV charging and act on the plan every 15 minutes, in one process by default (no per-step subprocess
start-up; `CARIFLEX_EXECUTOR` in `defs/executor.py`)."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import dagster as dg

from cariflex_pipeline.defs.executor import job_executor
from cariflex_pipeline.defs.groups import DERIVED_GROUP
from cariflex_pipeline.defs.partitions import TIMEZONE
from cariflex_pipeline.defs.scheduling.assets import ev_charging_schedule

# Derived series (grid impact, flexibility, SoC) are for the dashboard: refreshed at every tick, never in the way.
_PLAN_AND_AFTER = dg.AssetSelection.assets(ev_charging_schedule).downstream()

# The latency-critical chain, requested by the EV-session sensor: the plan and what acts on it (profiles and
# dispatch; a new plan that does not reach the charge points helps no one), nothing else before the stations.
ev_schedule_and_dispatch_job = dg.define_asset_job(
    "ev_schedule_and_dispatch",
    selection=_PLAN_AND_AFTER - dg.AssetSelection.groups(DERIVED_GROUP),
    description="Re-plan EV charging from the latest prices, grid signals and sessions, and dispatch the plan "
    "(latency-critical chain, one process on the default executor).",
    executor_def=job_executor(),
)

# The 15-minute tick: the same chain, then today's derived series, so that the dashboard shows the plan that is
# being dispatched.
ev_replan_and_refresh_job = dg.define_asset_job(
    "ev_replan_and_refresh",
    selection=_PLAN_AND_AFTER,
    description="Re-plan and dispatch as ev_schedule_and_dispatch does, then refresh today's derived series.",
    executor_def=job_executor(),
)

def today_partition(moment: datetime | None = None) -> str:
    """The day partition that a re-plan at `moment` (default: now) refreshes: the day in progress, site time."""
    return (moment or datetime.now(UTC)).astimezone(ZoneInfo(TIMEZONE)).date().isoformat()


@dg.schedule(
    name="ev_charging_every_15_minutes",
    job=ev_replan_and_refresh_job,
    cron_schedule="*/15 * * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Rolling-horizon re-optimization and dispatch at each slot boundary; refreshes today's derived "
    "series.",
)
def every_15_minutes(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(partition_key=today_partition(context.scheduled_execution_time))
