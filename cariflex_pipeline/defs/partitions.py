"""Daily partitions in the site's local time (America/Martinique), shared by every day-partitioned stage.

The last partition is today (`end_offset=1`: the day in progress). Day-ahead prices and forecasts arrive the day
before, so a run that covers today also writes tomorrow's values (see the OpenADR and measurements assets).
"""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

TIMEZONE = "America/Martinique"

daily_partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone=TIMEZONE, end_offset=1)


def partition_day_windows(context: dg.AssetExecutionContext, tz: ZoneInfo) -> list[tuple[str, datetime, datetime]]:
    """(partition key, local start, local end) of every day the run targets; without a partition (an ad-hoc
    run of the unpartitioned graph), today."""
    if context.has_partition_key_range or context.has_partition_key:
        keys = list(context.partition_keys)
    else:
        keys = [datetime.now(tz).date().isoformat()]
    windows = []
    for key in keys:
        start = datetime.combine(date.fromisoformat(key), time(), tz)
        windows.append((key, start, datetime.combine(start.date() + timedelta(days=1), time(), tz)))
    return windows
