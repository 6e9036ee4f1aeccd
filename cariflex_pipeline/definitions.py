"""The Cariflex code location: every stage's definitions, the shared resources and the main job, in one place."""

import dagster as dg

import cariflex_pipeline.defs.dispatch
import cariflex_pipeline.defs.openadr
import cariflex_pipeline.defs.scheduling
from cariflex_pipeline.defs import site
from cariflex_pipeline.defs.resources import SHARED_RESOURCES

MAIN_JOB_NAME = "cariflex_main"

# Stages of the flow, in order: site -> prices and grid signals -> schedule -> dispatch.
stage_defs = [
    site.defs,
    cariflex_pipeline.defs.openadr.defs,
    cariflex_pipeline.defs.scheduling.defs,
    cariflex_pipeline.defs.dispatch.defs,
]

main_job = dg.define_asset_job(
    MAIN_JOB_NAME,
    selection=dg.AssetSelection.all(),
    description="The whole graph: site, signals, schedule and dispatch, in one process.",
    executor_def=dg.in_process_executor,
)

defs = dg.Definitions.merge(
    *stage_defs,
    dg.Definitions(jobs=[main_job], resources=SHARED_RESOURCES),
)
