"""The time-series store (plain Python, no Dagster): sensors, data sources and beliefs on SQLAlchemy."""

from cariflex_pipeline.store.engine import (
    DATABASE_URL_ENV,
    StoreUnavailableError,
    default_database_url,
)
from cariflex_pipeline.store.timeseries import BELIEF_COLUMNS, TimeSeriesStore
from cariflex_pipeline.store.validation import BeliefValidationError

__all__ = [
    "BELIEF_COLUMNS",
    "DATABASE_URL_ENV",
    "BeliefValidationError",
    "StoreUnavailableError",
    "TimeSeriesStore",
    "default_database_url",
]
