"""The site model: one validated description of a charging site, read from a YAML file, and the portfolio of
several sites (portfolio.py) whose every site is such a description.

Everything else reads charge points, sensors and limits from here instead of literals.
"""

from cariflex_pipeline.site_model.model import (
    ALLOWED_UNITS,
    Battery,
    ChargePoint,
    GridConnection,
    Location,
    PvInstallation,
    Sensor,
    SignalSensors,
    Site,
    SiteModelError,
    StrictModel,
    V2gCharger,
    default_site_file,
    load_site,
)
from cariflex_pipeline.site_model.portfolio import (
    OpenAdrTarget,
    Portfolio,
    PortfolioError,
    PortfolioSignal,
    PortfolioSite,
    load_portfolio,
    parse_portfolio,
)

__all__ = [
    "ALLOWED_UNITS",
    "Battery",
    "ChargePoint",
    "GridConnection",
    "Location",
    "OpenAdrTarget",
    "Portfolio",
    "PortfolioError",
    "PortfolioSignal",
    "PortfolioSite",
    "PvInstallation",
    "Sensor",
    "SignalSensors",
    "Site",
    "SiteModelError",
    "StrictModel",
    "V2gCharger",
    "default_site_file",
    "load_portfolio",
    "load_site",
    "parse_portfolio",
]
