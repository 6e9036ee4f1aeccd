"""Re-plan EV charging and act on the plan every 15 minutes, in one process (no per-step subprocess start-up)."""

import dagster as dg

from cariflex_pipeline.defs.scheduling.assets import ev_charging_schedule

# The schedule and everything downstream of it (profiles, dispatch): a new plan that does not reach the charge
# points helps no one. The EV-session sensor requests the same job.
ev_schedule_and_dispatch_job = dg.define_asset_job(
    "ev_schedule_and_dispatch",
    selection=dg.AssetSelection.assets(ev_charging_schedule).downstream(),
    description="Re-plan EV charging from the latest prices, grid signals and sessions, and dispatch the plan "
    "(latency-critical chain, one process).",
    executor_def=dg.in_process_executor,
)

every_15_minutes = dg.ScheduleDefinition(
    name="ev_charging_every_15_minutes",
    job=ev_schedule_and_dispatch_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="America/Martinique",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Rolling-horizon re-optimization and dispatch at each slot boundary.",
)
