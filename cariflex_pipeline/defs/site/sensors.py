"""`portfolio_sites_sensor`: keeps the dynamic partition `sites` in step with the portfolio file (fleets only).

Each tick re-reads the portfolio file, so a site appended to it gets its partitions (and with them the sensors'
and the schedule's runs) without a redeploy. It only ever adds: a site removed from the file keeps its partitions,
so its runs, materializations and checks stay addressable in the UI and its history can still be backfilled or
compared; dropping a partition would orphan all of that. A file that no longer loads fails the tick with the
loader's error (file, site, entry, field): a silent skip would hide that the next site cannot be added either.
"""

from collections.abc import Collection

import dagster as dg

from cariflex_pipeline.defs.partitions import SITES_PARTITIONS_NAME, site_partitions
from cariflex_pipeline.defs.resources import SiteResource
from cariflex_pipeline.site_model import Portfolio, SiteModelError


class PortfolioUnreadable(Exception):
    """The portfolio file no longer loads: no site can be added until it is fixed."""


def missing_site_ids(portfolio: Portfolio, known: Collection[str]) -> list[str]:
    """The portfolio's site ids not yet in the dynamic partition, in the file's order."""
    return [site_id for site_id in portfolio.site_ids if site_id not in known]


def sync_sites(portfolio: Portfolio, known: Collection[str]) -> dg.SensorResult | dg.SkipReason:
    """The add request for the sites missing from `known`, else why there is nothing to do."""
    missing = missing_site_ids(portfolio, known)
    if not missing:
        return dg.SkipReason(f"every site of {portfolio.name!r} is in {SITES_PARTITIONS_NAME!r}: "
                             f"{', '.join(portfolio.site_ids)}")
    return dg.SensorResult(dynamic_partitions_requests=[site_partitions.build_add_request(missing)])


@dg.sensor(
    # A new site waits this long for its first runs; a tick reads and validates one YAML file.
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds every site of the portfolio file missing from the dynamic partition 'sites' (never removes "
                "one: its history stays addressable).",
)
def portfolio_sites_sensor(context: dg.SensorEvaluationContext, site: SiteResource) -> dg.SensorResult | dg.SkipReason:
    try:
        portfolio = site.portfolio()
    except SiteModelError as error:
        raise PortfolioUnreadable(f"the portfolio file no longer loads, no site added: {error}") from error
    result = sync_sites(portfolio, context.instance.get_dynamic_partitions(SITES_PARTITIONS_NAME))
    if isinstance(result, dg.SensorResult):
        context.log.info("adding sites to %r: %s", SITES_PARTITIONS_NAME,
                         ", ".join(result.dynamic_partitions_requests[0].partition_keys))
    return result
