"""A two-site portfolio through the whole graph, on both stores: signals, plans and dispatch per site, each site's
profiles to its own CitrineOS tenant; a site added to the file while the code location runs; a site whose tenant
CitrineOS does not route failing visibly while the others go on.

The code location loads in a process of its own with CARIFLEX_PORTFOLIO_FILE set (fleet_run.py): its partitions'
shape is decided as it loads. The stations are the `ocpp` stations behind the CitrineOS-shaped router of the
dispatch tests, one router per tenant on the real RabbitMQ (a stand-in for CitrineOS 1.8.3, which cannot run here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from cariflex_pipeline import site_model as site_model_package
from cariflex_pipeline.dispatch.tables import ocpp_outbox
from cariflex_pipeline.scheduling.signals import SCHEDULER_SOURCE
from cariflex_pipeline.site_model import load_portfolio
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.dispatch.citrineos_sim import CitrineRouter
from cariflex_pipeline_tests.dispatch.conftest import assert_stations_follow_the_schedule, exchange, names

__all__ = ["exchange", "names"]  # the dispatch tests' fixtures: a scratch CitrineOS-shaped exchange and queues

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

ROOT = Path(__file__).parents[2]
BUNDLED = Path(site_model_package.__file__).with_name("martinique_portfolio.yaml")
RUN_TIMEOUT_S = 300


def _portfolio_file(tmp_path: Path, extra_sites: list[dict] | None = None) -> Path:
    raw = yaml.safe_load(BUNDLED.read_text(encoding="utf-8"))
    raw["sites"][1]["citrineos_tenant"] = "2"  # Place d'Armes in a tenant of its own: dispatch per tenant shows
    raw["sites"].extend(extra_sites or [])
    path = tmp_path / "portfolio.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def _run_sites(site_ids: list[str], portfolio: Path, store_url: str, home: Path, amqp_url: str,
               exchange: str, answers: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CARIFLEX_PORTFOLIO_FILE": str(portfolio),
           "CARIFLEX_DATABASE_URL": store_url, "DAGSTER_HOME": str(home), "CARIFLEX_DISPATCH_TRANSPORT": "amqp",
           "CARIFLEX_AMQP_URL": amqp_url, "CARIFLEX_CITRINEOS_EXCHANGE": exchange,
           "CARIFLEX_DISPATCH_ANSWER_QUEUE": answers}
    done = subprocess.run([sys.executable, "-m", "cariflex_pipeline_tests.fleet.fleet_run", *site_ids], env=env,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # the last line: solver banners come before it


def _outbox_status(store_url: str) -> dict[str, str]:
    """The latest outbox entry's status per station, as "site/status" (the site the entry is keyed by)."""
    engine = TimeSeriesStore(store_url).engine
    with engine.connect() as connection:
        rows = connection.execute(select(ocpp_outbox.c.station_id, ocpp_outbox.c.site_id, ocpp_outbox.c.status)
                                  .order_by(ocpp_outbox.c.id)).all()
    engine.dispose()
    return {station: f"{site_id}/{status}" for station, site_id, status in rows}


def test_two_sites_plan_and_dispatch_each_to_its_tenant_and_a_new_site_fails_alone(
        tmp_path: Path, empty_database_url: str, amqp_url: str, exchange: str, names: dict[str, str]) -> None:
    store_url = empty_database_url
    portfolio_path = _portfolio_file(tmp_path)
    portfolio = load_portfolio(portfolio_path)
    pointe, armes = portfolio.site("pointe-simon"), portfolio.site("place-d-armes")
    routers = [CitrineRouter(amqp_url, exchange, tenant_id=tenant).start() for tenant in ("1", "2")]
    try:
        stations = {cp.id: routers[0].connect(cp.id) for cp in pointe.charge_points}
        stations |= {cp.id: routers[1].connect(cp.id) for cp in armes.charge_points}
        home = tmp_path / "dagster_home"
        home.mkdir()
        report = _run_sites(["pointe-simon", "place-d-armes"], portfolio_path, store_url, home, amqp_url,
                            exchange, names["answers"])

        for site_id in ("pointe-simon", "place-d-armes"):
            assert report[site_id]["success"], report[site_id]
            assert report[site_id]["checks"]["ocpp_dispatch:stations_confirmed"], report[site_id]
            assert report[site_id]["checks"]["ev_charging_schedule:schedule_passes_verifier"]
            assert {"openadr_events", "ev_charging_schedule", "ocpp_dispatch", "total_flexibility_series"} <= set(
                report[site_id]["materialized"])
        # each station got exactly its own site's plan, through its own tenant's router (a profile sent with the
        # other tenant's id would have no queue to go to)
        for model in (pointe, armes):
            _, planned_kw = assert_stations_follow_the_schedule(
                store_url, model, {cp.id: stations[cp.id] for cp in model.charge_points}, None)
            assert planned_kw > 0
        assert _outbox_status(store_url) == {
            f"CP{n:03d}": f"{'pointe-simon' if n <= 5 else 'place-d-armes'}/accepted" for n in range(1, 11)}
        # each site's plan is on its own charge points only (its connection, PV and storage together are held by the
        # verifier check above), and its derived series have their own sensors
        series = TimeSeriesStore(store_url)
        planned = set(series.read_latest(list(range(61, 71)), sources=[SCHEDULER_SOURCE])["sensor_id"])
        assert planned == {cp.sensor_id for cp in [*pointe.charge_points, *armes.charge_points]}
        for model, grid_impact in ((pointe, 102), (armes, 112)):
            assert not series.read_latest([grid_impact]).empty, model.name

        # Le Robert is appended to the file: no reload, and its tenant 7 has no router (CitrineOS would not route
        # it). Its stations end unroutable and its check fails; Pointe Simon's next tick still confirms.
        robert = {**yaml.safe_load(BUNDLED.read_text(encoding="utf-8"))["sites"][1], "id": "le-robert",
                  "name": "Le Robert depot", "citrineos_tenant": "7", "derived_sensors_from": 121,
                  "grid_connection": {"import_capacity_kw": 30, "export_capacity_kw": 10},
                  "sensors": [{"id": 201, "name": "cp011_power", "unit": "kW"}], "pv_installations": [],
                  "batteries": [], "v2g_chargers": []}
        robert["charge_points"] = [{**robert["charge_points"][0], "id": "CP011", "sensor_id": 201}]
        _portfolio_file(tmp_path, [robert])
        report = _run_sites(["le-robert", "pointe-simon"], portfolio_path, store_url, home, amqp_url, exchange,
                            names["answers"])
        assert report["le-robert"]["partition"].endswith("|le-robert")
        assert not report["le-robert"]["checks"]["ocpp_dispatch:stations_confirmed"]
        assert report["pointe-simon"]["success"]
        assert report["pointe-simon"]["checks"]["ocpp_dispatch:stations_confirmed"]
        statuses = _outbox_status(store_url)
        assert statuses["CP011"] == "le-robert/unroutable"
        assert {statuses[cp.id] for cp in pointe.charge_points} == {"pointe-simon/accepted"}
    finally:
        for router in routers:
            router.stop()
