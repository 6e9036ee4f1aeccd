"""The seed's seventeen panels (shared/seed/INFRASTRUCTURE.md), under its exact titles, each with the SQL it runs on
the store. Plain data, no Grafana library: the tests run these queries on PostgreSQL, dashboard.py lays them out.

Every query reads the latest belief per (sensor, slot), as TimeSeriesStore.read_latest does (newest belief time,
then newest source), and returns Grafana's time-series shape: a `time` column, sorted, then either `value` alone
or `metric` (the series name) and `value`. `$__timeFilter` is Grafana's macro for the dashboard's time range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cariflex_pipeline.derived.sensors import (
    ACTIVE_SESSIONS,
    DERIVED_SOURCE,
    EV_FLEXIBILITY_POTENTIAL,
    FLEXIBILITY_IMPACT,
    GRID_IMPACT,
    SOC_OFFSET,
    TOTAL_FLEXIBILITY,
)
from cariflex_pipeline.dispatch.sessions import METER_SOURCE
from cariflex_pipeline.scheduling.signals import SCHEDULER_SOURCE
from cariflex_pipeline.site_model import Site

EUR_PER_MWH = "suffix: EUR/MWh"  # Grafana has no EUR/MWh unit: a custom suffix


@dataclass(frozen=True)
class PanelSpec:
    title: str
    sql: str
    unit: str  # Grafana unit id: kwatt, kwatth, percent, none, ...
    axis_label: str
    kind: Literal["timeseries", "stat"] = "timeseries"
    description: str = ""
    stacked: bool = False
    unit_overrides: dict[str, tuple[str, str]] = field(default_factory=dict)  # series -> (unit, axis label)


def latest_sql(sensor_ids: list[int], series: Literal["per_sensor", "one"] = "one", sources: list[str] | None = None,
               end_of_slot: bool = False) -> str:
    """The latest belief per slot of these sensors in the time range: per sensor (`metric` = the sensor's name)
    or one series (`value` summed over the sensors). `end_of_slot` puts a value at its slot's end (a state of
    charge at the end of the slot); `sources` keeps only those data sources."""
    ids = ", ".join(str(sensor_id) for sensor_id in sorted(sensor_ids))
    at = "b.event_start + make_interval(secs => b.event_resolution_seconds)" if end_of_slot else "b.event_start"
    source_filter = ""
    if sources:
        names = ", ".join(f"'{name}'" for name in sources)
        source_filter = f"\n    AND b.source_id IN (SELECT id FROM data_sources WHERE name IN ({names}))"
    latest = (f"SELECT DISTINCT ON (b.sensor_id, b.event_start) {at} AS time, s.name AS metric, b.value\n"
              f"  FROM beliefs b JOIN sensors s ON s.id = b.sensor_id\n"
              f"  WHERE b.sensor_id IN ({ids}) AND $__timeFilter(b.event_start){source_filter}\n"
              f"  ORDER BY b.sensor_id, b.event_start, b.belief_time DESC, b.source_id DESC")
    if series == "per_sensor":
        return f"SELECT time, metric, value FROM (\n  {latest}\n) latest\nORDER BY time, metric"
    return f"SELECT time, sum(value) AS value FROM (\n  {latest}\n) latest\nGROUP BY time\nORDER BY time"


def _flexibility_impact_sql() -> str:
    """Grid impact with the plan against the same day with uncontrolled charging (G − ΔG, docs/derived.md)."""
    inner = latest_sql([GRID_IMPACT, FLEXIBILITY_IMPACT], series="per_sensor")
    return ("SELECT time,\n"
            "  sum(value) FILTER (WHERE metric = 'grid_impact') AS \"with flexibility\",\n"
            "  sum(CASE metric WHEN 'grid_impact' THEN value ELSE -value END) AS \"uncontrolled charging\"\n"
            f"FROM (\n{inner}\n) series\nGROUP BY time\nHAVING count(*) = 2\nORDER BY time")


def seed_panels(site: Site) -> list[PanelSpec]:
    """The seventeen panels in the seed's order, on this site's sensors."""
    pv = [pv.sensor_id for pv in site.pv_installations]
    points = [cp.sensor_id for cp in site.charge_points]
    batteries = [battery.sensor_id for battery in site.batteries]
    signals = site.signals
    return [
        PanelSpec("Production PV (kW)", latest_sql(pv, "per_sensor"), "kwatt", "kW",
                  description="PV power per installation (sensors 41-50): forecast or measured", stacked=True),
        PanelSpec("Consommation VE (kW)", latest_sql(points), "kwatt", "kW",
                  description="EV charging power of the site, all charge points (61-70): metered, else planned"),
        # The same sensors hold the fill level the S2 RMs report (cariflex-s2-cem): one meaning per curve.
        PanelSpec("SOC Batteries (kWh)", latest_sql([b + SOC_OFFSET for b in batteries], "per_sensor",
                                                    sources=[DERIVED_SOURCE], end_of_slot=True), "kwatth", "kWh",
                  description="Stored energy per battery at the end of each slot (derived, 151-160)"),
        PanelSpec("SOC V2G (kWh)", latest_sql([v.sensor_id + SOC_OFFSET for v in site.v2g_chargers], "per_sensor",
                                              sources=[DERIVED_SOURCE], end_of_slot=True), "kwatth", "kWh",
                  description="Energy in the EV at each V2G charger, end of slot (derived, 171-180)"),
        PanelSpec("Flexibilite Totale (kWh)", latest_sql([TOTAL_FLEXIBILITY]), "kwatth", "kWh",
                  description="Energy the EVs, batteries and V2G EVs could still take up (derived, 101)"),
        PanelSpec("Impact Reseau (kW)", latest_sql([GRID_IMPACT]), "kwatt", "kW",
                  description="Site exchange with the grid, import > 0 (derived, 102)"),
        PanelSpec("Irradiance & Temperature", latest_sql([signals.irradiance, signals.temperature], "per_sensor"),
                  "Wm2", "W/m²", description="Irradiance (81) and temperature (82)",
                  unit_overrides={site.sensor(signals.temperature).name: ("celsius", "°C")}),
        PanelSpec("Prix DSO (EUR/MWh)", latest_sql([signals.dso_price]), EUR_PER_MWH, "EUR/MWh",
                  description="DSO network price (85)"),
        PanelSpec("DSR Price Signal (EUR/MWh)", latest_sql([signals.consumption_price]), EUR_PER_MWH, "EUR/MWh",
                  description="Consumption price from the OpenADR VTN (84)"),
        PanelSpec("Load Control Signal (%)", latest_sql([signals.load_control]), "percent", "%",
                  description="Share of the grid connection the DSO allows, from the OpenADR VTN (86)"),
        PanelSpec("Impact Flexibilite Reseau (kW)", latest_sql([FLEXIBILITY_IMPACT]), "kwatt", "kW",
                  description="Grid impact minus the same day with uncontrolled charging; < 0: less import "
                              "(derived, 103)"),
        PanelSpec("Battery Power (kW)", latest_sql(batteries, "per_sensor"), "kwatt", "kW",
                  description="Power per stationary battery, charge > 0 (51-60): metered, else planned"),
        PanelSpec("EV Power (kW)", latest_sql(points, "per_sensor", sources=[SCHEDULER_SOURCE]), "kwatt", "kW",
                  description="Planned power per charge point (61-70), as the scheduler wrote it", stacked=True),
        PanelSpec("Flexibility Impact (kW)", _flexibility_impact_sql(), "kwatt", "kW",
                  description="Grid impact with the plan and with uncontrolled charging (derived, 102 and 103)"),
        PanelSpec("EV Charging Power (kW)", latest_sql(points, "per_sensor"), "kwatt", "kW",
                  description=f"Power per charge point (61-70): CitrineOS meter values ({METER_SOURCE}) where "
                              "reported, else the plan"),
        PanelSpec("Active Charging Sessions", latest_sql([ACTIVE_SESSIONS]), "none", "EVs", kind="stat",
                  description="EVs connected at the slot start (derived, 104); the number is the latest slot"),
        PanelSpec("EV Flexibility Potential (kWh)", latest_sql([EV_FLEXIBILITY_POTENTIAL]), "kwatth", "kWh",
                  description="Energy the connected EVs could take beyond their needs before leaving (derived, "
                              "105)"),
    ]
