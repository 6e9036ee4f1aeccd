"""The Cariflex code location: every stage's definitions, the shared resources and the main job, in one place."""

import dagster as dg

from cariflex_pipeline.defs import backup, derived, dispatch, measurements, openadr, s2, scheduling, site
from cariflex_pipeline.defs.executor import job_executor
from cariflex_pipeline.defs.resources import SHARED_RESOURCES

MAIN_JOB_NAME = "cariflex_main"

# The portfolio ($CARIFLEX_PORTFOLIO_FILE, else the site file $CARIFLEX_SITE_FILE or the bundled one as one site) is
# validated as the code location loads (defs/partitions.py reads it to shape the partitions): an error is a load
# error in the UI, naming the site, the entry and the field, instead of the first run's failure.

# Stages of the flow, in order: site -> measurements, prices and grid signals -> schedule -> dispatch (OCPP to
# the charge points, S2 to the batteries and V2G chargers), and the dashboard's derived series (flexibility, grid
# impact, state of charge) from the plan and the measurements.
stage_defs = [
    site.defs,
    measurements.defs,
    openadr.defs,
    scheduling.defs,
    dispatch.defs,
    s2.defs,
    derived.defs,
]
# Beside the flow: operations.
operations_defs = [backup.defs]

main_job = dg.define_asset_job(
    MAIN_JOB_NAME,
    selection=dg.AssetSelection.all(),
    description="The whole graph: site, measurements, signals, schedule and dispatch, in one process on the default "
    "executor. Day-partitioned assets need a partition (python -m cariflex_pipeline gives today's).",
    executor_def=job_executor(),
)

defs = dg.Definitions.merge(
    *stage_defs,
    *operations_defs,
    dg.Definitions(jobs=[main_job], resources=SHARED_RESOURCES),
)
