"""What a scheduling run does with missing inputs, tested on the pure functions the asset calls."""

from __future__ import annotations

import pytest

from cariflex_pipeline.scheduling import ProblemError, resolve, solve, verify
from cariflex_pipeline.scheduling.horizon import (
    FLAT_PRICE_EUR_PER_MWH,
    SlotSignals,
    horizon_problem,
    price_fallback,
    session_source,
)
from cariflex_pipeline_tests.scheduling.helpers import SLOT, START, ev


def _signals(prices, **fields) -> SlotSignals:
    n = len(prices)
    values = {"load_control_pct": [None] * n, "demand_response_level": [None] * n, "pv_forecast_kw": [None] * n}
    return SlotSignals(prices_eur_per_mwh=prices, **{**values, **fields})


def _plan(site, signals, sessions, policy="max_known"):
    prices = price_fallback(signals.prices_eur_per_mwh, policy)
    problem = horizon_problem(START, SLOT, signals, prices, sessions, [], 0.0, 10.0)
    resolved = resolve(problem, site)
    result = solve(resolved)
    assert verify(resolved, result) == []
    return problem, result


def test_no_price_at_all_charges_each_ev_as_early_as_it_can(site):
    # 11 kWh at 22 kW is two slots: the first two of each stay, nothing later; CP006 (11 kW) needs all four
    sessions = [ev("a", "CP001", 0, 8, energy_needed_kwh=11), ev("b", "CP002", 3, 8, energy_needed_kwh=11),
                ev("c", "CP006", 2, 8, energy_needed_kwh=11)]
    _, result = _plan(site, _signals([None] * 8), sessions)
    assert result.power_kw["CP001"] == pytest.approx([22, 22, 0, 0, 0, 0, 0, 0], abs=1e-9)
    assert result.power_kw["CP002"] == pytest.approx([0, 0, 0, 22, 22, 0, 0, 0], abs=1e-9)
    assert result.power_kw["CP006"] == pytest.approx([0, 0, 11, 11, 11, 11, 0, 0], abs=1e-9)


def test_no_price_at_all_is_one_flat_price_reported_as_such():
    fallback = price_fallback([None] * 3, "max_known")
    assert fallback.prices == [FLAT_PRICE_EUR_PER_MWH] * 3 and fallback.filled == [0, 1, 2]
    assert fallback.description == "no price known in the horizon: flat price (earliest charging within the limits)"


def test_gaps_take_the_dearest_known_price_so_known_cheap_slots_are_used_first(site):
    fallback = price_fallback([60, None, 40, None], "max_known")
    assert (fallback.prices, fallback.filled) == ([60, 60, 40, 60], [1, 3])
    assert fallback.description == "2 slots without a price filled with the dearest known price"
    # 5.5 kWh at 22 kW, one slot: the one known cheap slot (40)
    _, result = _plan(site, _signals([60, None, 40, None]), [ev("a", "CP001", 0, 4, energy_needed_kwh=5.5)])
    assert result.power_kw["CP001"] == pytest.approx([0, 0, 22, 0], abs=1e-9)


def test_every_price_known_is_no_fallback():
    fallback = price_fallback([60, 40], "max_known")
    assert (fallback.prices, fallback.filled, fallback.description) == ([60, 40], [], "none")


def test_policy_error_leaves_the_gaps_for_resolve_to_name(site):
    with pytest.raises(ProblemError, match=r"prices missing for slots 1-2 \["):
        _plan(site, _signals([60, None, None]), [], policy="error")
    with pytest.raises(ProblemError, match=r"prices missing for slots 0-1 \["):
        _plan(site, _signals([None, None]), [], policy="error")


def test_unknown_signals_take_their_documented_defaults(site):
    problem, _ = _plan(site, _signals([50] * 3, load_control_pct=[None, 50.0, None],
                                      demand_response_level=[2.0, None, None], pv_forecast_kw=[None, 4.0, None]), [])
    assert problem.load_control_pct == [100.0, 50.0, 100.0]
    assert problem.demand_response_level == [2, 0, 0]
    assert problem.pv_forecast_kw == [0.0, 4.0, 0.0]


def test_a_bad_signal_is_the_project_s_error_naming_the_field(site):
    with pytest.raises(ProblemError, match=r"load_control_pct is above 100 in slots 0 \["):
        _plan(site, _signals([50], load_control_pct=[120.0]), [])


@pytest.mark.parametrize(("requested", "bus_has_history", "source"), [
    ("auto", True, "bus"), ("auto", False, "template"),
    ("live", True, "bus"), ("live", False, "bus"),
    ("template", True, "template"), ("template", False, "template"),
])
def test_session_source(requested, bus_has_history, source):
    assert session_source(requested, bus_has_history) == source


def test_input_gaps_name_every_defaulted_input_and_nothing_when_all_is_known() -> None:
    from cariflex_pipeline.scheduling.horizon import SlotSignals, input_gaps, price_fallback

    known = SlotSignals([100.0] * 4, [100.0] * 4, [0.0] * 4, [0.0] * 4)
    assert input_gaps(known, price_fallback(known.prices_eur_per_mwh, "max_known"), "bus", 0) == []
    blind = SlotSignals([None] * 4, [None, 80.0, None, None], [None] * 4, [None] * 4)
    assert input_gaps(blind, price_fallback(blind.prices_eur_per_mwh, "max_known"), "template", 2) == [
        "prices: no price known in the horizon: flat price (earliest charging within the limits) (4 of 4 slots)",
        "load control: 3 of 4 slots unknown, planned as 100 %",
        "demand response: 4 of 4 slots unknown, planned as level 0",
        "sessions: the bundled day template, not live sessions from the bus",
        "sessions: 2 with a default departure or energy",
    ]
