"""Dagster shell of the S2 stage: the plan's instructions for the batteries' and V2G chargers' RMs, and the
sensor that re-plans when an RM comes, goes or drifts from the plan. The CEM itself runs as its own service."""

import dagster as dg

from cariflex_pipeline.defs.s2.assets import s2_instructions
from cariflex_pipeline.defs.s2.sensors import s2_replan_sensor

defs = dg.Definitions(assets=[s2_instructions], sensors=[s2_replan_sensor])

__all__ = ["defs"]
