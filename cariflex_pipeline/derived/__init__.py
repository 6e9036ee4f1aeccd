"""The seed dashboard's derived series (flexibility, grid impact, sessions, state of charge) as plain functions.

No Dagster and no database here: the formulas take slot grids, power arrays and sessions, and return arrays; the
Dagster shell (cariflex_pipeline/defs/derived/) reads the inputs from the store and writes the results back as
sensors of their own (cariflex_pipeline/derived/sensors.py). Each formula is written out in docs/derived.md.
"""

from cariflex_pipeline.derived.formulas import (
    PlugIn,
    active_sessions,
    end_of_slot_soc,
    ev_flexibility_potential,
    flexibility_impact,
    grid_impact,
    total_flexibility,
    uncontrolled_charging,
    v2g_soc,
)
from cariflex_pipeline.derived.sensors import DerivedSensors, derived_sensors

__all__ = [
    "DerivedSensors",
    "PlugIn",
    "active_sessions",
    "derived_sensors",
    "end_of_slot_soc",
    "ev_flexibility_potential",
    "flexibility_impact",
    "grid_impact",
    "total_flexibility",
    "uncontrolled_charging",
    "v2g_soc",
]
