"""The site model: one validated description of a charging site, read from a YAML file.

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

__all__ = [
    "ALLOWED_UNITS",
    "Battery",
    "ChargePoint",
    "GridConnection",
    "Location",
    "PvInstallation",
    "Sensor",
    "SignalSensors",
    "Site",
    "SiteModelError",
    "StrictModel",
    "V2gCharger",
    "default_site_file",
    "load_site",
]
