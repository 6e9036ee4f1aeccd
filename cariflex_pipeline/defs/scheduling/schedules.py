"""Re-plan EV charging and act on the plan every 15 minutes, in one process (no per-step subprocess start-up)."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import dagster as dg

from cariflex_pipeline.defs.partitions import TIMEZONE
from cariflex_pipeline.defs.scheduling.assets import ev_charging_schedule

# The schedule and everything downstream of it: profiles and dispatch (a new plan that does not reach the charge
# points helps no one), and today's derived series (grid impact, flexibility, SoC), so that the dashboard shows
# the plan that is being dispatched. The EV-session sensor requests the same job.
ev_schedule_and_dispatch_job = dg.define_asset_job(
    "ev_schedule_and_dispatch",
    selection=dg.AssetSelection.assets(ev_charging_schedule).downstream(),
    description="Re-plan EV charging from the latest prices, grid signals and sessions, dispatch the plan "
    "(latency-critical chain, one process) and refresh today's derived series.",
    executor_def=dg.in_process_executor,
)


def today_partition(moment: datetime | None = None) -> str:
    """The day partition that a re-plan at `moment` (default: now) refreshes: the day in progress, site time."""
    return (moment or datetime.now(UTC)).astimezone(ZoneInfo(TIMEZONE)).date().isoformat()


@dg.schedule(
    name="ev_charging_every_15_minutes",
    job=ev_schedule_and_dispatch_job,
    cron_schedule="*/15 * * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Rolling-horizon re-optimization and dispatch at each slot boundary; refreshes today's derived "
    "series.",
)
def every_15_minutes(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(partition_key=today_partition(context.scheduled_execution_time))
