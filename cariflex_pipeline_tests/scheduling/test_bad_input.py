"""Every non-finite or out-of-range number is refused naming its field: exit 2 from the CLI, and the same
ProblemError from the library (a problem built in Python, as the asset builds it)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cariflex_pipeline.scheduling import ProblemError, SchedulingProblem, resolve
from cariflex_pipeline.scheduling.__main__ import main as cli_main

SAMPLE = json.loads((Path(__file__).parents[2] / "cariflex_pipeline" / "scheduling" / "data"
                     / "sample_problem.json").read_text())
NAN, INF = float("nan"), float("inf")


def _slot3(name: str, value: float) -> Callable[[dict[str, Any]], None]:
    def mutate(problem: dict[str, Any]) -> None:
        problem.setdefault(name, [0.0] * len(problem["prices_eur_per_mwh"]))[3] = value
    return mutate


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(problem: dict[str, Any]) -> None:
        node = problem
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    return mutate


SLOT3 = "slots 3 [2026-11-28T00:45:00-04:00 .. 2026-11-28T01:00:00-04:00)"
CASES = [
    (_slot3("prices_eur_per_mwh", NAN), f"prices_eur_per_mwh is not finite in {SLOT3}"),
    (_slot3("prices_eur_per_mwh", -INF), f"prices_eur_per_mwh is not finite in {SLOT3}"),
    (_slot3("prices_eur_per_mwh", 1e308), f"prices_eur_per_mwh is above 100000 in {SLOT3}"),
    (_slot3("export_price_eur_per_mwh", INF), f"export_price_eur_per_mwh is not finite in {SLOT3}"),
    (_slot3("export_price_eur_per_mwh", -1e6), f"export_price_eur_per_mwh is below -100000 in {SLOT3}"),
    (_slot3("load_control_pct", 150.0), f"load_control_pct is above 100 in {SLOT3}"),
    (_slot3("load_control_pct", NAN), f"load_control_pct is not finite in {SLOT3}"),
    (_slot3("inflexible_load_kw", 1e308), f"inflexible_load_kw is above 100000 in {SLOT3}"),
    (_slot3("inflexible_load_kw", -1.0), f"inflexible_load_kw is below 0 in {SLOT3}"),
    (_slot3("pv_forecast_kw", INF), f"pv_forecast_kw is not finite in {SLOT3}"),
    (_set(("derating", "0"), NAN), "derating[0] is nan, expected a factor in [0, 1]"),
    (_set(("derating", "1"), 3.0), "derating[1] is 3.0, expected a factor in [0, 1]"),
    (_set(("derating", "2"), -0.5), "derating[2] is -0.5, expected a factor in [0, 1]"),
    (_set(("connection_capacity_kw",), 1e308), "connection_capacity_kw is 1e+308 kW, above the 120 kW"),
    (_set(("export_capacity_kw",), 61.0), "export_capacity_kw is 61 kW, above the 60 kW"),
    (_set(("unserved_penalty_eur_per_kwh",), 1e308), "unserved_penalty_eur_per_kwh: Input should be less than"),
    (_set(("resolution_minutes",), 10**20), "resolution_minutes: Input should be less than or equal to 1440"),
    (_set(("sessions", 0, "energy_needed_kwh"), 1e308), "sessions.0: energy_needed_kwh: Input should be less"),
    (_set(("sessions", 0, "max_power_kw"), NAN), "sessions.0: max_power_kw: Input should be a finite number"),
    (_set(("sessions", 1, "efficiency"), INF), "sessions.1: efficiency: Input should be a finite number"),
    (_set(("batteries", 0, "capacity_kwh"), INF), "batteries.0: capacity_kwh: Input should be a finite number"),
    (_set(("batteries", 0, "initial_soc_kwh"), NAN), "batteries.0: initial_soc_kwh: Input should be a finite"),
    (_set(("batteries", 0, "round_trip_efficiency"), 1.5), "batteries.0: round_trip_efficiency: Input should be"),
]


def _bad(mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    problem = copy.deepcopy(SAMPLE)
    mutate(problem)
    return problem


@pytest.mark.parametrize(("mutate", "message"), CASES)
def test_the_cli_refuses_with_exit_2_naming_the_field(mutate, message, tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_bad(mutate)))  # NaN and Infinity as Python's json writes them
    assert cli_main([str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err


@pytest.mark.parametrize(("mutate", "message"), CASES)
def test_the_library_refuses_with_a_problem_error_naming_the_field(mutate, message, site):
    with pytest.raises(ProblemError) as error:
        resolve(SchedulingProblem(**_bad(mutate)), site)
    assert message in str(error.value)


@settings(max_examples=60, deadline=None)
@given(load_control=st.lists(st.floats(0, 200), min_size=4, max_size=4),
       levels=st.lists(st.integers(0, 2), min_size=4, max_size=4),
       factors=st.lists(st.floats(0, 4), min_size=3, max_size=3),
       capacity=st.floats(1, 400), inflexible=st.floats(0, 50), pv=st.floats(0, 50))
def test_the_site_never_imports_more_than_its_connection(site, load_control, levels, factors, capacity, inflexible,
                                                         pv):
    # accepted: the flexible limit plus the net base load is within the connection; else refused, naming why
    data = {"start": SAMPLE["start"], "prices_eur_per_mwh": [50.0] * 4, "load_control_pct": load_control,
            "demand_response_level": levels, "derating": dict(enumerate(factors)),
            "connection_capacity_kw": capacity, "inflexible_load_kw": [inflexible] * 4, "pv_forecast_kw": [pv] * 4}
    connection = site.grid_connection.import_capacity_kw
    try:
        resolved = resolve(SchedulingProblem(**data), site)
    except ProblemError as error:
        reasons = [f"above the {connection:g} kW", "load_control_pct is above 100", "expected a factor in [0, 1]"]
        assert any(reason in str(error) for reason in reasons), str(error)
        assert capacity > connection or max(load_control) > 100 or max(factors) > 1
        return
    imports = resolved.site_limit_kw + resolved.base_load_kw
    assert (imports[resolved.site_limit_kw > 0] <= connection + 1e-9).all()
