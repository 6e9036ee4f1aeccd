"""ev_session_sensor in a fleet, on the real RabbitMQ: the one session queue carries both sites' stations, and each
site with a change gets its own run, for its partition, under a run key carrying the site.

The code location is loaded as a fleet in a subprocess (its shape is decided at import):
cariflex_pipeline_tests/dagster_shell/fleet_ticks.py."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).parents[2]
FLEET_FILE = ROOT / "cariflex_pipeline" / "site_model" / "martinique_portfolio.yaml"


def test_plug_ins_at_two_sites_request_one_run_per_site(amqp_url, exchange, names, tmp_path) -> None:
    env = {**os.environ, "CARIFLEX_PORTFOLIO_FILE": str(FLEET_FILE), "FLEET_AMQP_URL": amqp_url,
           "FLEET_EXCHANGE": exchange, "FLEET_SESSION_QUEUE": names["sessions"],
           "CARIFLEX_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}"}
    done = subprocess.run([sys.executable, "-m", "cariflex_pipeline_tests.dagster_shell.fleet_ticks", "sessions"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ticks = json.loads(done.stdout)
    assert ticks["first"] == [] and ticks["again"] == []
    today = datetime.now(UTC).astimezone(ZoneInfo("America/Martinique")).date().isoformat()
    requests = ticks["plugged_in"]
    assert [(r["partition_key"], r["tags"]["cariflex/site"], r["tags"]["cariflex/stations"],
             r["tags"]["cariflex/session_changes"]) for r in requests] == [
        (f"{today}|pointe-simon", "pointe-simon", "CP001,CP002", "started"),
        (f"{today}|place-d-armes", "place-d-armes", "CP007", "started")]
    assert [r["run_key"].rsplit(":", 1)[0] for r in requests] == ["ev-sessions:pointe-simon",
                                                                  "ev-sessions:place-d-armes"]
