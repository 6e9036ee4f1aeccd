"""Re-plan EV charging and act on the plan every 15 minutes, in one process by default (no per-step subprocess
start-up; `CARIFLEX_EXECUTOR` in `defs/executor.py`).

One site: one run per tick for today's day partition, without a run key, as before the fleet. A fleet: one run per
site for its partition of its today (the site's time zone), keyed `ev-charging-every-15-minutes:<site>:<tick>`. The
portfolio file is re-read at each tick, so a site appended to it is planned once `portfolio_sites_sensor` has added
its partitions; until then it is skipped, with the reason in the log (the schedule does not add partitions itself:
one place, the sensor, decides which sites exist). A site that cannot be evaluated is logged and skipped, the
others' runs go ahead.
"""

import logging
from collections.abc import Collection
from datetime import UTC, datetime

import dagster as dg

from cariflex_pipeline.defs.executor import job_executor
from cariflex_pipeline.defs.groups import DERIVED_GROUP
from cariflex_pipeline.defs.partitions import TIMEZONE
from cariflex_pipeline.defs.resources import SiteResource
from cariflex_pipeline.defs.scheduling.assets import ev_charging_schedule
from cariflex_pipeline.defs.sites import (
    SiteRequests,
    partitioned_site_ids,
    requests_per_site,
    site_run_key,
    site_run_request,
)
from cariflex_pipeline.site_model import Portfolio

SCHEDULE_RUN_KEY = "ev-charging-every-15-minutes"

# Derived series (grid impact, flexibility, SoC) are for the dashboard: refreshed at every tick, never in the way.
_PLAN_AND_AFTER = dg.AssetSelection.assets(ev_charging_schedule).downstream()

# The latency-critical chain, requested by the EV-session sensor: the plan and what acts on it (profiles and
# dispatch; a new plan that does not reach the charge points helps no one), nothing else before the stations.
ev_schedule_and_dispatch_job = dg.define_asset_job(
    "ev_schedule_and_dispatch",
    selection=_PLAN_AND_AFTER - dg.AssetSelection.groups(DERIVED_GROUP),
    description="Re-plan EV charging from the latest prices, grid signals and sessions, and dispatch the plan "
    "(latency-critical chain, one process on the default executor).",
    executor_def=job_executor(),
)

# The 15-minute tick: the same chain, then today's derived series, so that the dashboard shows the plan that is
# being dispatched.
ev_replan_and_refresh_job = dg.define_asset_job(
    "ev_replan_and_refresh",
    selection=_PLAN_AND_AFTER,
    description="Re-plan and dispatch as ev_schedule_and_dispatch does, then refresh today's derived series.",
    executor_def=job_executor(),
)


def tick_requests(portfolio: Portfolio, partitioned: Collection[str] | None, tick: datetime,
                  log: logging.Logger) -> SiteRequests:
    """The tick's run per site: the day in progress at the site, refreshed (the schedule's job has days)."""

    def request(site_id: str) -> list[dg.RunRequest]:
        # One site (nothing partitioned by site): no run key, as before the fleet; the tick itself runs once.
        run_key = None if partitioned is None else site_run_key(SCHEDULE_RUN_KEY, site_id, tick.isoformat())
        return [site_run_request(site_id, portfolio.site(site_id), tick, run_key=run_key,
                                 one_site_day_partitioned=True)]

    return requests_per_site(portfolio.site_ids, partitioned, request, log)


@dg.schedule(
    name="ev_charging_every_15_minutes",
    job=ev_replan_and_refresh_job,
    cron_schedule="*/15 * * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Rolling-horizon re-optimization and dispatch at each slot boundary; refreshes today's derived "
    "series.",
)
def every_15_minutes(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | list[dg.RunRequest] | dg.SkipReason:
    # The portfolio as SiteResource reads it by default (a schedule takes no resources in its direct invocation).
    partitioned = partitioned_site_ids(context)
    requests = tick_requests(SiteResource().portfolio(), partitioned, context.scheduled_execution_time or
                             datetime.now(UTC), context.log)
    reason = requests.skip_reason()
    if reason:
        return dg.SkipReason(reason)
    if partitioned is None:
        return requests.run_requests[0]  # one site: the one request, as before the fleet
    return requests.run_requests
