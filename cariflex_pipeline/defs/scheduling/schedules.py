"""Re-optimize the EV-charging schedule every 15 minutes, in one process (no per-step subprocess start-up)."""

import dagster as dg

from cariflex_pipeline.defs.scheduling.assets import ev_charging_schedule

ev_charging_job = dg.define_asset_job(
    "ev_charging_job",
    selection=dg.AssetSelection.assets(ev_charging_schedule),
    description="Re-plan EV charging from the latest prices, grid signals and sessions.",
    executor_def=dg.in_process_executor,
)

every_15_minutes = dg.ScheduleDefinition(
    name="ev_charging_every_15_minutes",
    job=ev_charging_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="America/Martinique",
    description="Rolling-horizon re-optimization at each slot boundary (starts stopped; turn it on in the UI).",
)
