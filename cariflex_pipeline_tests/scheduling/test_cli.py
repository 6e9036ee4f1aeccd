"""`python -m cariflex_pipeline.scheduling PROBLEM.json` in a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).parents[2] / "cariflex_pipeline" / "scheduling" / "data" / "sample_problem.json"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cariflex_pipeline.scheduling", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_cli_prints_the_schedule_as_json():
    completed = _run(str(SAMPLE))
    assert completed.returncode == 0, completed.stderr
    schedule = json.loads(completed.stdout)  # stdout is pure JSON (the HiGHS banner goes to stderr)
    assert schedule["status"] == "optimal" and schedule["violations"] == []
    assert len(schedule["slot_starts"]) == 96 and len(schedule["power_kw"]["CP001"]) == 96
    assert {s["id"] for s in schedule["sessions"]} >= {"ev-commuter", "ev-v2g"}
    assert schedule["unserved_kwh"] < 1e-6 and schedule["cost_eur"] > 0


def test_cli_cbc_gives_the_same_objective():
    highs = json.loads(_run(str(SAMPLE)).stdout)
    cbc = json.loads(_run(str(SAMPLE), "--solver", "cbc").stdout)
    assert abs(highs["objective_eur"] - cbc["objective_eur"]) < 1e-6 * max(1.0, abs(highs["objective_eur"]))


def test_cli_bad_problem_exits_2_naming_the_problem(tmp_path):
    problem = json.loads(SAMPLE.read_text())
    problem["sessions"][0]["charge_point"] = "CP042"
    problem["prices_eur_per_mwh"][5] = None
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(problem))
    completed = _run(str(path))
    assert completed.returncode == 2 and completed.stdout == ""
    assert "'CP042'" in completed.stderr and "prices missing for slots 5" in completed.stderr


def test_cli_time_limit_exits_3_without_a_schedule():
    completed = _run(str(SAMPLE), "--time-limit", "0")
    assert completed.returncode == 3 and completed.stdout == ""
    assert "time limit" in completed.stderr


def test_cli_prints_the_schema():
    completed = _run("--schema")
    assert completed.returncode == 0 and "prices_eur_per_mwh" in json.loads(completed.stdout)["properties"]
