"""Daily partitions in the site's local time (America/Martinique), shared by every day-partitioned stage.

The first partition is where the site's data starts (`first_partition_day`); the last is today (`end_offset=1`:
the day in progress). Day-ahead prices and forecasts arrive the day
before, so a run that covers today also writes tomorrow's values (see the OpenADR and measurements assets).
"""

import os
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from cariflex_pipeline.site_model import load_site

TIMEZONE = "America/Martinique"

FIRST_DAY_ENV = "CARIFLEX_FIRST_DAY"


def first_partition_day(environ: Mapping[str, str] = os.environ) -> date:
    """$CARIFLEX_FIRST_DAY, else the site file's `first_day`, else today (site time): partitions start where the
    data does, not months before it (an asset reading "1 of 335" looks missing)."""
    configured = environ.get(FIRST_DAY_ENV)
    if configured:
        try:
            return date.fromisoformat(configured)
        except ValueError:
            raise ValueError(f"{FIRST_DAY_ENV}={configured!r} is not a date (YYYY-MM-DD)") from None
    site = load_site()
    return site.first_day or datetime.now(site.tz).date()


daily_partitions = dg.DailyPartitionsDefinition(start_date=first_partition_day().isoformat(), timezone=TIMEZONE,
                                                end_offset=1)


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
