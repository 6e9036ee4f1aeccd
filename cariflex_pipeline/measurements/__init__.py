"""Site measurements and forecasts (PV, batteries, V2G, weather, DSO price) into the store: no Dagster here."""

from cariflex_pipeline.measurements.readings import ReadingsError, read_readings_csv, readings_in_window
from cariflex_pipeline.measurements.sample_day import SAMPLE_SOURCE, sample_day

__all__ = ["SAMPLE_SOURCE", "ReadingsError", "read_readings_csv", "readings_in_window", "sample_day"]
