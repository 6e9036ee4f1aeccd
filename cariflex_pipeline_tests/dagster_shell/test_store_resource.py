"""The store an asset opens holds the sensors of the site file the run is configured with (SiteResource), each
with that file's site: not the deployment's default portfolio's."""

from __future__ import annotations

import dagster as dg
import yaml

from cariflex_pipeline.defs.measurements.assets import site_measurements
from cariflex_pipeline.defs.measurements.resources import MeasurementsResource
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.site_model.model import default_site_file
from cariflex_pipeline.store import TimeSeriesStore


def test_an_asset_registers_the_configured_site_files_sensors_with_its_site(tmp_path) -> None:
    raw = yaml.safe_load(default_site_file().read_text(encoding="utf-8"))
    raw["name"] = "Le Robert"  # another site than the bundled default's (cariflex-martinique)
    site_file = tmp_path / "le-robert.yaml"
    site_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [site_measurements], instance=instance, partition_key="2026-11-25",
            resources={"site": SiteResource(site_file=str(site_file)), "measurements": MeasurementsResource(),
                       "store": TimeSeriesStoreResource(database_url=url)})
    assert result.success
    store = TimeSeriesStore(url)
    sensor_ids = {sensor.id for sensor in SiteResource(site_file=str(site_file)).load().sensors}
    assert set(store.site_sensor_ids("le-robert")) == sensor_ids
    assert store.site_sensor_ids("cariflex-martinique") == []
