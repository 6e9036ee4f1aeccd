"""Partitions shared by every partitioned stage: days in the portfolio's local time (America/Martinique), and for a
fleet also sites.

One site (a site file, or a one-site portfolio): day partitions only, and the planning and dispatch assets are
unpartitioned, exactly as before the fleet. A fleet (a portfolio of several sites, $CARIFLEX_PORTFOLIO_FILE): every
asset but the sensor registry is partitioned site x day, the sites a dynamic dimension (`sites`) that the
`portfolio_sites_sensor` fills from the portfolio file, so a site added to the file needs no redeploy. A fleet run
is one site and one day (`FLEET_BACKFILL`); which site is `run_site_id` (defs/sites.py).

The first day partition is where the data starts (`first_partition_day`); the last is today (`end_offset=1`: the
day in progress). Day-ahead prices and forecasts arrive the day before, so a run that covers today also writes
tomorrow's values (see the OpenADR and measurements assets).
"""

import os
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from cariflex_pipeline.site_model import Portfolio, load_portfolio

FIRST_DAY_ENV = "CARIFLEX_FIRST_DAY"
SITE_DIMENSION = "site"
DAY_DIMENSION = "day"
SITES_PARTITIONS_NAME = "sites"

# The portfolio as the code location loads it: its size decides the partitions' shape. A site added to a fleet's
# file is picked up without a reload (dynamic partitions); turning one site into a fleet changes the assets'
# partitions, so it is a redeploy (docs/fleet.md).
LOADED_PORTFOLIO: Portfolio = load_portfolio()
IS_FLEET = len(LOADED_PORTFOLIO.sites) > 1
TIMEZONE = str(LOADED_PORTFOLIO.timezone)


def first_partition_day(environ: Mapping[str, str] = os.environ, portfolio: Portfolio | None = None) -> date:
    """$CARIFLEX_FIRST_DAY, else the earliest `first_day` of the portfolio's sites, else today (portfolio time):
    partitions start where the data does, not months before it (an asset reading "1 of 335" looks missing)."""
    configured = environ.get(FIRST_DAY_ENV)
    if configured:
        try:
            return date.fromisoformat(configured)
        except ValueError:
            raise ValueError(f"{FIRST_DAY_ENV}={configured!r} is not a date (YYYY-MM-DD)") from None
    portfolio = portfolio or load_portfolio()
    sites = [portfolio.site(site_id) for site_id in portfolio.site_ids]
    known = [site.first_day for site in sites if site.first_day is not None]
    return min(known) if known else datetime.now(sites[0].tz).date()


day_partitions = dg.DailyPartitionsDefinition(start_date=first_partition_day(portfolio=LOADED_PORTFOLIO).isoformat(),
                                              timezone=TIMEZONE, end_offset=1)
site_partitions = dg.DynamicPartitionsDefinition(name=SITES_PARTITIONS_NAME)

# The day-partitioned stages (signals, measurements, derived series).
daily_partitions: dg.PartitionsDefinition = (
    dg.MultiPartitionsDefinition({DAY_DIMENSION: day_partitions, SITE_DIMENSION: site_partitions}) if IS_FLEET
    else day_partitions)
# Planning and dispatch: "now" for one site; for a fleet the same site x day as the rest, so that one job holds the
# whole graph (a Dagster job has one partitions definition), the day being the site's today.
plan_partitions: dg.PartitionsDefinition | None = daily_partitions if IS_FLEET else None
# One site: a range of days is one run. A fleet: one run per site and day (Dagster's single-run backfills of
# multi-partitions may mix sites, dagster-io/dagster#18852), so each run plans and dispatches one site.
DAY_BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=1) if IS_FLEET else dg.BackfillPolicy.single_run()


def partition_key_for(site_id: str, day: str) -> str | dg.MultiPartitionKey:
    """The partition key of `site_id`'s `day` as the day-partitioned assets spell it (a plain day for one site)."""
    if IS_FLEET:
        return dg.MultiPartitionKey({DAY_DIMENSION: day, SITE_DIMENSION: site_id})
    return day


def run_day_keys(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> list[str]:
    """The days (YYYY-MM-DD) the run's partitions cover, in order; empty for a run without a partition."""
    if not (context.has_partition_key_range or context.has_partition_key):
        return []
    if IS_FLEET:
        return sorted({split_key(key)[1] for key in context.partition_keys})
    return list(context.partition_keys)


def split_key(key: str) -> tuple[str, str]:
    """(site id, day) of a fleet partition key ("2026-11-05|pointe-simon")."""
    assert isinstance(daily_partitions, dg.MultiPartitionsDefinition), "only a fleet's keys have a site"
    dimensions = daily_partitions.get_partition_key_from_str(key).keys_by_dimension
    return dimensions[SITE_DIMENSION], dimensions[DAY_DIMENSION]


def partition_day_windows(context: dg.AssetExecutionContext, tz: ZoneInfo) -> list[tuple[str, datetime, datetime]]:
    """(partition key, local start, local end) of every day the run targets; without a partition (an ad-hoc
    run of the unpartitioned graph), today. For a fleet the key is the site x day key of the run's site."""
    days = run_day_keys(context) or [datetime.now(tz).date().isoformat()]
    site_keys = {}
    if IS_FLEET and context.has_partition_key:
        site_keys = {day: context.partition_key for day in days}
    windows = []
    for day in days:
        start = datetime.combine(date.fromisoformat(day), time(), tz)
        windows.append((site_keys.get(day, day), start,
                        datetime.combine(start.date() + timedelta(days=1), time(), tz)))
    return windows


def require_plan_day(context: dg.AssetExecutionContext, now: datetime, tz: ZoneInfo) -> None:
    """A fleet's plan is made from `now`: a partition of another day would file it under a day it does not cover
    (a backfill over past days), so the run fails naming both; replays set `now` inside the partition's day."""
    days = run_day_keys(context) if IS_FLEET else []
    today = now.astimezone(tz).date().isoformat()
    if days and days != [today]:
        raise dg.Failure(f"the plan is made from {now.isoformat()} ({today} at the site); partition day "
                         f"{', '.join(days)} is another day: run today's partition, or set `now` in that day")
