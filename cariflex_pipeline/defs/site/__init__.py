import dagster as dg

from cariflex_pipeline.defs.partitions import IS_FLEET
from cariflex_pipeline.defs.site.assets import sensor_registry
from cariflex_pipeline.defs.site.sensors import portfolio_sites_sensor

# One site has no site partitions to fill: the sensor is not registered, and the UI shows nothing new.
defs = dg.Definitions(assets=[sensor_registry], sensors=[portfolio_sites_sensor] if IS_FLEET else [])
