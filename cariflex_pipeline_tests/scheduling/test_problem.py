"""The problem's JSON form and the errors bad input gets: each names the session, charge point or slots."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from cariflex_pipeline.scheduling import (
    ProblemError,
    SchedulingProblem,
    fill_missing_prices,
    parse_problem,
    resolve,
)
from cariflex_pipeline_tests.scheduling.helpers import START, at, ev, problem

SAMPLE = Path(__file__).parents[2] / "cariflex_pipeline" / "scheduling" / "data" / "sample_problem.json"


def _json(**overrides) -> str:
    data = {
        "start": START.isoformat(),
        "prices_eur_per_mwh": [50, 60, 70, 80],
        "sessions": [{"id": "ev-1", "charge_point": "CP001", "arrival": at(0).isoformat(),
                      "departure": at(4).isoformat(), "energy_needed_kwh": 5}],
    }
    data.update(overrides)
    return json.dumps(data)


def test_sample_problem_round_trips_through_json(site):
    parsed = parse_problem(SAMPLE.read_text())
    assert parse_problem(parsed.model_dump_json()) == parsed
    resolved = resolve(parsed, site)
    assert resolved.n_slots == 96 and len(resolved.sessions) == 5
    assert "properties" in SchedulingProblem.model_json_schema()


def test_soc_target_gives_the_energy(site):
    session = ev("a", "CP001", 0, 4, soc_now=0.25, soc_target=0.75, battery_capacity_kwh=60)
    assert resolve(problem([50] * 4, [session]), site).sessions[0].energy_kwh == pytest.approx(30)


def test_departure_before_arrival_is_refused():
    session = {"id": "late", "charge_point": "CP001", "arrival": at(4).isoformat(),
               "departure": at(2).isoformat(), "energy_needed_kwh": 5}
    with pytest.raises(ProblemError, match=r"session 'late': departure .* is not after arrival"):
        parse_problem(_json(sessions=[session]))


def test_negative_energy_is_refused():
    session = {"id": "neg", "charge_point": "CP001", "arrival": at(0).isoformat(),
               "departure": at(4).isoformat(), "energy_needed_kwh": -3}
    with pytest.raises(ProblemError, match=r"session 'neg': energy_needed_kwh is negative"):
        parse_problem(_json(sessions=[session]))


def test_energy_or_soc_is_required():
    session = {"id": "vague", "charge_point": "CP001", "arrival": at(0).isoformat(),
               "departure": at(4).isoformat(), "soc_target": 0.8}
    with pytest.raises(ProblemError, match=r"session 'vague': give energy_needed_kwh"):
        parse_problem(_json(sessions=[session]))


def test_unknown_charge_point_is_named(site):
    p = problem([50] * 4, [ev("x", "CP999", 0, 4, energy_needed_kwh=5)])
    with pytest.raises(ProblemError, match=r"session 'x': charge point 'CP999' is not in site"):
        resolve(p, site)


def test_missing_prices_name_the_slots(site):
    p = parse_problem(_json(prices_eur_per_mwh=[50, None, None, 80, None]))
    with pytest.raises(ProblemError) as error:
        resolve(p, site)
    message = str(error.value)
    assert "prices missing for slots 1-2" in message and ", 4 [" in message
    assert at(1).isoformat() in message and at(3).isoformat() in message


def test_missing_price_fallback_uses_the_dearest_known_price():
    prices, filled = fill_missing_prices([50, None, 80, None], "max_known")
    assert prices == [50, 80, 80, 80] and filled == [1, 3]
    assert fill_missing_prices([50, None], "error") == ([50, None], [])
    with pytest.raises(ProblemError, match="no price is known"):
        fill_missing_prices([None, None], "max_known")


def test_series_of_the_wrong_length_is_refused(site):
    p = problem([50] * 4, [], load_control_pct=[100, 100])
    with pytest.raises(ProblemError, match=r"load_control_pct has 2 values, expected one per slot \(4\)"):
        resolve(p, site)


def test_demand_response_level_without_factor_is_named(site):
    p = problem([50] * 4, [], demand_response_level=[0, 0, 7, 7], derating={0: 1.0})
    with pytest.raises(ProblemError, match=r"demand-response level without a derating factor in slots 2-3"):
        resolve(p, site)


def test_overlapping_sessions_at_one_point_are_refused(site):
    sessions = [ev("a", "CP001", 0, 3, energy_needed_kwh=5), ev("b", "CP001", 2, 4, energy_needed_kwh=5)]
    with pytest.raises(ProblemError, match=r"charge point 'CP001': sessions 'a' and 'b' overlap"):
        resolve(problem([50] * 4, sessions), site)


def test_all_errors_are_reported_together(site):
    p = parse_problem(_json(prices_eur_per_mwh=[None, 1, 2, 3], sessions=[
        {"id": "x", "charge_point": "NOPE", "arrival": at(0).isoformat(), "departure": at(4).isoformat(),
         "energy_needed_kwh": 5}]))
    with pytest.raises(ProblemError) as error:
        resolve(p, site)
    assert "prices missing for slots 0" in str(error.value) and "'NOPE'" in str(error.value)


def test_v2g_session_needs_capacity_and_soc(site):
    p = problem([50] * 4, [ev("car", "v2g_01", 0, 4, energy_needed_kwh=5)])
    with pytest.raises(ProblemError, match=r"session 'car' at V2G charger 'v2g_01'"):
        resolve(p, site)


def test_plug_in_window_uses_whole_slots_only(site):
    session = ev("a", "CP001", 0, 4, energy_needed_kwh=5)
    shifted = session.model_copy(update={"arrival": at(0) + timedelta(minutes=5),
                                         "departure": at(4) - timedelta(minutes=1)})
    resolved = resolve(problem([50] * 4, [shifted]), site)
    assert (resolved.sessions[0].first, resolved.sessions[0].end) == (1, 3)


def test_malformed_json_is_a_problem_error():
    with pytest.raises(ProblemError):
        parse_problem("{not json")
    with pytest.raises(ProblemError, match="start"):
        parse_problem(json.dumps({"prices_eur_per_mwh": [1]}))


def test_bad_signal_series_are_all_named_with_their_slots(site):
    p = problem([50] * 4, [], load_control_pct=[100, -5, 100, 100], pv_forecast_kw=[0, 0, float("nan"), -1])
    with pytest.raises(ProblemError) as error:
        resolve(p, site)
    message = str(error.value)
    assert f"load_control_pct is below 0 in slots 1 [{at(1).isoformat()} .. {at(2).isoformat()})" in message
    assert "pv_forecast_kw is not finite in slots 2 [" in message
    assert "pv_forecast_kw is below 0 in slots 3 [" in message


def test_non_finite_prices_are_named_as_such_not_as_missing(site):
    p = problem([50, float("nan"), None, float("inf")], [])
    with pytest.raises(ProblemError) as error:
        resolve(p, site)
    message = str(error.value)
    assert f"prices missing for slots 2 [{at(2).isoformat()}" in message
    assert f"prices_eur_per_mwh is not finite in slots 1 [{at(1).isoformat()}" in message
    assert ", 3 [" in message and "missing for slots 1" not in message


@pytest.mark.parametrize(("fields", "message"), [
    ({"load_control_pct": [100, 150]}, "load_control_pct is above 100 in slots 1 ["),
    ({"demand_response_level": [0, 1], "derating": {0: 1.0, 1: 3.0}}, "derating[1] is 3.0, expected a factor in"),
    ({"derating": {0: -0.25}}, "derating[0] is -0.25, expected a factor in [0, 1]"),
    ({"connection_capacity_kw": 121}, "connection_capacity_kw is 121 kW, above the 120 kW of site"),
])
def test_nothing_lifts_the_site_limit_above_the_connection(site, fields, message):
    with pytest.raises(ProblemError) as error:
        resolve(problem([50, 50], [], **fields), site)
    assert message in str(error.value)


def test_a_problem_built_in_python_is_refused_with_the_project_s_error():
    with pytest.raises(ProblemError, match=r"unserved_penalty_eur_per_kwh: Input should be a finite number"):
        problem([50], [], unserved_penalty_eur_per_kwh=float("nan"))
    with pytest.raises(ProblemError, match=r"max_power_kw: Input should be a finite number"):
        ev("a", "CP001", 0, 1, energy_needed_kwh=1, max_power_kw=float("inf"))


def test_missing_price_fallback_skips_non_finite_prices():
    # a NaN is not filled (resolve refuses it) and never becomes the fill value
    assert fill_missing_prices([50, None, float("nan")], "max_known")[0][:2] == [50, 50]
