"""The LP on problems whose optimum can be worked out by hand (15-minute slots: 1 kW for a slot = 0.25 kWh)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import highspy
import pulp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cariflex_pipeline.scheduling import (
    BatterySpec,
    SolverError,
    SolverTimeLimitError,
    build_model,
    parse_problem,
    resolve,
    solve,
    verify,
)
from cariflex_pipeline.scheduling.model import MIP_REL_GAP, _check_status, _solver
from cariflex_pipeline_tests.scheduling.helpers import BATTERY, ev, problem, solve_checked

SAMPLE = Path(__file__).parents[2] / "cariflex_pipeline" / "scheduling" / "data" / "sample_problem.json"


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_cheapest_slots_are_chosen(site, solver):
    # 5 kWh at 10 kW = two slots; the two cheapest are slots 3 (10) and 1 (20)
    p = problem([100, 20, 50, 10], [ev("a", "CP001", 0, 4, energy_needed_kwh=5, max_power_kw=10)])
    resolved, result = solve_checked(site, p, solver)
    assert result.power_kw["CP001"] == pytest.approx([0, 10, 0, 10], abs=1e-6)
    assert result.cost_eur(resolved) == pytest.approx((20 + 10) * 2.5 / 1000)
    [outcome] = result.sessions
    assert (outcome.id, outcome.charge_point, outcome.energy_needed_kwh) == ("a", "CP001", 5)
    assert result.sessions[0].unserved_kwh == pytest.approx(0, abs=1e-9)
    assert result.status == "optimal" and result.solver == solver


def test_site_limit_binds_and_is_shared(site):
    # two EVs of 5 kWh each behind a 20 kW connection: 20 kW in the two cheapest slots, each EV gets its 5 kWh
    sessions = [ev("a", "CP001", 0, 4, energy_needed_kwh=5), ev("b", "CP002", 0, 4, energy_needed_kwh=5)]
    resolved, result = solve_checked(site, problem([10, 50, 100, 100], sessions, connection_capacity_kw=20))
    assert result.site_power_kw().tolist() == pytest.approx([20, 20, 0, 0], abs=1e-6)
    assert [s.energy_delivered_kwh for s in result.sessions] == pytest.approx([5, 5])
    assert result.cost_eur(resolved) == pytest.approx((10 + 50) * 5 / 1000)


def test_impossible_target_is_reported_as_unserved(site):
    # 1 h at 11 kW gives 11 kWh at most; 30 kWh asked: 19 kWh unserved, full power throughout
    p = problem([50] * 8, [ev("a", "CP006", 0, 4, energy_needed_kwh=30)])
    _, result = solve_checked(site, p)
    assert result.power_kw["CP006"][:4] == pytest.approx([11] * 4)
    assert result.sessions[0].energy_delivered_kwh == pytest.approx(11)
    assert result.sessions[0].unserved_kwh == pytest.approx(19)
    # the objective split into what the site pays, the penalty (10 EUR/kWh) and the tie-breaks, each in EUR
    assert result.bill_eur == pytest.approx(11 * 50 / 1000)
    assert result.unserved_penalty_eur == pytest.approx(19 * 10.0)
    tie_break = sum(1e-4 * t * 0.25 * 11 for t in range(4)) / 1000  # TIE_BREAK x slot x kWh, milli-EUR
    assert result.tie_break_eur == pytest.approx(tie_break, rel=1e-6)


def test_a_car_leaving_after_the_horizon_needs_only_its_share_now(site):
    # 4-slot horizon, the car stays 12 slots: a third of its 12 kWh is due inside the horizon, in the two
    # cheapest slots, and nothing is reported unserved (the later runs plan the rest)
    p = problem([50, 10, 40, 20], [ev("a", "CP006", 0, 12, energy_needed_kwh=12)])
    _, result = solve_checked(site, p)
    assert result.sessions[0].energy_needed_kwh == pytest.approx(4)
    assert result.sessions[0].unserved_kwh == pytest.approx(0, abs=1e-9)
    assert result.power_kw["CP006"] == pytest.approx([0, 11, 0, 5], abs=1e-6)


def test_efficiency_counts_against_the_energy(site):
    p = problem([50, 60], [ev("a", "CP001", 0, 2, energy_needed_kwh=4.5, max_power_kw=20, efficiency=0.9)])
    _, result = solve_checked(site, p)
    assert result.power_kw["CP001"] == pytest.approx([20, 0])  # 20 kW · 0.25 h · 0.9 = 4.5 kWh


def test_demand_response_level_derates_the_site_limit(site):
    # four 22 kW EVs that want more than they can get; 40 kW derated by level 0..3 -> 40, 30, 20, 10 kW
    sessions = [ev(f"e{i}", f"CP00{i}", 0, 4, energy_needed_kwh=100) for i in range(1, 5)]
    p = problem([50] * 4, sessions, connection_capacity_kw=40, demand_response_level=[0, 1, 2, 3])
    _, result = solve_checked(site, p)
    assert result.site_limit_kw == pytest.approx([40, 30, 20, 10])
    assert result.site_power_kw().tolist() == pytest.approx([40, 30, 20, 10])


def test_load_control_inflexible_load_and_pv_shape_the_limit(site):
    p = problem([50] * 3, [ev("a", "CP001", 0, 3, energy_needed_kwh=100)], connection_capacity_kw=40,
                load_control_pct=[100, 50, 50], inflexible_load_kw=[10, 10, 30], pv_forecast_kw=[5, 0, 0])
    _, result = solve_checked(site, p)
    # 40 - 10 + 5 = 35 (capped at the 22 kW point), 20 - 10 = 10, 20 - 30 < 0 -> 0
    assert result.site_limit_kw == pytest.approx([35, 10, 0])
    assert result.power_kw["CP001"] == pytest.approx([22, 10, 0])


def test_custom_derating_factors(site):
    p = problem([50] * 2, [ev("a", "CP001", 0, 2, energy_needed_kwh=100)], connection_capacity_kw=40,
                demand_response_level=[1, 2], derating={0: 1.0, 1: 0.5, 2: 0.1})
    _, result = solve_checked(site, p)
    assert result.power_kw["CP001"] == pytest.approx([20, 4])


def test_ties_charge_earlier(site):
    p = problem([70] * 6, [ev("a", "CP001", 0, 6, energy_needed_kwh=11)])
    _, result = solve_checked(site, p)
    assert result.power_kw["CP001"] == pytest.approx([22, 22, 0, 0, 0, 0])


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_battery_arbitrage_when_the_spread_pays_for_the_losses(site, solver):
    # 100 · 0.81 = 81 > 50: charge 4 kW (+0.9 kWh), discharge 0.9 · 0.9 / 0.25 = 3.24 kW into the site's own
    # 20 kW load, end where it started
    p = problem([50, 100], [], batteries=[BatterySpec(**BATTERY)], inflexible_load_kw=[20, 20])
    resolved, result = solve_checked(site, p, solver)
    assert result.battery_power_kw["b1"] == pytest.approx([4, -3.24], abs=1e-6)
    assert result.cost_eur(resolved) == pytest.approx((50 * 24 + 100 * 16.76) * 0.25 / 1000)


def test_no_battery_arbitrage_when_the_losses_eat_the_spread(site):
    # 100 · 0.81 = 81 < 90: cycling would lose money
    p = problem([90, 100], [], batteries=[BatterySpec(**BATTERY)], inflexible_load_kw=[20, 20])
    _, result = solve_checked(site, p)
    assert result.battery_power_kw["b1"] == pytest.approx([0, 0], abs=1e-6)


def test_no_battery_arbitrage_into_unpaid_export(site):
    # the same spread as above pays only against the site's own load: export earns nothing by default
    _, result = solve_checked(site, problem([50, 100], [], batteries=[BatterySpec(**BATTERY)]))
    assert result.battery_power_kw["b1"] == pytest.approx([0, 0], abs=1e-6)


def test_paid_export_is_held_to_the_export_capacity(site):
    # export paid 80 (80 · 0.81 > 50) but only 2 kW may leave the site: discharge 2 kW, recharge 2 / 0.81 kW
    p = problem([50, 100], [], batteries=[BatterySpec(**BATTERY)], export_price_eur_per_mwh=[80, 80],
                export_capacity_kw=2)
    resolved, result = solve_checked(site, p)
    assert result.battery_power_kw["b1"] == pytest.approx([2 / 0.81, -2], abs=1e-6)
    assert result.cost_eur(resolved) == pytest.approx((50 * 2 / 0.81 - 80 * 2) * 0.25 / 1000)


def test_site_export_capacity_is_the_default(site):
    # the Martinique site exports at most 60 kW: two batteries of 40 kW would send 80 kW out without the limit
    big = {**BATTERY, "capacity_kwh": 100, "initial_soc_kwh": 50, "max_charge_kw": 40, "max_discharge_kw": 40}
    batteries = [BatterySpec(**{**big, "name": name}) for name in ("b1", "b2")]
    p = problem([10, 100], [], batteries=batteries, export_price_eur_per_mwh=[90, 90])
    resolved, result = solve_checked(site, p)
    assert resolved.site_floor_kw.tolist() == [-60, -60]
    assert result.site_power_kw().tolist() == pytest.approx([60 / 0.81, -60], abs=1e-6)


def test_pv_above_the_site_load_is_free_for_the_evs(site):
    # 30 kW of PV in the dear slot covers the EV's 20 kW: nothing is imported, nothing is paid
    p = problem([50, 100], [ev("a", "CP001", 0, 2, energy_needed_kwh=5)], pv_forecast_kw=[0, 30])
    resolved, result = solve_checked(site, p)
    assert result.power_kw["CP001"] == pytest.approx([0, 20], abs=1e-6)
    assert result.cost_eur(resolved) == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("solver", ["highs", "cbc", "highs_pulp"])
def test_pv_is_used_first_and_the_rest_bought_in_the_cheapest_slot(site, solver):
    # 10 kW of PV at 100, 4 kW of it for the site: 6 kW are free for the EV; the other 14 kW cost 60 in slot 0
    # rather than 100 in slot 1 (every solver path: the import column and the objective's constant part)
    p = problem([60, 100], [ev("a", "CP001", 0, 2, energy_needed_kwh=5)], pv_forecast_kw=[0, 10],
                inflexible_load_kw=[2, 4])
    resolved, result = solve_checked(site, p, solver)
    assert result.bill_eur == pytest.approx(result.cost_eur(resolved), abs=1e-9)
    assert result.objective_total_eur == pytest.approx(result.bill_eur + result.tie_break_eur, abs=1e-12)
    assert result.power_kw["CP001"] == pytest.approx([14, 6], abs=1e-6)  # 4 kW of the PV feed the site
    assert result.cost_eur(resolved) == pytest.approx(60 * (14 + 2) * 0.25 / 1000)


def test_at_a_negative_price_a_pv_surplus_goes_into_the_evs_not_the_grid(site):
    # slot 0 at -20 with 30 kW of PV: exporting would cost, so the EV takes its 5 kWh there (20 kW)
    p = problem([-20, 10], [ev("a", "CP001", 0, 2, energy_needed_kwh=5)], pv_forecast_kw=[30, 0])
    resolved, result = solve_checked(site, p)
    assert result.power_kw["CP001"] == pytest.approx([20, 0], abs=1e-6)
    assert result.cost_eur(resolved) == pytest.approx(-20 * -10 * 0.25 / 1000)  # 10 kW still exported


FULL_BATTERY = {**BATTERY, "initial_soc_kwh": 10}


def test_at_negative_prices_full_storage_cycles_across_slots_never_within_one(site):
    # both full at -50: discharge first (export costs 50/MWh), then take more back (paid 50/MWh); charging and
    # discharging in one slot would hide the burn from the net power series (the SoC would go above capacity)
    car = ev("car", "v2g_01", 0, 2, battery_capacity_kwh=40, soc_now=1.0, soc_target=1.0, efficiency=0.9)
    resolved, result = solve_checked(site, problem([-50, -50], [car], batteries=[BatterySpec(**FULL_BATTERY)]))
    assert result.battery_power_kw["b1"] == pytest.approx([-3.24, 4], abs=1e-6)  # 3.24 = 4 · 0.81
    assert result.power_kw["v2g_01"] == pytest.approx([-8.91, 11], abs=1e-6)  # 11 kW charger, 0.9 each way
    assert result.cost_eur(resolved) == pytest.approx(-50 * (4 - 3.24 + 11 - 8.91) * 0.25 / 1000)


def test_at_minus_500_storage_earns_what_forbidding_simultaneous_flows_allows(site):
    # 4 h at -500 EUR/MWh, full battery that must end full: 7 slots discharging 4 kW (28 kW·slots) and 28 / 0.81
    # kW·slots of charge in the other 9 slots; each kWh absorbed earns 0.5 EUR
    resolved, result = solve_checked(site, problem([-500] * 16, [], batteries=[BatterySpec(**FULL_BATTERY)]))
    assert result.bill_eur == pytest.approx(-500 * (28 / 0.81 - 28) * 0.25 / 1000, rel=1e-9)
    assert result.cost_eur(resolved) == pytest.approx(result.bill_eur, rel=1e-9)
    assert sorted(result.battery_power_kw["b1"])[:7] == pytest.approx([-4] * 7, abs=1e-6)
    assert sum(result.battery_power_kw["b1"]) == pytest.approx(28 / 0.81 - 28, abs=1e-6)


def test_without_negative_prices_the_model_stays_an_lp(site):
    p = problem([50, 100], [], batteries=[BatterySpec(**BATTERY)], inflexible_load_kw=[20, 20])
    _, result = solve_checked(site, p)
    assert result.binaries == 0
    # a negative price in slot 2 needs the binaries of slots 0-2 (room made early is used there), not of slot 3
    negative = resolve(problem([50, 100, -10, 60], [], batteries=[BatterySpec(**BATTERY)]), site)
    built = build_model(negative)
    assert sorted(y.name for y in built.batteries[0].one_way.values()) == ["b000y0000", "b000y0001", "b000y0002"]
    assert solve(negative).binaries == 3


def test_solves_do_not_depend_on_another_highs_user_s_threads(site, other_highs_user):
    # another library in the process ran HiGHS with its own thread count (the default is the machine's cores)
    resolved = resolve(parse_problem(SAMPLE.read_text()), site)
    for solver in ("highs", "highs_pulp"):
        assert solve(resolved, solver=solver).status == "optimal"


@pytest.fixture
def other_highs_user():
    highspy.Highs.resetGlobalScheduler(True)
    other = highspy.Highs()
    other.setOptionValue("output_flag", False)
    other.setOptionValue("threads", 2)
    other.addVar(0.0, 1.0)
    other.run()
    assert other.getModelStatus() == highspy.HighsModelStatus.kOptimal
    yield
    highspy.Highs.resetGlobalScheduler(True)  # the next test starts with a fresh pool, whatever it asks for


def test_arbitrage_between_negative_prices_when_the_spread_pays_for_the_losses(site):
    # full battery: discharge 3.24 kW at -20 so that 4 kW fit back at -80 (3.24 / 0.81 = 4)
    resolved, result = solve_checked(site, problem([-20, -80], [], batteries=[BatterySpec(**FULL_BATTERY)]))
    assert result.battery_power_kw["b1"] == pytest.approx([-3.24, 4], abs=1e-6)
    assert result.cost_eur(resolved) == pytest.approx((-20 * -3.24 - 80 * 4) * 0.25 / 1000)


def _v2g(prices):
    session = ev("car", "v2g_01", 0, 2, battery_capacity_kwh=40, soc_now=0.5, soc_target=0.5, efficiency=0.9)
    return problem(prices, [session], inflexible_load_kw=[20, 20])  # discharge serves the site's own load


def test_v2g_arbitrage_when_the_spread_pays_for_the_losses(site):
    # charger 11 kW: +11 · 0.25 · 0.9 = 2.475 kWh, then 2.475 · 0.9 / 0.25 = 8.91 kW back, SoC target kept
    _, result = solve_checked(site, _v2g([50, 100]))
    assert result.power_kw["v2g_01"] == pytest.approx([11, -8.91], abs=1e-6)
    assert result.sessions[0].unserved_kwh == pytest.approx(0, abs=1e-9)


def test_no_v2g_arbitrage_when_the_losses_eat_the_spread(site):
    _, result = solve_checked(site, _v2g([90, 100]))
    assert result.power_kw["v2g_01"] == pytest.approx([0, 0], abs=1e-6)


def test_v2g_reaches_its_soc_target(site):
    session = ev("car", "v2g_01", 0, 4, battery_capacity_kwh=40, soc_now=0.5, soc_target=0.6, efficiency=0.9)
    # prices too flat for arbitrage (22 · 0.81 < 20): 4 kWh at the battery = 4 / 0.9 / 0.25 = 17.8 kW·slot,
    # 11 kW in the cheapest slot and the rest in the next cheapest
    _, result = solve_checked(site, problem([22, 10, 20, 22], [session]))
    assert result.power_kw["v2g_01"] == pytest.approx([0, 11, 4 / 0.9 / 0.25 - 11, 0], abs=1e-6)


def test_v2g_may_end_above_its_target_when_charging_pays(site):
    """The target is a floor: at a negative price the car takes what it can (11 kW for the hour) and leaves
    above its target, not held to it."""
    session = ev("car", "v2g_01", 0, 4, battery_capacity_kwh=40, soc_now=0.5, soc_target=0.6, efficiency=0.9)
    _, result = solve_checked(site, problem([-100, -100, -100, -100], [session]))
    assert result.power_kw["v2g_01"] == pytest.approx([11, 11, 11, 11], abs=1e-6)
    [outcome] = result.sessions
    assert outcome.energy_delivered_kwh == pytest.approx(4 * 11 * 0.25 * 0.9) and outcome.unserved_kwh == 0


def test_highs_and_cbc_agree_on_the_sample_objective(site):
    resolved = resolve(parse_problem(SAMPLE.read_text()), site)
    highs = solve(resolved, solver="highs")
    cbc = solve(resolved, solver="cbc")
    stock = solve(resolved, solver="highs_pulp")  # PuLP's own HiGHS class instead of the one-call bridge
    assert verify(resolved, highs) == [] and verify(resolved, cbc) == [] and verify(resolved, stock) == []
    assert highs.objective_total_eur == pytest.approx(cbc.objective_total_eur, rel=1e-6)
    assert highs.objective_total_eur == pytest.approx(stock.objective_total_eur, rel=1e-9)
    assert json.loads(highs.to_json())["status"] == "optimal"


def test_time_limit_is_an_error_not_a_schedule(site):
    resolved = resolve(parse_problem(SAMPLE.read_text()), site)
    with pytest.raises(SolverTimeLimitError) as raised:
        solve(resolved, solver="highs", time_limit_s=0.0)
    assert str(raised.value) == "HiGHS hit the time limit of 0.0 s; no schedule"


def test_a_result_reports_its_build_and_solve_times_its_notes_and_a_free_plan_as_free(site):
    """build_seconds and solve_seconds are parts of the call's own time (not a check of speed); nothing to buy
    at price 0 is a bill of exactly 0, not the 'no objective' default."""
    resolved = resolve(problem([0.0, 0.0], [ev("a", "CP001", 0, 2, energy_needed_kwh=1)],
                               unserved_penalty_eur_per_kwh=0.0001), site)
    started = time.perf_counter()
    result = solve(resolved)
    elapsed = time.perf_counter() - started
    assert 0 <= result.build_seconds <= elapsed and 0 <= result.solve_seconds <= elapsed
    assert result.build_seconds + result.solve_seconds <= elapsed
    assert result.bill_eur == 0.0
    assert result.notes == build_model(resolved).notes == [
        "unserved penalty raised to 0.0010 EUR/kWh (10x the dearest kWh)"]


@st.composite
def _storage_problems(draw):
    """Batteries and a V2G car under prices that dip below zero (a PV surplus), with or without EVs."""
    n = draw(st.integers(2, 10))
    prices = draw(st.lists(st.sampled_from([-500, -80, -20, 0, 15, 60, 140]), min_size=n, max_size=n))
    batteries = [BatterySpec(name=f"b{i}", capacity_kwh=10, max_charge_kw=4,
                             max_discharge_kw=draw(st.sampled_from([3, 4])), soc_min_kwh=1,
                             initial_soc_kwh=draw(st.sampled_from([1, 6, 10])),
                             round_trip_efficiency=draw(st.sampled_from([0.81, 0.95])))
                 for i in range(draw(st.integers(1, 2)))]
    first = draw(st.integers(0, n - 1))
    sessions = [ev("car", "v2g_01", first, draw(st.integers(first + 1, n)), battery_capacity_kwh=40,
                   soc_now=draw(st.sampled_from([0.3, 1.0])), soc_target=draw(st.sampled_from([0.3, 0.9])),
                   efficiency=0.9)] if draw(st.booleans()) else []
    if draw(st.booleans()):
        sessions.append(ev("a", "CP001", 0, n, energy_needed_kwh=draw(st.sampled_from([2, 20]))))
    return problem(prices, sessions, batteries=batteries,
                   inflexible_load_kw=draw(st.lists(st.sampled_from([0, 5]), min_size=n, max_size=n)),
                   pv_forecast_kw=draw(st.lists(st.sampled_from([0, 30]), min_size=n, max_size=n)),
                   export_capacity_kw=draw(st.sampled_from([0, 5, 60])),
                   export_price_eur_per_mwh=draw(st.lists(st.sampled_from([0, 40]), min_size=n, max_size=n)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_storage_problems())
def test_binaries_where_needed_lose_nothing_against_binaries_everywhere(site, p):
    # the reference forbids simultaneous charge and discharge exactly, in every storage slot
    resolved = resolve(p, site)
    ours = solve(resolved, solver="highs")
    reference = solve(resolved, solver="highs", one_way="every_slot")
    assert verify(resolved, ours) == []
    assert ours.binaries <= reference.binaries
    scale = max(1.0, abs(reference.objective_total_eur))
    assert abs(ours.objective_total_eur - reference.objective_total_eur) <= 1e-6 * scale
    money, reference_money = (r.bill_eur + r.unserved_penalty_eur for r in (ours, reference))
    assert money <= reference_money + 1e-6 * scale


def test_a_car_gone_before_the_last_negative_price_still_gets_its_binaries(site):
    # found by the property above: the car leaves at slot 6, the batteries see -500 until slot 9; without a binary
    # in the car's 0-EUR slot 5 it would burn there to take in a battery's discharge the export limit (0) refuses
    batteries = [BatterySpec(name=f"b{i}", capacity_kwh=10, max_charge_kw=4, max_discharge_kw=3, soc_min_kwh=1,
                             initial_soc_kwh=soc, round_trip_efficiency=eta) for i, (soc, eta) in
                 enumerate([(6, 0.81), (1, 0.95)])]
    car = ev("car", "v2g_01", 0, 6, battery_capacity_kwh=40, soc_now=1.0, soc_target=0.3, efficiency=0.9)
    resolved = resolve(problem([-500] * 5 + [0] + [-500] * 4, [car], batteries=batteries, export_capacity_kw=0),
                       site)
    ours, reference = solve(resolved), solve(resolved, one_way="every_slot")
    assert verify(resolved, ours) == []
    assert ours.objective_total_eur == pytest.approx(reference.objective_total_eur, rel=1e-6)


def test_a_solution_that_charges_and_discharges_at_once_is_no_schedule(site):
    """The guard behind every storage device: should a solver return charge and discharge in one slot (the net
    power would then lie about the SoC), the solve fails naming the device, the slot and both flows. HiGHS and
    CBC never do on these models, so the solution is set by hand on the built model's own device."""
    p = problem([10.0, 20.0], [], batteries=[BatterySpec(name="store", capacity_kwh=10.0, max_charge_kw=5.0,
                                                          max_discharge_kw=5.0, initial_soc_kwh=5.0)])
    [device] = build_model(resolve(p, site)).batteries
    for variable, value in zip((*device.charge, *device.discharge), (0.0, 2.0, 0.0, 1.5), strict=True):
        variable.varValue = value
    with pytest.raises(SolverError) as raised:
        device.flows()
    assert str(raised.value) == "store slot 1: the solver charges 2 kW and discharges 1.5 kW at once; no schedule"
    device.discharge[1].varValue = 1e-6  # at the tolerance: a solver's rounding, not a flow
    assert device.flows() == [(0.0, 0.0), (2.0, 1e-6)]
    device.charge[1].varValue, device.discharge[1].varValue = 1e-6, 1.5  # the same on the charging side
    assert device.flows() == [(0.0, 0.0), (1e-6, 1.5)]
    device.charge[0].varValue, device.discharge[0].varValue = 5e-10, -5e-10  # solver noise reads as 0
    assert device.flows()[0] == (0.0, 0.0)


def test_the_unserved_penalty_is_raised_to_ten_times_the_dearest_kwh_and_says_so(site):
    """At 2,000 EUR/MWh and 90 % efficiency a kWh at the battery costs up to 2.22 EUR: a 1 EUR/kWh penalty would
    make leaving a car uncharged pay, so the LP uses 10 x that + 1 milli-EUR instead, with a note."""
    cheap = problem([2000.0, 100.0], [ev("a", "CP001", 0, 2, energy_needed_kwh=5, efficiency=0.9)],
                    unserved_penalty_eur_per_kwh=1.0)
    floor = 10.0 * 2000.0 / 0.9 + 1.0  # milli-EUR per kWh
    built = build_model(resolve(cheap, site))
    assert built.penalty == pytest.approx(floor, rel=1e-12)
    assert built.notes == [f"unserved penalty raised to {floor / 1000:.4f} EUR/kWh (10x the dearest kWh)"]
    assert built.notes == ["unserved penalty raised to 22.2232 EUR/kWh (10x the dearest kWh)"]
    dear = build_model(resolve(cheap.model_copy(update={"unserved_penalty_eur_per_kwh": 30.0}), site))
    assert (dear.penalty, dear.notes) == (30_000.0, [])
    # no car: the floor counts the batteries' kWh at full efficiency, and only positive prices
    storage_only = problem([-50.0, 300.0], [], batteries=[BatterySpec(name="b", capacity_kwh=10, max_charge_kw=5,
                                                                      max_discharge_kw=5)],
                           unserved_penalty_eur_per_kwh=1.0)
    assert build_model(resolve(storage_only, site)).penalty == pytest.approx(10.0 * 300.0 + 1.0, rel=1e-12)
    all_negative = storage_only.model_copy(update={"prices_eur_per_mwh": [-50.0, -10.0]})
    assert build_model(resolve(all_negative, site)).penalty == 1000.0  # 1 EUR/kWh is above the floor of 1


@pytest.mark.parametrize(("asked", "used"), [("auto", "highs"), ("highs", "highs"), ("highs_pulp", "highs"),
                                              ("cbc", "cbc")])
def test_each_solver_name_solves_with_its_solver(site, asked, used):
    p = problem([100, 20, 50, 10], [ev("a", "CP001", 0, 4, energy_needed_kwh=5, max_power_kw=10)])
    result = solve(resolve(p, site), solver=asked)
    assert result.solver == used
    assert result.power_kw["CP001"] == pytest.approx([0, 10, 0, 10], abs=1e-6)


def test_by_default_the_solve_is_highs_quiet_and_binaries_only_where_needed(site, capfd):
    negative = resolve(problem([50, -10, 60, 70], [], batteries=[BatterySpec(**BATTERY)]), site)
    result = solve(negative)
    assert (result.solver, result.binaries) == ("highs", 2)  # slots 0 and 1, not the four of "every_slot"
    assert capfd.readouterr() == ("", "")  # no solver log unless msg=True


def test_without_highspy_highs_is_refused_and_auto_falls_back_to_cbc(site, monkeypatch):
    monkeypatch.setitem(sys.modules, "cariflex_pipeline.scheduling.highs_bridge", None)  # import raises
    resolved = resolve(problem([10, 20], [ev("a", "CP001", 0, 2, energy_needed_kwh=1)]), site)
    with pytest.raises(SolverError) as raised:
        solve(resolved, solver="highs")
    assert str(raised.value) == "HiGHS (highspy) is not available"
    assert solve(resolved, solver="auto").solver == "cbc"


@pytest.mark.parametrize(("solver", "message"), [
    ("highs", "HiGHS ended with Infeasible; no schedule"),
    ("cbc", "CBC ended with Infeasible / solution status -1; no schedule"),
])
def test_a_solver_that_finds_no_optimum_is_an_error_naming_its_status(solver, message):
    """The scheduler's own models always have a solution (unserved energy is a column); the status check behind
    them is tried on a model without one, solved by the real solver."""
    prob = pulp.LpProblem("infeasible", pulp.LpMinimize)
    x = prob.add_variable("x", 0, None)
    prob += x
    prob += x <= -1
    name, backend = _solver(solver, 10.0, False)
    prob.solve(backend)
    with pytest.raises(SolverError) as raised:
        _check_status(prob, name, 10.0)
    assert str(raised.value) == message and not isinstance(raised.value, SolverTimeLimitError)


@pytest.mark.parametrize("msg", [True, False])
@pytest.mark.parametrize("name", ["highs", "highs_pulp", "cbc"])
def test_every_solver_gets_the_time_limit_the_gap_and_the_log_setting(name, msg):
    _, backend = _solver(name, 7.5, msg)
    gap = backend.optionsDict["gapRel"] if name == "cbc" else backend.gapRel  # where each PuLP class keeps it
    assert (backend.timeLimit, backend.msg, gap) == (7.5, msg, MIP_REL_GAP)
