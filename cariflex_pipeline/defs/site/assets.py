"""The site as an asset: the sensor registry in the store, with the site shown in the UI."""


import dagster as dg

from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.site_model import Portfolio, Site


@dg.asset(group_name="site", kinds={"sqlalchemy"})
def sensor_registry(
    context: dg.AssetExecutionContext, site: SiteResource, store: TimeSeriesStoreResource
) -> dg.MaterializeResult:
    """Every sensor of the site model (of every site of a fleet) registered in the time-series store (ids, names,
    units, resolutions)."""
    portfolio = site.portfolio()
    models = [portfolio.site(site_id) for site_id in portfolio.site_ids]
    # the resource's portfolio (its configured file), each sensor with its site: once, not once per site
    time_series = store.open(portfolio)
    registered = time_series.register_portfolio(portfolio)
    context.log.info("registered %d sensors of %s in %s", registered, portfolio.name, time_series.describe())
    if len(models) == 1:
        return dg.MaterializeResult(metadata={"store": time_series.describe(), "sensors_registered": registered,
                                              **_site_metadata(models[0])})
    return dg.MaterializeResult(metadata={
        "portfolio": portfolio.name, "store": time_series.describe(), "sensors_registered": registered,
        "sites": dg.MetadataValue.md(_site_table(portfolio)),
        **{f"{site_id}: {key}": value for site_id, model in zip(portfolio.site_ids, models, strict=True)
           for key, value in _site_metadata(model).items()},
    })


def _site_metadata(site: Site) -> dict[str, object]:
    return {
        "site": site.name,
        "charge_points": len(site.charge_points),
        "charge_point_capacity_kw": sum(cp.max_power_kw for cp in site.charge_points),
        "import_capacity_kw": site.grid_connection.import_capacity_kw,
        "sensors": dg.MetadataValue.md(_sensor_table(site)),
        "charge_point_table": dg.MetadataValue.md(_charge_point_table(site)),
    }


def _site_table(portfolio: Portfolio) -> str:
    """One row per site of a fleet: what an operator checks first (is every site there, with its limit)."""
    rows = []
    for site_id in portfolio.site_ids:
        model, entry = portfolio.site(site_id), portfolio.entry(site_id)
        rows.append(f"| {site_id} | {model.name} | {len(model.charge_points)} | "
                    f"{model.grid_connection.import_capacity_kw:g} / {model.grid_connection.export_capacity_kw:g} kW"
                    f" | {entry.citrineos_tenant or 'deployment default'} |")
    return "\n".join(["| site | name | charge points | import / export | CitrineOS tenant |",
                      "|---|---|---|---|---|", *rows])


def _sensor_table(site: Site) -> str:
    rows = [f"| {s.id} | {s.name} | {s.unit} | {int(s.resolution.total_seconds() // 60)} min |" for s in site.sensors]
    return "\n".join(["| id | name | unit | resolution |", "|---|---|---|---|", *rows])


def _charge_point_table(site: Site) -> str:
    rows = [
        f"| {cp.id} | {cp.sensor_id} | {cp.evse_id}/{cp.connector_id} | {cp.max_power_kw:g} kW | "
        f"{cp.location.address} ({cp.location.latitude:.4f}, {cp.location.longitude:.4f}) |"
        for cp in site.charge_points
    ]
    header = ["| charge point | sensor | EVSE/connector | max power | location |", "|---|---|---|---|---|"]
    return "\n".join([*header, *rows])
