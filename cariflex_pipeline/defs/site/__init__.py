import dagster as dg

from cariflex_pipeline.defs.site.assets import sensor_registry

defs = dg.Definitions(assets=[sensor_registry])
