"""`python -m cariflex_pipeline.scheduling PROBLEM.json` in a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert schedule["unserved_kwh"] < 1e-6 and schedule["bill_eur"] > 0


def test_cli_reports_bill_penalty_and_tie_break_apart(tmp_path):
    # 30 kWh asked of 1 h at 11 kW: 19 kWh unserved at 10 EUR/kWh; 11 kWh bought at 50 EUR/MWh
    problem = json.loads(SAMPLE.read_text())
    session = {**problem["sessions"][0], "charge_point": "CP006", "arrival": problem["start"],
               "departure": "2026-11-28T01:00:00-04:00", "energy_needed_kwh": 30, "efficiency": 1.0}
    problem.update(prices_eur_per_mwh=[50.0] * 4, sessions=[session], batteries=[])
    for name in ("load_control_pct", "inflexible_load_kw", "pv_forecast_kw", "demand_response_level"):
        problem.pop(name)
    path = tmp_path / "short.json"
    path.write_text(json.dumps(problem))
    completed = _run(str(path))
    assert completed.returncode == 0, completed.stderr
    schedule = json.loads(completed.stdout)
    assert schedule["bill_eur"] == pytest.approx(11 * 50 / 1000, rel=1e-9)
    assert schedule["unserved_penalty_eur"] == pytest.approx(19 * 10, rel=1e-9)
    # earlier charging on ties: 1e-4 milli-EUR per kWh and slot index, slots 0-3 at 11 kW
    assert schedule["tie_break_eur"] == pytest.approx(1e-7 * 11 * 0.25 * (0 + 1 + 2 + 3), rel=1e-6)
    assert schedule["objective_total_eur"] == pytest.approx(
        schedule["bill_eur"] + schedule["unserved_penalty_eur"] + schedule["tie_break_eur"], rel=1e-12)
    assert "objective_eur" not in schedule  # the old name mixed the three


def test_cli_cbc_gives_the_same_objective():
    highs = json.loads(_run(str(SAMPLE)).stdout)
    cbc = json.loads(_run(str(SAMPLE), "--solver", "cbc").stdout)
    total = highs["objective_total_eur"]
    assert abs(total - cbc["objective_total_eur"]) < 1e-6 * max(1.0, abs(total))
    assert highs["bill_eur"] == pytest.approx(cbc["bill_eur"], rel=1e-6)


def test_cli_bad_problem_exits_2_naming_the_problem(tmp_path):
    problem = json.loads(SAMPLE.read_text())
    problem["sessions"][0]["charge_point"] = "CP042"
    problem["prices_eur_per_mwh"][5] = None
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(problem))
    completed = _run(str(path))
    assert completed.returncode == 2 and completed.stdout == ""
    assert "'CP042'" in completed.stderr and "prices missing for slots 5" in completed.stderr


def test_cli_nan_derating_exits_2_naming_the_field(tmp_path):
    # json.dumps writes NaN; the level-0 factor applies to most slots of the sample
    problem = json.loads(SAMPLE.read_text())
    problem["derating"]["0"] = float("nan")
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(problem))
    completed = _run(str(path))
    assert (completed.returncode, completed.stdout) == (2, "")
    assert "Traceback" not in completed.stderr
    assert "derating[0] is nan, expected a factor in [0, 1]" in completed.stderr


def test_cli_time_limit_exits_3_without_a_schedule():
    completed = _run(str(SAMPLE), "--time-limit", "0")
    assert completed.returncode == 3 and completed.stdout == ""
    assert "time limit" in completed.stderr


def test_cli_prints_the_schema():
    completed = _run("--schema")
    assert completed.returncode == 0 and "prices_eur_per_mwh" in json.loads(completed.stdout)["properties"]
