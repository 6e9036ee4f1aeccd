"""The generated Grafana dashboard: the seed's seventeen panels, the committed JSON matching the generator, the
provisioning wired to compose, and every panel's SQL run on the real PostgreSQL store after the main job."""

import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from sqlalchemy import create_engine

from cariflex_pipeline import site_model
from cariflex_pipeline.definitions import MAIN_JOB_NAME, defs
from cariflex_pipeline.defs.derived import DERIVED_ASSETS
from cariflex_pipeline.defs.measurements.assets import FILE_SOURCE
from cariflex_pipeline.derived.sensors import derived_sensors
from cariflex_pipeline.grafana.__main__ import DEFAULT_OUTPUT, main
from cariflex_pipeline.grafana.dashboard import DATASOURCE, dashboard_json
from cariflex_pipeline.grafana.panels import fleet_panels, seed_panels
from cariflex_pipeline.scheduling.sessions import BUNDLED_DAY
from cariflex_pipeline.site_model import Site
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.conftest import _fresh_postgres_schema

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PORTFOLIO_FILE = Path(site_model.__file__).with_name("martinique_portfolio.yaml")
# shared/seed/INFRASTRUCTURE.md, "Grafana Dashboard (17 panels)", in its order
SEED_TITLES = [
    "Production PV (kW)", "Consommation VE (kW)", "SOC Batteries (kWh)", "SOC V2G (kWh)",
    "Flexibilite Totale (kWh)", "Impact Reseau (kW)", "Irradiance & Temperature", "Prix DSO (EUR/MWh)",
    "DSR Price Signal (EUR/MWh)", "Load Control Signal (%)", "Impact Flexibilite Reseau (kW)",
    "Battery Power (kW)", "EV Power (kW)", "Flexibility Impact (kW)", "EV Charging Power (kW)",
    "Active Charging Sessions", "EV Flexibility Potential (kWh)",
]
PER_SENSOR = ["time", "metric", "value"]
ONE_SERIES = ["time", "value"]
COLUMNS = {
    "Production PV (kW)": PER_SENSOR, "Consommation VE (kW)": ONE_SERIES, "SOC Batteries (kWh)": PER_SENSOR,
    "SOC V2G (kWh)": PER_SENSOR, "Flexibilite Totale (kWh)": ONE_SERIES, "Impact Reseau (kW)": ONE_SERIES,
    "Irradiance & Temperature": PER_SENSOR, "Prix DSO (EUR/MWh)": ONE_SERIES,
    "DSR Price Signal (EUR/MWh)": ONE_SERIES, "Load Control Signal (%)": ONE_SERIES,
    "Impact Flexibilite Reseau (kW)": ONE_SERIES, "Battery Power (kW)": PER_SENSOR, "EV Power (kW)": PER_SENSOR,
    "Flexibility Impact (kW)": ["time", "with flexibility", "uncontrolled charging"],
    "EV Charging Power (kW)": PER_SENSOR, "Active Charging Sessions": ONE_SERIES,
    "EV Flexibility Potential (kWh)": ONE_SERIES,
}
# Panels whose value is a state at the end of its slot, drawn at that moment
END_OF_SLOT = {"SOC Batteries (kWh)", "SOC V2G (kWh)"}


def test_the_dashboard_has_the_seed_panels_with_units_in_site_time(site: Site) -> None:
    dashboard = json.loads(dashboard_json(site))
    assert [panel["title"] for panel in dashboard["panels"]] == SEED_TITLES
    assert dashboard["timezone"] == "America/Martinique"
    for panel in dashboard["panels"]:
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        [target] = panel["targets"]
        assert target["datasource"] == {"type": DATASOURCE.type_val, "uid": DATASOURCE.uid}
        assert target["format"] == "time_series" and "$__timeFilter(b.event_start)" in target["rawSql"]
    by_title = {panel["title"]: panel for panel in dashboard["panels"]}
    assert by_title["Impact Reseau (kW)"]["fieldConfig"]["defaults"]["custom"]["axisLabel"] == "kW"
    assert by_title["Active Charging Sessions"]["type"] == "stat"


def test_the_committed_dashboard_matches_the_generator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0
    assert f"{DEFAULT_OUTPUT} matches the generator" in capsys.readouterr().out


def test_the_check_fails_with_a_diff_when_the_committed_json_was_edited(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edited = tmp_path / "cariflex.json"
    edited.write_text(DEFAULT_OUTPUT.read_text(encoding="utf-8").replace('"Prix DSO (EUR/MWh)"', '"Prix DSO"'),
                      encoding="utf-8")
    assert main(["--check", "--output", str(edited)]) == 1
    output = capsys.readouterr()
    assert '-      "title": "Prix DSO",' in output.out
    assert '+      "title": "Prix DSO (EUR/MWh)",' in output.out
    assert "differs from the generator: run python -m cariflex_pipeline.grafana" in output.err
    assert main(["--output", str(edited)]) == 0  # regenerating repairs it
    assert main(["--check", "--output", str(edited)]) == 0


def test_the_provisioning_reads_the_connection_compose_gives_grafana() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    grafana = compose["services"]["grafana"]
    provisioning = DEPLOY / "grafana" / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources" / "cariflex.yaml").read_text())["datasources"]
    assert source["uid"] == DATASOURCE.uid and source["type"] == DATASOURCE.type_val
    written = json.dumps(source)
    for variable in ("HOST", "PORT", "DB", "USER", "PASSWORD", "SSLMODE"):
        name = f"CARIFLEX_GRAFANA_PG_{variable}"
        assert "${" + name + "}" in written and name in grafana["environment"]
    [provider] = yaml.safe_load((provisioning / "dashboards" / "cariflex.yaml").read_text())["providers"]
    mounts = dict(volume.rsplit(":", 1)[0].split(":", 1) for volume in grafana["volumes"] if volume.endswith(":ro"))
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert (DEPLOY / "grafana" / "dashboards" / DEFAULT_OUTPUT.name).resolve() == DEFAULT_OUTPUT


def _grafana_sql(sql: str, start: datetime, end: datetime) -> str:
    """Expand $__timeFilter as Grafana's PostgreSQL datasource does: `column BETWEEN 'from' AND 'to'` (UTC)."""
    def iso(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    return sql.replace("$__timeFilter(b.event_start)", f"b.event_start BETWEEN '{iso(start)}' AND '{iso(end)}'")


@pytest.fixture
def day_after_main_job(postgres_url: str, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                       ) -> tuple[datetime, datetime]:
    """Today's site day after the main job on PostgreSQL, with what the bundled defaults leave empty: a DSO price
    in the store, the batteries planned, and a V2G EV (stating its SoC) in the session day."""
    _fresh_postgres_schema(postgres_url)
    monkeypatch.setenv("CARIFLEX_DATABASE_URL", postgres_url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    template = json.loads(BUNDLED_DAY.read_text(encoding="utf-8"))
    template["sessions"].append({"id": "v2g-fleet", "charge_point": "v2g_01", "arrival": "00:00",
                                 "departure": "00:00+1", "soc_now": 0.5, "soc_target": 0.8,
                                 "battery_capacity_kwh": 60, "max_power_kw": 11})
    sessions_file = tmp_path / "sessions.json"
    sessions_file.write_text(json.dumps(template), encoding="utf-8")
    start = datetime.combine(datetime.now(site.tz).date(), time(), site.tz)
    end = start + timedelta(days=1)
    store = defs.resources["store"].open(defs.resources["site"].portfolio())
    dso = pd.DataFrame({"sensor_id": site.signals.dso_price, "value": 60.0, "belief_time": start,
                        "event_start": pd.date_range(start, end, freq="15min", inclusive="left")})
    store.write_beliefs(dso, source=FILE_SOURCE, source_type="measurement")
    ops = {"ev_charging_schedule": {"config": {"include_batteries": True, "sessions_file": str(sessions_file)}}}
    ops.update({asset.key.path[-1]: {"config": {"sessions_file": str(sessions_file)}} for asset in DERIVED_ASSETS})
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(MAIN_JOB_NAME).execute_in_process(
            instance=instance, partition_key=start.date().isoformat(), run_config={"ops": ops},
            raise_on_error=False)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    return start, end


@pytest.mark.postgres
def test_every_panel_query_returns_the_days_series_on_postgres(day_after_main_job: tuple[datetime, datetime],
                                                               postgres_url: str, site: Site) -> None:
    start, end = day_after_main_job
    engine = create_engine(postgres_url)
    try:
        for spec in seed_panels(site):
            with engine.connect() as connection:
                # the range of Grafana's "Today": now/d to now/d, i.e. up to 23:59:59.999
                result = connection.exec_driver_sql(_grafana_sql(spec.sql, start, end - timedelta(milliseconds=1)))
                columns, rows = list(result.keys()), result.all()
            assert columns == COLUMNS[spec.title], spec.title
            assert rows, f"{spec.title}: no rows for {start.date()}"
            times = [row[0] for row in rows]
            assert times == sorted(times), f"{spec.title}: not sorted by time"
            low, high = (start, end) if spec.title not in END_OF_SLOT else (start + timedelta(minutes=15),
                                                                             end + timedelta(minutes=15))
            assert all(low <= moment < high for moment in times), spec.title
            assert all(value is not None for row in rows for value in row[1:]), spec.title
    finally:
        engine.dispose()


def test_a_fleet_gets_one_dashboard_per_site_on_its_own_sensors(tmp_path: Path) -> None:
    portfolio_file = Path(site_model.__file__).with_name("martinique_portfolio.yaml")
    assert main(["--site", str(portfolio_file), "--output", str(tmp_path / "cariflex.json")]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cariflex-fleet.json", "cariflex-place-d-armes.json",
                                                                 "cariflex-pointe-simon.json"]
    armes = json.loads((tmp_path / "cariflex-place-d-armes.json").read_text(encoding="utf-8"))
    assert armes["uid"] == "cariflex-site-place-d-armes"
    assert armes["title"] == "Cariflex Place d'Armes, Le Lamentin: site"
    by_title = {panel["title"]: panel for panel in armes["panels"]}
    sql = {title: panel["targets"][0]["rawSql"] for title, panel in by_title.items()}
    # its own charge points, batteries and derived range (111-115), the shared price
    assert "IN (66, 67, 68, 69, 70)" in sql["EV Power (kW)"] and "61" not in sql["EV Power (kW)"]
    assert "IN (156, 157, 158, 159, 160)" in sql["SOC Batteries (kWh)"]
    assert "IN (112)" in sql["Impact Reseau (kW)"] and "IN (111)" in sql["Flexibilite Totale (kWh)"]
    assert "IN (84)" in sql["DSR Price Signal (EUR/MWh)"]
    assert by_title["EV Power (kW)"]["description"].startswith("Planned power per charge point (66-70)")
    assert main(["--check", "--site", str(portfolio_file), "--site-id", "pointe-simon",
                 "--output", str(tmp_path / "cariflex.json")]) == 0


def test_a_fleet_gets_an_overview_linking_each_sites_dashboard(tmp_path: Path) -> None:
    assert main(["--site", str(PORTFOLIO_FILE), "--output", str(tmp_path / "cariflex.json")]) == 0
    fleet = json.loads((tmp_path / "cariflex-fleet.json").read_text(encoding="utf-8"))
    assert (fleet["uid"], fleet["title"], fleet["timezone"]) == ("cariflex-fleet", "Cariflex Martinique: fleet",
                                                                 "America/Martinique")
    site_uids = {json.loads(path.read_text(encoding="utf-8"))["uid"] for path in tmp_path.glob("cariflex-*-*.json")}
    assert {link["url"] for link in fleet["links"]} == {f"/d/{uid}" for uid in site_uids}
    share = fleet["panels"][0]
    assert share["fieldConfig"]["defaults"]["thresholds"]["steps"][-1] == {"color": "red", "value": 100}
    assert share["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] == {"mode": "line"}
    assert main(["--check", "--site", str(PORTFOLIO_FILE), "--output", str(tmp_path / "cariflex.json")]) == 0


@pytest.mark.postgres
def test_the_fleet_panels_give_one_series_per_site_on_postgres(postgres_url: str) -> None:
    """Two sites' grid impact and charge points in the store: each panel returns each site's series under its name
    (an apostrophe in it included), the share of its own connection, and nothing of the other site."""
    _fresh_postgres_schema(postgres_url)
    portfolio = site_model.load_portfolio(PORTFOLIO_FILE)
    store = TimeSeriesStore(postgres_url)
    store.migrate()
    store.register_portfolio(portfolio)
    for site_id in portfolio.site_ids:  # the derived assets register their range on first use
        store.register_sensors(derived_sensors(portfolio.site(site_id)).sensors)
    start = datetime(2027, 1, 4, 4, tzinfo=UTC)
    slots = pd.date_range(start, periods=4, freq="15min")
    imports = {"pointe-simon": 40.0, "place-d-armes": 30.0}  # kW
    frames = []
    for site_id, kw in imports.items():
        site = portfolio.site(site_id)
        frames.append(pd.DataFrame({"sensor_id": derived_sensors(site).grid_impact, "event_start": slots,
                                    "value": kw, "belief_time": start}))
        frames.extend(pd.DataFrame({"sensor_id": cp.sensor_id, "event_start": slots, "value": 2.0,
                                    "belief_time": start}) for cp in site.charge_points)
    store.write_beliefs(pd.concat(frames, ignore_index=True), source="test")
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            results = {spec.title: connection.exec_driver_sql(_grafana_sql(spec.sql, start, start + timedelta(
                hours=1) - timedelta(milliseconds=1))).all() for spec in fleet_panels(portfolio)}
    finally:
        engine.dispose()
    names = {site_id: portfolio.site(site_id).name for site_id in imports}
    assert "Cariflex Place d'Armes, Le Lamentin" in names.values()

    def per_site(title: str) -> dict[str, set[float]]:
        series: dict[str, set[float]] = {}
        for _time, metric, value in results[title]:
            series.setdefault(metric, set()).add(round(value, 6))
        return series

    assert per_site("Grid impact by site (kW)") == {names[site_id]: {kw} for site_id, kw in imports.items()}
    assert per_site("Grid import by site (% of its connection)") == {
        names[site_id]: {round(100 * kw / portfolio.site(site_id).grid_connection.import_capacity_kw, 6)}
        for site_id, kw in imports.items()}
    assert per_site("EV charging power by site (kW)") == {
        names[site_id]: {2.0 * len(portfolio.site(site_id).charge_points)} for site_id in imports}
    assert all(len(rows) == 4 * len(imports) for title, rows in results.items()
               if title != "Active charging sessions by site" and title != "EV flexibility potential by site (kWh)")
