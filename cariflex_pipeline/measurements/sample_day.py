"""A bundled, deterministic day of weather and PV for the site, so the pipeline runs offline.

Clear-sky irradiance (Haurwitz model) at the site's latitude and longitude, dimmed by passing trade-wind
cumulus (a fixed pseudo-random pattern per date: the same day always gives the same values, so reruns and
backfills are idempotent), a tropical temperature curve, and each PV installation's power from irradiance.
The values are beliefs of the day before at noon: a day-ahead forecast, which is what the scheduler uses.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd

from cariflex_pipeline.site_model import Site

SAMPLE_SOURCE = "sample-weather-model"
PERFORMANCE_RATIO = 0.8  # inverter, soiling and heat losses of a typical rooftop installation


def sample_day(day: date, site: Site) -> pd.DataFrame:
    """Irradiance, temperature and PV power on the site's slots of local `day` (sensor_id, event_start, value,
    belief_time)."""
    tz = site.tz
    start = datetime.combine(day, time(), tz)
    slots = pd.date_range(start, start + timedelta(days=1), freq=site.resolution, inclusive="left")
    midpoints = slots.tz_convert("UTC") + site.resolution / 2
    latitude, longitude = _site_coordinates(site)
    irradiance = _clear_sky_ghi(midpoints, latitude, longitude) * _cloud_factor(day, len(slots))
    hours = np.asarray((slots + site.resolution / 2).hour + (slots + site.resolution / 2).minute / 60, dtype=float)
    temperature = 26.0 + 3.5 * np.sin(2 * math.pi * (hours - 9.0) / 24.0)

    series = {site.signals.irradiance: irradiance, site.signals.temperature: temperature}
    for pv in site.pv_installations:
        series[pv.sensor_id] = pv.peak_power_kw * irradiance / 1000.0 * PERFORMANCE_RATIO
    belief_time = pd.Timestamp(datetime.combine(day - timedelta(days=1), time(12), tz)).tz_convert("UTC")
    frames = [
        pd.DataFrame({"sensor_id": sensor_id, "event_start": slots.tz_convert("UTC"),
                      "value": np.round(values, 3), "belief_time": belief_time})
        for sensor_id, values in series.items()
    ]
    return pd.concat(frames, ignore_index=True)


def _site_coordinates(site: Site) -> tuple[float, float]:
    locations = [cp.location for cp in site.charge_points]
    return (float(np.mean([loc.latitude for loc in locations])), float(np.mean([loc.longitude for loc in locations])))


def _clear_sky_ghi(moments: pd.DatetimeIndex, latitude: float, longitude: float) -> np.ndarray:
    day_of_year = np.asarray(moments.day_of_year, dtype=float)
    declination = np.radians(23.44) * np.sin(2 * math.pi * (284 + day_of_year) / 365)
    solar_hours = np.asarray(moments.hour + moments.minute / 60, dtype=float) + longitude / 15.0
    hour_angle = np.radians(15.0 * (solar_hours - 12.0))
    lat = math.radians(latitude)
    cos_zenith = math.sin(lat) * np.sin(declination) + math.cos(lat) * np.cos(declination) * np.cos(hour_angle)
    cos_zenith = np.clip(cos_zenith, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        ghi = np.where(cos_zenith > 0.01, 1098.0 * cos_zenith * np.exp(-0.059 / cos_zenith), 0.0)
    return ghi


def _cloud_factor(day: date, count: int) -> np.ndarray:
    generator = np.random.default_rng(day.toordinal())
    shade = np.convolve(generator.uniform(0.0, 0.45, count + 4), np.ones(5) / 5, mode="valid")[:count]
    return 1.0 - shade
