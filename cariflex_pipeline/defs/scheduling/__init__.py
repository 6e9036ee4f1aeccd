import dagster as dg

from cariflex_pipeline.defs.scheduling.assets import ev_charging_schedule
from cariflex_pipeline.defs.scheduling.schedules import (
    ev_replan_and_refresh_job,
    ev_schedule_and_dispatch_job,
    every_15_minutes,
)

defs = dg.Definitions(assets=[ev_charging_schedule], jobs=[ev_schedule_and_dispatch_job, ev_replan_and_refresh_job],
                      schedules=[every_15_minutes])
