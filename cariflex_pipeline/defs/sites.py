"""Which site of the portfolio a run works on, and which sites a sensor or the schedule runs, in one place for
every stage.

One site: always that site, whatever the run (partition keys and the UI are the one-site ones). A fleet: the site
dimension of the run's partition (defs/partitions.py), else the run's `cariflex/site` tag (a run of an
unpartitioned asset, such as a sensor's), else an error naming the sites: a fleet run never guesses its site.
"""

import hashlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import dagster as dg

from cariflex_pipeline.defs.partitions import IS_FLEET, SITES_PARTITIONS_NAME, partition_key_for, split_key
from cariflex_pipeline.site_model import Portfolio, PortfolioSite, Site

SITE_TAG = "cariflex/site"


@dataclass(frozen=True)
class RunSite:
    """The run's site: its id (partition, run keys, store rows), its model, and its portfolio entry (tenant), with
    the portfolio it is read from (the store registers all of its sensors)."""

    id: str
    model: Site
    entry: PortfolioSite
    devices_elsewhere: frozenset[str]  # the other sites' charge points and V2G chargers
    portfolio: Portfolio


def run_site_id(context: dg.AssetExecutionContext | dg.OpExecutionContext, portfolio: Portfolio) -> str:
    """The id of the one site the run works on (module docstring); dg.Failure naming what the run gives else."""
    if len(portfolio.sites) == 1 and not IS_FLEET:
        return portfolio.site_ids[0]
    site_ids = set()
    if IS_FLEET and (context.has_partition_key or context.has_partition_key_range):
        site_ids = {split_key(key)[0] for key in context.partition_keys}
    elif context.run.tags.get(SITE_TAG):
        site_ids = {context.run.tags[SITE_TAG]}
    if len(site_ids) != 1:
        found = ", ".join(sorted(site_ids)) or "none"
        raise dg.Failure(f"a fleet run works on one site; this run's partitions or {SITE_TAG} tag give: {found} "
                         f"(the portfolio's sites: {', '.join(portfolio.site_ids)})")
    site_id = site_ids.pop()
    portfolio.site(site_id)  # an unknown site is a KeyError naming the portfolio's sites
    return site_id


def run_site(context: dg.AssetExecutionContext | dg.OpExecutionContext, portfolio: Portfolio) -> RunSite:
    site_id = run_site_id(context, portfolio)
    return RunSite(site_id, portfolio.site(site_id), portfolio.entry(site_id), portfolio.devices_elsewhere(site_id),
                   portfolio)


# Which sites a sensor or the schedule requests runs for, in one place for all of them. A fleet run's partition is
# one site x one day, and Dagster refuses a run request for a partition that does not exist: a site that is in the
# portfolio file but not yet in the dynamic partition `sites` (portfolio_sites_sensor adds it within its interval)
# is skipped with that reason rather than failing the tick of every other site.


@dataclass(frozen=True)
class SiteRequests:
    """What a sensor or the schedule asks for across the portfolio: its run requests, and one line per site it
    requested nothing for because that site could not be evaluated ("site 'x': why")."""

    run_requests: list[dg.RunRequest]
    skipped: list[str]

    def skip_reason(self) -> str | None:
        """Why nothing was requested at all, for the tick's skip reason (None when something was requested or no
        site was left out: an empty tick that is simply quiet)."""
        if self.run_requests or not self.skipped:
            return None
        return "; ".join(self.skipped)


class SitesFailed(Exception):
    """Every site of a fleet tick failed: the tick fails, naming each site and its error."""


def partitioned_site_ids(context: dg.SensorEvaluationContext | dg.ScheduleEvaluationContext) -> set[str] | None:
    """The sites whose partitions exist (the dynamic partition `sites`, read from the instance); None for one site,
    whose partitions have no site dimension (and whose tick never needs the instance)."""
    if not IS_FLEET:
        return None
    return set(context.instance.get_dynamic_partitions(SITES_PARTITIONS_NAME))


def requests_per_site(site_ids: Sequence[str], partitioned: Collection[str] | None,
                      request: Callable[[str], list[dg.RunRequest]], log: logging.Logger) -> SiteRequests:
    """`request(site_id)` for every site that can have runs; a failure of one site does not stop the others.

    `partitioned` None (one site): `request` for each site as it is, its error the tick's, as before the fleet.
    A fleet: a site not in `partitioned` is skipped with the reason; a site whose `request` raises is logged
    as an error and skipped with its error; when every site evaluated failed, the tick fails with `SitesFailed`.
    """
    if partitioned is None:
        return SiteRequests([run for site_id in site_ids for run in request(site_id)], [])
    run_requests: list[dg.RunRequest] = []
    skipped: list[str] = []
    failures: list[str] = []
    for site_id in site_ids:
        if site_id not in partitioned:
            skipped.append(f"site {site_id!r}: not yet in the dynamic partition {SITES_PARTITIONS_NAME!r} "
                           "(portfolio_sites_sensor adds it)")
            log.warning("no run request for %s", skipped[-1])
            continue
        try:
            run_requests.extend(request(site_id))
        except Exception as error:  # one site's broken store or entry must not stop the other sites' runs
            line = f"site {site_id!r}: {type(error).__name__}: {error}"
            log.error("no run request for %s", line)
            failures.append(line)
    evaluated = [site_id for site_id in site_ids if site_id in partitioned]
    if evaluated and len(failures) == len(evaluated):
        raise SitesFailed("every site failed: " + "; ".join(failures))
    return SiteRequests(run_requests, skipped + failures)


def changes_digest(keys: Collection[str]) -> str:
    """A short, order-free digest of a tick's change keys: the same changes make the same run key."""
    return hashlib.sha256("|".join(sorted(keys)).encode()).hexdigest()[:16]


def site_run_key(prefix: str, site_id: str, change: str) -> str:
    """A run key for a change at a site: `prefix:change` for one site (the keys from before the fleet), and
    `prefix:site:change` in a fleet, so that the same change at two sites is two runs."""
    return f"{prefix}:{site_id}:{change}" if IS_FLEET else f"{prefix}:{change}"


def site_today(site: Site, moment: datetime) -> str:
    """The day (YYYY-MM-DD) in progress at the site at `moment`: the partition its plan and dispatch refresh."""
    return moment.astimezone(site.tz).date().isoformat()


def site_run_request(site_id: str, site: Site, moment: datetime, *, run_key: str | None,
                     tags: Mapping[str, str] | None = None, one_site_day_partitioned: bool) -> dg.RunRequest:
    """A run for `site_id` at `moment`. A fleet: the site's partition of its today (in the site's time zone) and
    the `cariflex/site` tag. One site: the job's own shape, a day partition only where the job has days
    (`one_site_day_partitioned`: the 15-minute tick's job does, the sensors' plan-and-dispatch job does not)."""
    day = site_today(site, moment)
    if IS_FLEET:
        return dg.RunRequest(run_key=run_key, partition_key=partition_key_for(site_id, day),
                             tags={**(tags or {}), SITE_TAG: site_id})
    return dg.RunRequest(run_key=run_key, partition_key=day if one_site_day_partitioned else None,
                         tags=dict(tags or {}))
