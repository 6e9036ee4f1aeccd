"""The LP's rows and columns where the model's docstring says they are, and the devices' own bounds.

The outcome tests in test_model.py show the optimum; these pin the parts an optimum does not always reveal: the
grid bill's kink (an import column only where the site can export and export earns less than import), the export
floor only where storage can discharge below it, one-way binaries up to the last price at or below zero, and a
battery's own SoC ceiling and final floor rather than the defaults.
"""

from __future__ import annotations

import random
import warnings
from datetime import timedelta

import pulp
import pytest

from cariflex_pipeline.scheduling import (
    BatterySpec,
    SolverError,
    SolverTimeLimitError,
    build_model,
    resolve,
    solve,
)
from cariflex_pipeline.scheduling.model import _bill, _check_status
from cariflex_pipeline_tests.scheduling.helpers import BATTERY, at, ev, problem, solve_checked


def test_the_bill_has_an_import_column_only_where_the_site_can_export_for_less_than_it_imports(site):
    # a 4 kW battery under a 60 kW export limit; export pays 40. Slot 0: the battery alone can push the site out
    # (kinked). Slot 1: 4 kW of load, so at most 0 net (exactly at the kink, no column). Slot 2: 3 kW of load, 1 kW
    # can leave (kinked). Slot 3: export earns what import costs (no kink to model).
    p = problem([100, 100, 100, 40], [], batteries=[BatterySpec(**BATTERY)], inflexible_load_kw=[0, 4, 3, 0],
                export_price_eur_per_mwh=[40, 40, 40, 40], export_capacity_kw=60)
    bill = _bill(resolve(p, site))
    assert bill.flex_price == [40, 100, 40, 40]
    assert bill.import_price == [60, 0, 60, 0]
    assert bill.constant == 0.25 * (4 * 100 + 3 * 40)  # milli-EUR: the base load at the flexible price


def test_no_import_column_where_the_export_limit_keeps_the_site_importing(site):
    # export limited to 0 kW: the battery may discharge only into the site's own load, so the net never goes
    # below 0 and every kW is priced at the import price, whatever export would pay
    p = problem([100, 100], [], batteries=[BatterySpec(**BATTERY)], inflexible_load_kw=[0, 2],
                export_price_eur_per_mwh=[40, 40], export_capacity_kw=0)
    bill = _bill(resolve(p, site))
    assert (bill.flex_price, bill.import_price) == ([100, 100], [0, 0])
    assert [name for name in build_model(resolve(p, site)).prob.variablesDict() if name.startswith("g")] == []


def test_a_v2g_car_can_push_the_site_out_only_while_it_is_plugged_in(site):
    car = ev("car", "v2g_01", 1, 3, battery_capacity_kwh=40, soc_now=0.5, soc_target=0.5, efficiency=0.9)
    p = problem([100] * 4, [car], export_price_eur_per_mwh=[40] * 4, export_capacity_kw=60)
    resolved = resolve(p, site)
    bill = _bill(resolved)
    assert bill.import_price == [0, 60, 60, 0]
    built = build_model(resolved)
    grid = sorted(name for name in built.prob.variablesDict() if name.startswith("g"))
    assert grid == ["g0001", "g0002"]
    assert built.prob.get_constraint_by_name("import_0001").constant == 0  # rhs: the base load (none here)


def test_the_import_column_prices_the_gap_between_import_and_export(site):
    # the car may export at 40 while import costs 100: discharging 8.91 kW into a 5 kW load sends 3.91 kW out at
    # 40 and saves 5 kW at 100; the bill the LP reports is the bill the problem computes for its plan
    car = ev("car", "v2g_01", 0, 2, battery_capacity_kwh=40, soc_now=0.5, soc_target=0.5, efficiency=0.9)
    p = problem([100, 10], [car], inflexible_load_kw=[5, 5], export_price_eur_per_mwh=[40, 40],
                export_capacity_kw=60)
    resolved, result = solve_checked(site, p)
    assert result.power_kw["v2g_01"] == pytest.approx([-8.91, 11], abs=1e-6)
    assert result.bill_eur == pytest.approx(result.cost_eur(resolved), abs=1e-9)
    assert result.bill_eur == pytest.approx((-40 * 3.91 + 10 * 16) * 0.25 / 1000, abs=1e-9)


def _rows(built, prefix):
    """The model's rows named prefix + slot, by slot (PuLP 4 names rows only through get_constraint_by_name)."""
    found = {t: built.prob.get_constraint_by_name(f"{prefix}{t:04d}") for t in range(96)}
    return {t: row for t, row in found.items() if row is not None}


def test_an_export_floor_row_only_where_storage_can_go_below_the_floor(site):
    # a 4 kW battery and a 22 kW charge point: the flexible power can reach -4 kW. Export limits of 2 kW (slot 0)
    # and 4 kW (slot 1, exactly what the battery gives: no row needed), 60 kW (slot 2)
    p = problem([50, 50, 50], [ev("a", "CP001", 0, 3, energy_needed_kwh=5)], batteries=[BatterySpec(**BATTERY)],
                inflexible_load_kw=[0, 0, 0])
    resolved = resolve(p, site)
    resolved.site_floor_kw[:] = [-2, -4, -60]
    built = build_model(resolved)
    [(slot, export)] = _rows(built, "export_").items()
    assert slot == 0 and export.sense == pulp.LpConstraintGE and export.constant == 2  # flex >= -2
    site_rows = _rows(built, "site_")
    assert sorted(site_rows) == [0, 1, 2] and {row.sense for row in site_rows.values()} == {pulp.LpConstraintLE}
    assert [-row.constant for row in site_rows.values()] == resolved.site_limit_kw.tolist()


def test_no_site_rows_in_a_slot_without_a_device(site):
    p = problem([50, 50, 50], [ev("a", "CP001", 1, 2, energy_needed_kwh=1)])
    assert list(_rows(build_model(resolve(p, site)), "site_")) == [1]


def test_a_car_that_needs_nothing_takes_nothing_even_when_paid_to(site):
    full = ev("a", "CP001", 0, 2, energy_needed_kwh=0)
    resolved, result = solve_checked(site, problem([-100, -100], [full, ev("b", "CP002", 0, 2, energy_needed_kwh=5)]))
    assert result.power_kw["CP001"] == [0.0, 0.0]
    assert result.power_kw["CP002"] == pytest.approx([20, 0])  # exactly its 5 kWh, in the earlier slot
    built = build_model(resolved)
    assert built.unserved[0] is None and 0 not in built.ev_power  # no column at all for it
    assert built.prob.get_constraint_by_name("energy_0") is None


def test_a_plain_session_s_energy_row_and_its_unserved_column(site):
    built = build_model(resolve(problem([50, 50], [ev("a", "CP001", 0, 2, energy_needed_kwh=5)]), site))
    row = built.prob.get_constraint_by_name("energy_0")
    assert (row.sense, row.constant) == (pulp.LpConstraintEQ, -5)
    assert {var.name: coefficient for var, coefficient in row.items()} == {
        "p000000_0000": 0.25, "p000000_0001": 0.25, "u000000": 1.0}
    [unserved] = built.unserved
    assert (unserved.lowBound, unserved.upBound) == (0, 5)


def test_a_battery_stops_at_its_own_soc_ceiling(site):
    # as the arbitrage in test_model (charge at 10, serve the load at 100), but the battery may hold only 5.45 kWh:
    # 0.45 kWh in = 2 kW for a slot, 0.45 · 0.9 / 0.25 = 1.62 kW out
    spec = BatterySpec(**BATTERY, soc_max_kwh=5.45)
    _, result = solve_checked(site, problem([10, 100], [], batteries=[spec], inflexible_load_kw=[20, 20]))
    assert result.battery_power_kw["b1"] == pytest.approx([2, -1.62], abs=1e-6)


def test_a_battery_ends_at_its_own_final_floor_not_its_start(site):
    # no load, unpaid export: nothing to gain, but the battery must end at 5.9 kWh (0.9 kWh more: 4 kW for a slot)
    above = BatterySpec(**BATTERY, final_soc_min_kwh=5.9)
    _, result = solve_checked(site, problem([10, 100], [], batteries=[above]))
    assert result.battery_power_kw["b1"] == pytest.approx([4, 0], abs=1e-6)
    # allowed to end at 4.1 kWh: 0.9 kWh · 0.9 = 0.81 kWh serves the load in the dear slot (3.24 kW)
    below = BatterySpec(**BATTERY, final_soc_min_kwh=4.1)
    _, result = solve_checked(site, problem([100, 90], [], batteries=[below], inflexible_load_kw=[20, 20]))
    assert result.battery_power_kw["b1"] == pytest.approx([-3.24, 0], abs=1e-6)


def test_binaries_up_to_the_last_price_at_or_below_zero(site):
    batteries = [BatterySpec(**BATTERY), BatterySpec(**{**BATTERY, "name": "b2"})]
    free = resolve(problem([50, 0, 60, 70], [], batteries=batteries), site)
    assert solve(free).binaries == 2 * 2  # slots 0 and 1 of each battery
    assert solve(free, one_way="every_slot").binaries == 2 * 4
    # export paying less than nothing makes a kW pushed out a negative flexible price, though import costs 50
    paid_to_take = resolve(problem([50, 50, 50], [], batteries=batteries, export_price_eur_per_mwh=[-10, 0, 0],
                                   export_capacity_kw=60), site)
    assert _bill(paid_to_take).flex_price[0] == -10
    assert solve(paid_to_take).binaries == 2 * 1


def test_cbc_stopped_by_its_time_limit_is_a_time_limit_error():
    """A knapsack of 300 binaries that CBC cannot close in a second: it stops with a feasible, unproven
    solution (with less time it may stop before it has any, another status of the same branch)."""
    rng = random.Random(1)
    prob = pulp.LpProblem("knapsack", pulp.LpMaximize)
    items = [prob.add_variable(f"x{i}", cat=pulp.LpBinary) for i in range(300)]
    prob += pulp.lpSum(rng.randint(1, 1000) * x for x in items)
    for j in range(30):
        prob += pulp.lpSum(rng.randint(1, 1000) * x for x in items) <= 50_000, f"weight{j}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=1, gapRel=1e-9))
    assert prob.sol_status == pulp.LpSolutionIntegerFeasible
    with pytest.raises(SolverTimeLimitError) as raised:
        _check_status(prob, "cbc", 1)
    assert str(raised.value) == ("CBC stopped (Optimal / solution status 2) within the time limit of 1 s; "
                                 "no schedule")
    with pytest.raises(SolverError) as raised:  # no limit was set: the same status is the solver's failure
        _check_status(prob, "cbc", None)
    assert not isinstance(raised.value, SolverTimeLimitError)
    assert str(raised.value) == "CBC ended with Optimal / solution status 2; no schedule"


def _car(id: str, point: str, first: int, end: int, **fields):
    car = {"battery_capacity_kwh": 40, "soc_now": 0.5, "soc_target": 0.5, "efficiency": 0.9}
    return ev(id, point, first, end, **{**car, **fields})


def test_two_v2g_cars_each_have_their_own_columns(site):
    # both serve the site's 20 kW load in the dear slot and take it back in the cheap one
    cars = [_car("one", "v2g_01", 0, 2), _car("two", "v2g_02", 0, 2)]
    _, result = solve_checked(site, problem([100, 10], cars, inflexible_load_kw=[20, 20]))
    assert result.power_kw["v2g_01"] == pytest.approx([-8.91, 11], abs=1e-6)
    assert result.power_kw["v2g_02"] == pytest.approx([-8.91, 11], abs=1e-6)


def test_a_v2g_car_discharges_no_lower_than_its_minimum(site):
    # 20 kWh in a 40 kWh car, kept above 45 %: 2 kWh may leave (2 · 0.9 / 0.25 = 7.2 kW), then come back
    car = _car("car", "v2g_01", 0, 2, soc_min=0.45)
    _, result = solve_checked(site, problem([100, 10], [car], inflexible_load_kw=[20, 20]))
    assert result.power_kw["v2g_01"] == pytest.approx([-7.2, 2 / 0.9 / 0.25], abs=1e-6)


def test_a_v2g_car_without_a_whole_slot_in_the_horizon_is_unserved(site):
    # plugged in from 12:20 to 12:25 (inside slot 1): no slot to charge in, its 4 kWh are unserved, with the penalty
    car = _car("brief", "v2g_01", 0, 2, soc_target=0.6).model_copy(
        update={"arrival": at(1) + timedelta(minutes=5), "departure": at(1) + timedelta(minutes=10)})
    _, result = solve_checked(site, problem([50, 50], [car]))
    [outcome] = result.sessions
    assert (outcome.energy_needed_kwh, outcome.unserved_kwh) == (pytest.approx(4), pytest.approx(4))
    assert result.unserved_penalty_eur == pytest.approx(4 * 10.0)


def test_the_simultaneous_flow_guard_names_the_v2g_session(site):
    built = build_model(resolve(problem([10, 20], [_car("car-7", "v2g_01", 0, 2)]), site))
    device = built.v2g[0]
    device.charge[0].varValue, device.discharge[0].varValue = 3.0, 2.0
    with pytest.raises(SolverError) as raised:
        device.flows()
    assert str(raised.value) == "car-7 slot 0: the solver charges 3 kW and discharges 2 kW at once; no schedule"


def test_a_penalty_exactly_at_its_floor_is_kept_without_a_note(site):
    # no positive price: the floor is 1 milli-EUR per kWh, the penalty asked exactly that
    p = problem([0, -5], [ev("a", "CP001", 0, 2, energy_needed_kwh=1)], unserved_penalty_eur_per_kwh=0.001)
    built = build_model(resolve(p, site))
    assert (built.penalty, built.notes) == (1.0, [])
