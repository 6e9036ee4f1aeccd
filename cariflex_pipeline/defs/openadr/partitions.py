"""Daily partitions in Martinique local time. The last partition is today (end_offset=1): a day-ahead event for
tomorrow is ingested by a run of today's partition (ingestion resyncs every event the VTN holds)."""

import dagster as dg

TIMEZONE = "America/Martinique"

daily_partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone=TIMEZONE, end_offset=1)
