"""Which site of the portfolio a run works on, in one place for every stage.

One site: always that site, whatever the run (partition keys and the UI are the one-site ones). A fleet: the site
dimension of the run's partition (defs/partitions.py), else the run's `cariflex/site` tag (a run of an
unpartitioned asset, such as a sensor's), else an error naming the sites: a fleet run never guesses its site.
"""

from dataclasses import dataclass

import dagster as dg

from cariflex_pipeline.defs.partitions import IS_FLEET, split_key
from cariflex_pipeline.site_model import Portfolio, PortfolioSite, Site

SITE_TAG = "cariflex/site"


@dataclass(frozen=True)
class RunSite:
    """The run's site: its id (partition, run keys, store rows), its model, and its portfolio entry (tenant)."""

    id: str
    model: Site
    entry: PortfolioSite
    devices_elsewhere: frozenset[str] = frozenset()  # the other sites' charge points and V2G chargers


def run_site_id(context: dg.AssetExecutionContext | dg.OpExecutionContext, portfolio: Portfolio) -> str:
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
    return RunSite(site_id, portfolio.site(site_id), portfolio.entry(site_id), portfolio.devices_elsewhere(site_id))
