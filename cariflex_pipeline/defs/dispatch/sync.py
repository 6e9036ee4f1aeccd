"""Asset sync with CitrineOS: the site model's charge points against what CitrineOS's REST data API knows.

The check sits on `sensor_registry`, the site-model asset whose page lists the charge points (EVSE/connector,
power): that is where an operator looks for "does CitrineOS see the same site", and it runs when the site changes
or on demand ("Execute check" in the UI), not on every 15-minute dispatch. It lives here because it reads CitrineOS
through the dispatch broker's REST settings (CARIFLEX_CITRINEOS_URL, _TOKEN, _TENANT, CARIFLEX_DISPATCH_CA_FILE),
and the station list and locations through CARIFLEX_CITRINEOS_GRAPHQL_URL when it is set.
"""

import dagster as dg

from cariflex_pipeline.defs.dispatch.resources import BrokerResource
from cariflex_pipeline.defs.resources import SiteResource
from cariflex_pipeline.dispatch.citrineos_assets import (
    AssetDiff,
    CitrineUnavailable,
    compare,
    fetch_inventory,
    read_citrineos,
)
from cariflex_pipeline.site_model import ChargePoint

SYNC_CHECK = "citrineos_asset_sync"


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def diff_table(diff: AssetDiff) -> str:
    """The differences as a markdown table, one row each, by station."""
    rows = [f"| {d.station_id} | {d.kind} | {_cell(d.site_model)} | {_cell(d.citrineos)} |" for d in diff.differences]
    return "\n".join(["| station | difference | site model | CitrineOS |", "|---|---|---|---|",
                      *(rows or ["| - | none | - | - |"])])


def sync_result(diff: AssetDiff) -> dg.AssetCheckResult:
    """WARN on any difference or unreadable row; what the REST data API cannot compare is always stated."""
    kinds = {kind: len(diff.of_kind(kind)) for kind in ("missing", "extra", "power", "location")}
    in_sync = not diff.differences and not diff.skipped
    summary = ", ".join(f"{n} {kind}" for kind, n in kinds.items() if n)
    if diff.skipped:
        summary = ", ".join(filter(None, [summary, f"{len(diff.skipped)} unreadable row(s)"]))
    return dg.AssetCheckResult(
        check_name=SYNC_CHECK, asset_key="sensor_registry", passed=in_sync, severity=dg.AssetCheckSeverity.WARN,
        description=(f"{len(diff.compared)} charge points match CitrineOS's device models" if in_sync else
                     f"site model and CitrineOS differ: {summary}"),
        metadata={
            **kinds, "unreadable_rows": len(diff.skipped),
            "differences": dg.MetadataValue.md(diff_table(diff)),
            "unreadable": dg.MetadataValue.md("\n".join(f"- {s}" for s in diff.skipped) or "none"),
            "not_compared": diff.not_compared,
        })


def _warning(description: str, reason: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=SYNC_CHECK, asset_key="sensor_registry", passed=False,
                               severity=dg.AssetCheckSeverity.WARN, description=description,
                               metadata={"not_compared": reason})


@dg.asset_check(asset="sensor_registry", name=SYNC_CHECK, blocking=False,
                description="Compares the site model's charge points (EVSE, connector, maximum power) with "
                            "CitrineOS's device models over its REST data API, and the station list and "
                            "locations over its GraphQL when configured; warns on any difference.")
def citrineos_asset_sync(site: SiteResource, dispatch_broker: BrokerResource) -> dg.AssetCheckResult:
    portfolio = site.portfolio()
    settings = dispatch_broker.settings()
    if not settings.rest_url:
        # not green: nothing was compared, and the operator should know why
        return _warning("not compared: CARIFLEX_CITRINEOS_URL is not set",
                        "everything: no CitrineOS REST URL configured")
    # A fleet's sites may sit in different CitrineOS tenants: each tenant's stations are read from that tenant.
    by_tenant: dict[str, list[ChargePoint]] = {}
    for site_id in portfolio.site_ids:
        tenant = portfolio.entry(site_id).citrineos_tenant or settings.tenant_id
        by_tenant.setdefault(tenant, []).extend(portfolio.site(site_id).charge_points)
    token, ca_file = settings.rest_token or None, settings.ca_file or None
    diffs = []
    for tenant, charge_points in by_tenant.items():
        try:
            known = read_citrineos(settings.rest_url, [cp.id for cp in charge_points], tenant_id=tenant,
                                   token=token, ca_file=ca_file)
            inventory = (fetch_inventory(dispatch_broker.graphql_url, tenant_id=tenant, token=token,
                                         ca_file=ca_file)
                         if dispatch_broker.graphql_url else None)
        except CitrineUnavailable as error:
            which = f" (tenant {tenant})" if len(by_tenant) > 1 else ""
            return _warning(f"not compared: {error}{which}", f"everything: CitrineOS could not be read{which}")
        diffs.append(compare(charge_points, known, inventory))
    return sync_result(diffs[0] if len(diffs) == 1 else _merged(diffs))


def _merged(diffs: list[AssetDiff]) -> AssetDiff:
    """One comparison of several tenants' (a fleet's): their differences and stations side by side."""
    not_compared = sorted({diff.not_compared for diff in diffs} - {"nothing"})
    return AssetDiff(differences=tuple(d for diff in diffs for d in diff.differences),
                     skipped=tuple(s for diff in diffs for s in diff.skipped),
                     compared=tuple(c for diff in diffs for c in diff.compared),
                     not_compared="; ".join(not_compared) or "nothing")
