"""`s2_replan_sensor`: requests a re-plan and dispatch when an S2 RM connects or leaves, or a connected RM's
reported fill level is more than CARIFLEX_S2_FILL_MARGIN_KWH (default 1 kWh) from the fill level its instructions
should have given. The cursor holds each RM's last seen status, so one change requests one run.

In a fleet each site is looked at on its own (its batteries and V2G chargers): one run per site with reasons, for
that site's partition of its today, keyed `s2:<site>:<digest>` (one site: `s2:<digest>`); the cursor holds each
site's statuses under its id (one site: the statuses themselves, as before). A site whose store cannot be read is
logged and skipped, keeping its statuses in the cursor for the next tick, while the other sites' runs go ahead."""

import json
import logging
import os
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.scheduling.schedules import ev_schedule_and_dispatch_job
from cariflex_pipeline.defs.sites import (
    SiteRequests,
    changes_digest,
    partitioned_site_ids,
    requests_per_site,
    site_run_key,
    site_run_request,
)
from cariflex_pipeline.s2.devices import site_devices
from cariflex_pipeline.s2.report import replan_reasons
from cariflex_pipeline.site_model import Portfolio

MARGIN_ENV = "CARIFLEX_S2_FILL_MARGIN_KWH"
S2_RUN_KEY = "s2"

# (site id, the site's RM statuses last seen) -> (reasons, a key per reason, the statuses seen now): replan_reasons
# on the site's store and devices.
Reasons = Callable[[str, dict[str, str]], tuple[list[str], list[str], dict[str, str]]]


def fill_margin_kwh() -> float:
    raw = os.environ.get(MARGIN_ENV, "1.0")
    try:
        margin = float(raw)
    except ValueError:
        raise dg.Failure(description=f"{MARGIN_ENV}={raw!r} is not a number of kWh") from None
    if margin <= 0:
        raise dg.Failure(description=f"{MARGIN_ENV}={raw!r} must be positive")
    return margin


def s2_run_requests(portfolio: Portfolio, partitioned: Collection[str] | None, cursor: dict[str, Any],
                    reasons_for: Reasons, log: logging.Logger, now: datetime) -> tuple[SiteRequests, dict[str, Any]]:
    """The run request of every site whose RMs changed or drifted, and the next cursor."""
    next_cursor = {} if partitioned is None else dict(cursor)

    def request(site_id: str) -> list[dg.RunRequest]:
        seen = cursor if partitioned is None else cursor.get(site_id, {})
        reasons, keys, now_seen = reasons_for(site_id, seen)
        if partitioned is None:
            next_cursor.update(now_seen)
        else:
            next_cursor[site_id] = now_seen
        if not reasons:
            return []
        log.info("re-plan%s: %s", "" if partitioned is None else f" of site {site_id!r}", "; ".join(reasons))
        digest = changes_digest(keys)
        return [site_run_request(site_id, portfolio.site(site_id), now,
                                 run_key=site_run_key(S2_RUN_KEY, site_id, digest),
                                 tags={"cariflex/s2_reasons": "; ".join(reasons)[:200]},
                                 one_site_day_partitioned=False)]

    requests = requests_per_site(portfolio.site_ids, partitioned, request, log)
    return requests, next_cursor


@dg.sensor(
    job=ev_schedule_and_dispatch_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-plans and dispatches when an S2 resource manager connects or leaves, or its fill level "
                "departs from the plan by more than the configured margin.",
)
def s2_replan_sensor(context: dg.SensorEvaluationContext, site: SiteResource,
                     store: TimeSeriesStoreResource) -> dg.SensorResult:
    portfolio = site.portfolio()
    margin = fill_margin_kwh()

    def reasons_for(site_id: str, seen: dict[str, str]) -> tuple[list[str], list[str], dict[str, str]]:
        site_model = portfolio.site(site_id)
        return replan_reasons(store.open(portfolio), site_devices(site_model, site_id), seen, margin)

    requests, cursor = s2_run_requests(portfolio, partitioned_site_ids(context),
                                       json.loads(context.cursor) if context.cursor else {}, reasons_for,
                                       context.log, datetime.now(UTC))
    return dg.SensorResult(run_requests=requests.run_requests, skip_reason=requests.skip_reason(),
                           cursor=json.dumps(cursor, sort_keys=True))
