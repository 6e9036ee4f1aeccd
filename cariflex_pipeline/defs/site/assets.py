"""The site as an asset: the sensor registry in the store, with the site shown in the UI."""


import dagster as dg

from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.site_model import Site


@dg.asset(group_name="site", kinds={"sqlalchemy"})
def sensor_registry(
    context: dg.AssetExecutionContext, site: SiteResource, store: TimeSeriesStoreResource
) -> dg.MaterializeResult:
    """Every sensor of the site model registered in the time-series store (ids, names, units, resolutions)."""
    site_model = site.load()
    time_series = store.open(site_model)
    registered = time_series.register_sensors(site_model.sensors)
    context.log.info("registered %d sensors of %s in %s", registered, site_model.name, time_series.describe())
    return dg.MaterializeResult(
        metadata={
            "site": site_model.name,
            "store": time_series.describe(),
            "sensors_registered": registered,
            "charge_points": len(site_model.charge_points),
            "charge_point_capacity_kw": sum(cp.max_power_kw for cp in site_model.charge_points),
            "import_capacity_kw": site_model.grid_connection.import_capacity_kw,
            "sensors": dg.MetadataValue.md(_sensor_table(site_model)),
            "charge_point_table": dg.MetadataValue.md(_charge_point_table(site_model)),
        }
    )


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
