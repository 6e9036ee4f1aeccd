"""Dagster shell of the OpenADR stage: daily-partitioned ingestion assets, the VTN sensor and its job."""

import dagster as dg

from cariflex_pipeline.defs.openadr.assets import SIGNAL_ASSETS, openadr_events
from cariflex_pipeline.defs.openadr.resources import VtnResource, vtn_resource_from_env
from cariflex_pipeline.defs.openadr.sensors import openadr_ingest_job, openadr_vtn_sensor

defs = dg.Definitions(
    assets=[openadr_events, *SIGNAL_ASSETS],
    jobs=[openadr_ingest_job],
    sensors=[openadr_vtn_sensor],
    resources={"vtn": vtn_resource_from_env()},
)

__all__ = ["VtnResource", "defs"]
