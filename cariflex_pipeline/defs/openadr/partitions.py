"""The OpenADR stage's day partitions are the shared ones (`cariflex_pipeline/defs/partitions.py`), so that its
assets and the other day-partitioned stages line up. The last partition is today (end_offset=1): a day-ahead event
for tomorrow is ingested by a run of today's partition (ingestion resyncs every event the VTN holds)."""

from cariflex_pipeline.defs.partitions import (
    DAY_BACKFILL,
    TIMEZONE,
    daily_partitions,
    partition_day_windows,
    run_day_keys,
)

__all__ = ["DAY_BACKFILL", "TIMEZONE", "daily_partitions", "partition_day_windows", "run_day_keys"]
