"""Sensors and the schedule per site: the partition sync, per-site run requests with distinct run keys, a failing
site not stopping the others, and one site exactly as before the fleet.

The fleet wiring runs in a subprocess (fleet_ticks.py) with CARIFLEX_PORTFOLIO_FILE set before the code location
is imported (its shape is decided at import); the per-site logic is tested here on its own."""

import json
import logging
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from cariflex_pipeline.definitions import defs
from cariflex_pipeline.defs.dispatch.sensors import session_run_requests
from cariflex_pipeline.defs.s2.sensors import s2_run_requests
from cariflex_pipeline.defs.site.sensors import missing_site_ids, sync_sites
from cariflex_pipeline.defs.sites import SitesFailed, requests_per_site, site_run_key, site_run_request
from cariflex_pipeline.dispatch.sessions import SessionChange
from cariflex_pipeline.site_model import load_portfolio, load_site

ROOT = Path(__file__).parents[2]
FLEET_FILE = ROOT / "cariflex_pipeline" / "site_model" / "martinique_portfolio.yaml"
TICK = datetime(2026, 11, 28, 2, 30, tzinfo=UTC)
LOG = logging.getLogger(__name__)
SITES = ["pointe-simon", "place-d-armes"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What fleet_ticks.py saw, on a copy of the bundled two-site portfolio that it extends by a third site."""
    portfolio_file = tmp_path_factory.mktemp("fleet") / "portfolio.yaml"
    shutil.copy(FLEET_FILE, portfolio_file)
    env = {**os.environ, "CARIFLEX_PORTFOLIO_FILE": str(portfolio_file)}
    done = subprocess.run([sys.executable, "-m", "cariflex_pipeline_tests.dagster_shell.fleet_ticks"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_fleet_registers_the_partition_sync_and_fills_the_sites_once(fleet: dict[str, Any]) -> None:
    assert fleet["is_fleet"] is True
    assert "portfolio_sites_sensor" in fleet["sensors"]
    assert fleet["sync_first"] == {"added": SITES}
    assert fleet["sync_again"]["skip"] == "every site of 'Cariflex Martinique' is in 'sites': pointe-simon, " \
                                          "place-d-armes"


def test_a_site_appended_to_the_file_is_added_at_the_next_tick_and_planned(fleet: dict[str, Any]) -> None:
    assert [r["partition_key"] for r in fleet["schedule_new_site_unsynced"]["requests"]] == [
        f"2026-11-27|{site}" for site in SITES]  # not yet a partition: skipped, the others still planned
    assert fleet["sync_new_site"] == {"added": ["le-robert"]}
    assert [r["tags"]["cariflex/site"] for r in fleet["schedule_new_site"]["requests"]] == [*SITES, "le-robert"]


def test_an_invalid_portfolio_file_fails_the_sync_naming_the_error(fleet: dict[str, Any]) -> None:
    assert fleet["sync_invalid"]["error"].startswith("PortfolioUnreadable: the portfolio file no longer loads")
    assert "site 'le-robert', charge_points entry 'CP011', field max_power_kw" in fleet["sync_invalid"]["error"]


def test_the_schedule_asks_one_run_per_site_for_its_today(fleet: dict[str, Any]) -> None:
    assert "site 'pointe-simon': not yet in the dynamic partition 'sites'" in fleet["schedule_before_sync"]["skip"]
    requests = fleet["schedule"]["requests"]
    assert [(r["partition_key"], r["tags"]) for r in requests] == [
        (f"2026-11-27|{site}", {"cariflex/site": site}) for site in SITES]
    assert [r["run_key"] for r in requests] == [
        f"ev-charging-every-15-minutes:{site}:2026-11-28T02:30:00+00:00" for site in SITES]


def test_session_changes_request_a_run_for_the_site_of_each_station(fleet: dict[str, Any]) -> None:
    requests = fleet["sessions"]
    assert [(r["partition_key"], r["tags"]["cariflex/stations"]) for r in requests] == [
        ("2026-11-27|pointe-simon", "CP001,CP002"), ("2026-11-27|place-d-armes", "CP007")]
    assert [r["run_key"].rsplit(":", 1)[0] for r in requests] == [f"ev-sessions:{site}" for site in SITES]


def test_a_site_whose_store_query_fails_lets_the_other_site_replan(fleet: dict[str, Any]) -> None:
    s2 = fleet["s2"]
    assert [(r["partition_key"], r["run_key"].rsplit(":", 1)[0]) for r in s2["requests"]] == [
        ("2026-11-27|place-d-armes", "s2:place-d-armes")]
    assert s2["skipped"] == ["site 'pointe-simon': ConnectionError: store unreachable for pointe-simon"]
    # the failed site's statuses are kept for its next tick; the other's are the new ones
    assert s2["cursor"] == {"pointe-simon": {"rm-1": "connected"}, "place-d-armes": {"rm-6": "connected"}}


# --- the per-site logic on its own (this process: one site) ---

def _request(site_id: str) -> list[dg.RunRequest]:
    return [dg.RunRequest(run_key=site_id)]


def test_one_site_keeps_its_sensors_run_keys_and_errors() -> None:
    assert "portfolio_sites_sensor" not in {sensor.name for sensor in defs.sensors or []}
    assert site_run_key("ev-sessions", "cariflex-martinique", "abc") == "ev-sessions:abc"
    site = load_site()
    assert site_run_request("cariflex-martinique", site, TICK, run_key=None,
                            one_site_day_partitioned=True).partition_key == "2026-11-27"
    assert site_run_request("x", site, TICK, run_key="k", tags={"a": "b"},
                            one_site_day_partitioned=False) == dg.RunRequest(run_key="k", tags={"a": "b"})

    def failing(site_id: str) -> list[dg.RunRequest]:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError, match="down"):  # one site: its error is the tick's, as before
        requests_per_site(["cariflex-martinique"], None, failing, LOG)


def test_requests_per_site_skips_unpartitioned_and_failing_sites_and_fails_only_when_all_do() -> None:
    def request(site_id: str) -> list[dg.RunRequest]:
        if site_id == "b":
            raise KeyError("no charge point")
        return _request(site_id)

    result = requests_per_site(["a", "b", "c"], {"a", "b"}, request, LOG)
    assert [r.run_key for r in result.run_requests] == ["a"]
    assert result.skipped == ["site 'c': not yet in the dynamic partition 'sites' (portfolio_sites_sensor adds it)",
                              "site 'b': KeyError: 'no charge point'"]
    assert result.skip_reason() is None  # something was requested: the skips are in the log
    assert requests_per_site(["c"], {"a"}, request, LOG).skip_reason().startswith("site 'c': not yet")
    assert requests_per_site([], {"a"}, request, LOG).skip_reason() is None
    with pytest.raises(SitesFailed, match="every site failed: site 'b': KeyError"):
        requests_per_site(["b", "c"], {"b"}, request, LOG)


def test_the_sync_adds_only_missing_sites_and_never_removes() -> None:
    portfolio = load_portfolio(FLEET_FILE)
    assert missing_site_ids(portfolio, {"place-d-armes", "gone"}) == ["pointe-simon"]
    result = sync_sites(portfolio, {"place-d-armes", "gone"})
    assert isinstance(result, dg.SensorResult)
    [request] = result.dynamic_partitions_requests
    assert (type(request).__name__, list(request.partition_keys)) == ("AddDynamicPartitionsRequest", ["pointe-simon"])
    assert isinstance(sync_sites(portfolio, {*SITES, "gone"}), dg.SkipReason)


def test_session_changes_are_grouped_by_the_site_of_their_station() -> None:
    portfolio = load_portfolio(FLEET_FILE)
    changes = [SessionChange("started", "CP007", "t1", TICK), SessionChange("ended", "CP001", "t2", TICK),
               SessionChange("started", "CP006", "t3", TICK)]
    result = session_run_requests(portfolio, changes, set(SITES), LOG, TICK)
    assert [r.tags["cariflex/stations"] for r in result.run_requests] == ["CP001", "CP006,CP007"]
    assert len({r.run_key for r in result.run_requests}) == 2


def test_s2_with_one_site_keeps_the_flat_cursor() -> None:
    portfolio = load_portfolio()
    assert len(portfolio.site_ids) == 1
    requests, cursor = s2_run_requests(portfolio, None, {"rm-1": "connected"},
                                       lambda site, seen: ([], [], {"rm-1": "disconnected"}), LOG, TICK)
    assert (requests.run_requests, cursor) == ([], {"rm-1": "disconnected"})


def test_the_first_command_runs_each_site_of_a_fleet_and_says_which_failed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "CARIFLEX_PORTFOLIO_FILE": str(FLEET_FILE),
           "CARIFLEX_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}"}
    done = subprocess.run([sys.executable, "-m", "cariflex_pipeline"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert [line for line in done.stdout.splitlines() if line.startswith("== site")] == [
        "== site pointe-simon (Cariflex Pointe Simon, Fort-de-France)",
        "== site place-d-armes (Cariflex Place d'Armes, Le Lamentin)"]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_dynamic_partitions("sites") == SITES
        runs = list(reversed(instance.get_runs()))  # newest first: in the order they ran
        assert [run.tags["cariflex/site"] for run in runs] == SITES  # the second site ran whatever the first did
        assert [run.tags["dagster/partition/site"] for run in runs] == SITES
        failed = [run.tags["cariflex/site"] for run in runs if run.status != dg.DagsterRunStatus.SUCCESS]
    assert failed == [], done.stdout[-3000:]  # the whole graph of each site, on the embedded defaults
    assert done.returncode == 0 and "sites: 2 of 2 succeeded" in done.stdout, done.stdout[-3000:]
