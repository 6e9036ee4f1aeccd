import dagster as dg

from cariflex_pipeline.defs.measurements.assets import site_measurements
from cariflex_pipeline.defs.measurements.resources import measurements_resource_from_env

defs = dg.Definitions(assets=[site_measurements], resources={"measurements": measurements_resource_from_env()})
