"""Resources shared by every stage: the site model and the time-series store.

Connection details are read from the environment at run time (see cariflex_pipeline.store.engine and
cariflex_pipeline.site_model), so the UI's resource config never shows a URL or a password.
"""

from __future__ import annotations

from functools import lru_cache

import dagster as dg
from pydantic import Field

from cariflex_pipeline.defs.sites import RunSite, run_site
from cariflex_pipeline.site_model import Portfolio, Sensor, Site, load_portfolio
from cariflex_pipeline.store import TimeSeriesStore, default_database_url


class SiteResource(dg.ConfigurableResource):
    """The validated portfolio (one site or a fleet) and each site's model (charge points, sensors, connection)."""

    site_file: str | None = Field(
        default=None, description="Path of a site or portfolio YAML file; default: $CARIFLEX_PORTFOLIO_FILE, else "
        "$CARIFLEX_SITE_FILE or the bundled site.",
    )

    def portfolio(self) -> Portfolio:
        return load_portfolio(self.site_file)

    def load(self, site_id: str | None = None) -> Site:
        """`site_id`'s model; without one, the only site (an error naming the sites for a fleet)."""
        portfolio = self.portfolio()
        return portfolio.only_site() if site_id is None else portfolio.site(site_id)

    def for_run(self, context: dg.AssetExecutionContext | dg.OpExecutionContext) -> RunSite:
        """The site the run works on (defs/sites.py): the only one, or the fleet run's partition's."""
        return run_site(context, self.portfolio())


class TimeSeriesStoreResource(dg.ConfigurableResource):
    """The time-series store, migrated and holding the portfolio's sensors (each with its site) before any asset
    writes to it."""

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: $CARIFLEX_DATABASE_URL, else SQLite under $DAGSTER_HOME.",
    )

    def open(self, portfolio: Portfolio) -> TimeSeriesStore:
        """The store, migrated, holding every sensor of `portfolio` (SiteResource's: the file the run is
        configured with) with its site."""
        owners = portfolio.sensor_sites()
        owned = tuple((sensor, owners[sensor.id]) for sensor in portfolio.all_sensors())
        return _ready_store(self.database_url or default_database_url(), owned)


@lru_cache(maxsize=8)
def _ready_store(database_url: str, owned: tuple[tuple[Sensor, str | None], ...]) -> TimeSeriesStore:
    # Migrating and registering once per process keeps every later asset in a run cheap. The portfolio's sensors
    # come as (sensor, site) pairs: a Portfolio is not hashable, the pairs are the cache key.
    store = TimeSeriesStore(database_url)
    store.migrate()
    store.register_sensors([sensor for sensor, _ in owned], owners={sensor.id: site for sensor, site in owned})
    return store


def forget_ready_stores() -> None:
    """Forget which stores this process has migrated: for a database dropped or recreated under a running process
    (tests that start from an empty schema)."""
    _ready_store.cache_clear()


SHARED_RESOURCES = {"site": SiteResource(), "store": TimeSeriesStoreResource()}
