"""Daily partitions in Martinique local time; tomorrow is included (day-ahead prices arrive the day before)."""

import dagster as dg

TIMEZONE = "America/Martinique"

daily_partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone=TIMEZONE, end_offset=1)
