import dagster as dg

from cariflex_pipeline.defs.derived.assets import (
    ev_session_series,
    grid_impact_series,
    storage_state_of_charge,
    total_flexibility_series,
)

DERIVED_ASSETS = [ev_session_series, storage_state_of_charge, grid_impact_series, total_flexibility_series]

defs = dg.Definitions(assets=DERIVED_ASSETS)
