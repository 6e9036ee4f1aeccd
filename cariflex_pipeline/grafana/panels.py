"""The seed's seventeen panels (shared/seed/INFRASTRUCTURE.md), under its exact titles, each with the SQL it runs on
the store. Plain data, no Grafana library: the tests run these queries on PostgreSQL, dashboard.py lays them out.

Every query reads the latest belief per (sensor, slot), as TimeSeriesStore.read_latest does (newest belief time,
then newest source), and returns Grafana's time-series shape: a `time` column, sorted, then either `value` alone
or `metric` (the series name) and `value`. `$__timeFilter` is Grafana's macro for the dashboard's time range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cariflex_pipeline.derived.sensors import DERIVED_SOURCE, SOC_OFFSET, DerivedSensors, derived_sensors
from cariflex_pipeline.dispatch.sessions import METER_SOURCE
from cariflex_pipeline.scheduling.signals import SCHEDULER_SOURCE
from cariflex_pipeline.site_model import Portfolio, Site

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
    limit: float | None = None  # drawn as a red line: the value no series should cross


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


def _flexibility_impact_sql(derived: DerivedSensors) -> str:
    """Grid impact with the plan against the same day with uncontrolled charging (G − ΔG, docs/derived.md)."""
    inner = latest_sql([derived.grid_impact, derived.flexibility_impact], series="per_sensor")
    return ("SELECT time,\n"
            "  sum(value) FILTER (WHERE metric = 'grid_impact') AS \"with flexibility\",\n"
            "  sum(CASE metric WHEN 'grid_impact' THEN value ELSE -value END) AS \"uncontrolled charging\"\n"
            f"FROM (\n{inner}\n) series\nGROUP BY time\nHAVING count(*) = 2\nORDER BY time")


def span(sensor_ids: list[int]) -> str:
    """The ids as a description names them: "41-50" when they run on, else "61, 63"."""
    ids = sorted(sensor_ids)
    if len(ids) > 1 and ids == list(range(ids[0], ids[-1] + 1)):
        return f"{ids[0]}-{ids[-1]}"
    return ", ".join(str(i) for i in ids) or "none"


def seed_panels(site: Site) -> list[PanelSpec]:
    """The seventeen panels in the seed's order, on this site's sensors (a fleet's site: its own, and its own
    derived range)."""
    pv = [pv.sensor_id for pv in site.pv_installations]
    points = [cp.sensor_id for cp in site.charge_points]
    batteries = [battery.sensor_id for battery in site.batteries]
    battery_soc = [b + SOC_OFFSET for b in batteries]
    v2g_soc = [v.sensor_id + SOC_OFFSET for v in site.v2g_chargers]
    signals = site.signals
    derived = derived_sensors(site)
    return [
        PanelSpec("Production PV (kW)", latest_sql(pv, "per_sensor"), "kwatt", "kW",
                  description=f"PV power per installation (sensors {span(pv)}): forecast or measured", stacked=True),
        PanelSpec("Consommation VE (kW)", latest_sql(points), "kwatt", "kW",
                  description=f"EV charging power of the site, all charge points ({span(points)}): metered, else "
                              "planned"),
        # The same sensors hold the fill level the S2 RMs report (cariflex-s2-cem): one meaning per curve.
        PanelSpec("SOC Batteries (kWh)", latest_sql(battery_soc, "per_sensor", sources=[DERIVED_SOURCE],
                                                    end_of_slot=True), "kwatth", "kWh",
                  description=f"Stored energy per battery at the end of each slot (derived, {span(battery_soc)})"),
        PanelSpec("SOC V2G (kWh)", latest_sql(v2g_soc, "per_sensor", sources=[DERIVED_SOURCE], end_of_slot=True),
                  "kwatth", "kWh",
                  description=f"Energy in the EV at each V2G charger, end of slot (derived, {span(v2g_soc)})"),
        PanelSpec("Flexibilite Totale (kWh)", latest_sql([derived.total_flexibility]), "kwatth", "kWh",
                  description="Energy the EVs, batteries and V2G EVs could still take up (derived, "
                              f"{derived.total_flexibility})"),
        PanelSpec("Impact Reseau (kW)", latest_sql([derived.grid_impact]), "kwatt", "kW",
                  description=f"Site exchange with the grid, import > 0 (derived, {derived.grid_impact})"),
        PanelSpec("Irradiance & Temperature", latest_sql([signals.irradiance, signals.temperature], "per_sensor"),
                  "Wm2", "W/m²",
                  description=f"Irradiance ({signals.irradiance}) and temperature ({signals.temperature})",
                  unit_overrides={site.sensor(signals.temperature).name: ("celsius", "°C")}),
        PanelSpec("Prix DSO (EUR/MWh)", latest_sql([signals.dso_price]), EUR_PER_MWH, "EUR/MWh",
                  description=f"DSO network price ({signals.dso_price})"),
        PanelSpec("DSR Price Signal (EUR/MWh)", latest_sql([signals.consumption_price]), EUR_PER_MWH, "EUR/MWh",
                  description=f"Consumption price from the OpenADR VTN ({signals.consumption_price})"),
        PanelSpec("Load Control Signal (%)", latest_sql([signals.load_control]), "percent", "%",
                  description="Share of the grid connection the DSO allows, from the OpenADR VTN "
                              f"({signals.load_control})"),
        PanelSpec("Impact Flexibilite Reseau (kW)", latest_sql([derived.flexibility_impact]), "kwatt", "kW",
                  description="Grid impact minus the same day with uncontrolled charging; < 0: less import "
                              f"(derived, {derived.flexibility_impact})"),
        PanelSpec("Battery Power (kW)", latest_sql(batteries, "per_sensor"), "kwatt", "kW",
                  description=f"Power per stationary battery, charge > 0 ({span(batteries)}): metered, else planned"),
        PanelSpec("EV Power (kW)", latest_sql(points, "per_sensor", sources=[SCHEDULER_SOURCE]), "kwatt", "kW",
                  description=f"Planned power per charge point ({span(points)}), as the scheduler wrote it",
                  stacked=True),
        PanelSpec("Flexibility Impact (kW)", _flexibility_impact_sql(derived), "kwatt", "kW",
                  description="Grid impact with the plan and with uncontrolled charging (derived, "
                              f"{derived.grid_impact} and {derived.flexibility_impact})"),
        PanelSpec("EV Charging Power (kW)", latest_sql(points, "per_sensor"), "kwatt", "kW",
                  description=f"Power per charge point ({span(points)}): CitrineOS meter values ({METER_SOURCE}) "
                              "where reported, else the plan"),
        PanelSpec("Active Charging Sessions", latest_sql([derived.active_sessions]), "none", "EVs", kind="stat",
                  description=f"EVs connected at the slot start (derived, {derived.active_sessions}); the number is "
                              "the latest slot"),
        PanelSpec("EV Flexibility Potential (kWh)", latest_sql([derived.ev_flexibility_potential]), "kwatth", "kWh",
                  description="Energy the connected EVs could take beyond their needs before leaving (derived, "
                              f"{derived.ev_flexibility_potential})"),
    ]


def by_site_sql(series: list[tuple[str, list[int], float]]) -> str:
    """One series per site (`metric` = its label): the latest beliefs of its sensors summed per slot (`latest_sql`),
    times its scale (100 / capacity for a share of the connection, 1 for the value itself)."""
    parts = [f"SELECT time, '{label.replace(chr(39), chr(39) * 2)}' AS metric, value * {scale!r} AS value FROM (\n"
             f"{latest_sql(sensor_ids)}\n) site_{number}"
             for number, (label, sensor_ids, scale) in enumerate(series)]
    return "SELECT time, metric, value FROM (\n" + "\nUNION ALL\n".join(parts) + "\n) sites\nORDER BY time, metric"


def fleet_panels(portfolio: Portfolio) -> list[PanelSpec]:
    """The fleet at a glance, one series per site: how close each site is to its import limit, what it exchanges
    with the grid, what its EVs draw, how many EVs it holds and the flexibility they offer. Each site's own
    dashboard has the rest."""
    sites = [portfolio.site(site_id) for site_id in portfolio.site_ids]
    derived = [derived_sensors(site) for site in sites]
    points = [[cp.sensor_id for cp in site.charge_points] for site in sites]

    def by_site(sensor_ids: list[list[int]], scales: list[float] | None = None) -> str:
        return by_site_sql([(site.name, ids, scale) for site, ids, scale in zip(
            sites, sensor_ids, scales or [1.0] * len(sites), strict=True)])

    capacities = ", ".join(f"{site.name} {site.grid_connection.import_capacity_kw:g} kW" for site in sites)
    return [
        PanelSpec("Grid import by site (% of its connection)",
                  by_site([[ids.grid_impact] for ids in derived],
                          [100 / site.grid_connection.import_capacity_kw for site in sites]),
                  "percent", "% of import capacity", limit=100,
                  description=f"Each site's exchange with the grid as a share of its import capacity ({capacities});"
                              " above the red line a site draws more than its connection allows, below 0 it exports"),
        PanelSpec("Grid impact by site (kW)", by_site([[ids.grid_impact] for ids in derived]), "kwatt", "kW",
                  description="Each site's exchange with the grid, import > 0 (derived, "
                              f"{', '.join(str(ids.grid_impact) for ids in derived)})"),
        PanelSpec("EV charging power by site (kW)", by_site(points), "kwatt", "kW", stacked=True,
                  description="All charge points of each site, stacked: the fleet's total EV load "
                              "(CitrineOS meter values where reported, else the plan)"),
        PanelSpec("Active charging sessions by site", by_site([[ids.active_sessions] for ids in derived]), "none",
                  "EVs", kind="stat", description="EVs connected per site at the latest slot (derived)"),
        PanelSpec("EV flexibility potential by site (kWh)",
                  by_site([[ids.ev_flexibility_potential] for ids in derived]), "kwatth", "kWh", stacked=True,
                  description="Energy the connected EVs of each site could take beyond their needs (derived)"),
    ]
