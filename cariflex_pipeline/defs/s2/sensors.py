"""`s2_replan_sensor`: requests a re-plan and dispatch when an S2 RM connects or leaves, or a connected RM's
reported fill level is more than CARIFLEX_S2_FILL_MARGIN_KWH (default 1 kWh) from the fill level its instructions
should have given. The cursor holds each RM's last seen status, so one change requests one run."""

import hashlib
import json
import os

import dagster as dg

from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.scheduling.schedules import ev_schedule_and_dispatch_job
from cariflex_pipeline.s2.devices import portfolio_devices
from cariflex_pipeline.s2.report import replan_reasons

MARGIN_ENV = "CARIFLEX_S2_FILL_MARGIN_KWH"


def fill_margin_kwh() -> float:
    raw = os.environ.get(MARGIN_ENV, "1.0")
    try:
        margin = float(raw)
    except ValueError:
        raise dg.Failure(description=f"{MARGIN_ENV}={raw!r} is not a number of kWh") from None
    if margin <= 0:
        raise dg.Failure(description=f"{MARGIN_ENV}={raw!r} must be positive")
    return margin


@dg.sensor(
    job=ev_schedule_and_dispatch_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-plans and dispatches when an S2 resource manager connects or leaves, or its fill level "
                "departs from the plan by more than the configured margin.",
)
def s2_replan_sensor(context: dg.SensorEvaluationContext, site: SiteResource,
                     store: TimeSeriesStoreResource) -> dg.SensorResult:
    site_model = site.load()
    seen = json.loads(context.cursor) if context.cursor else {}
    reasons, keys, now_seen = replan_reasons(store.open(site_model), portfolio_devices(site.portfolio()), seen,
                                             fill_margin_kwh())
    cursor = json.dumps(now_seen, sort_keys=True)
    if not reasons:
        return dg.SensorResult(run_requests=[], cursor=cursor)
    context.log.info("re-plan: %s", "; ".join(reasons))
    digest = hashlib.sha256("|".join(sorted(keys)).encode()).hexdigest()[:16]
    return dg.SensorResult(run_requests=[dg.RunRequest(
        run_key=f"s2:{digest}", tags={"cariflex/s2_reasons": "; ".join(reasons)[:200]})], cursor=cursor)
