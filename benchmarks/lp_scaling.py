"""LP scaling: the scheduler's PuLP model + HiGHS against the same LP built directly with highspy arrays.

K EVs (11/22 kW, random plug-in windows, seeded) x 96 slots of 15 minutes, with a site limit that binds.
Per K it prints the scheduler's build, solve and total time and objective (PuLP model, HiGHS through the
one-call bridge), the total with PuLP's stock HiGHS class ("stock"), then in the same run the total for the same LP
passed to highspy as numpy arrays (the floor "direct"), the ratio scheduler/direct, the number of site rows at
their limit, and whether all objectives agree.

Then the cost of the storage's one-way binaries (model.py): the same K EVs with 10 batteries and 10 V2G cars
under prices that go negative at midday (a PV surplus), solved with binaries where needed (the scheduler), with
binaries in every storage slot (the exact reference: objectives must agree) and, as the LP floor, with the
negative prices clipped to 0 (no binary at all); the ratio is MILP time / LP time.

    .venv/bin/python benchmarks/lp_scaling.py [K ...]      # default: 10 100 1000 5000 (storage: K <= 1000)

Times are the best of 3 calls for K <= 1000 and one call for K = 5000. Timings on shared 2-core machines move by
tens of percent between runs: read the ratio, not the seconds.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import highspy
import numpy as np

from cariflex_pipeline.scheduling.model import TIE_BREAK, solve
from cariflex_pipeline.scheduling.problem import BatterySpec
from cariflex_pipeline.scheduling.resolve import ResolvedProblem, ResolvedSession

SLOTS = 96
DT_H = 0.25
PENALTY_EUR_PER_KWH = 10.0
T = TypeVar("T")


def day_prices() -> np.ndarray:
    """A day of 15-minute prices in EUR/MWh shaped like Martinique's: cheap at night and midday, evening peak."""
    hours = np.arange(SLOTS) * DT_H
    return np.round(95 + 55 * np.exp(-((hours - 19) / 2.2) ** 2) + 30 * np.exp(-((hours - 8) / 1.8) ** 2)
                    - 35 * np.exp(-((hours - 13) / 2.5) ** 2) - 25 * (hours < 5), 2)


def make_problem(k: int, seed: int = 42) -> ResolvedProblem:
    rng = np.random.default_rng(seed)
    prices = day_prices()
    sessions = []
    for i in range(k):
        first = int(rng.integers(0, 80))
        end = min(SLOTS, first + int(rng.integers(8, 41)))
        sessions.append(ResolvedSession(
            id=f"ev{i}", charge_point=f"cp{i}", first=first, end=end,
            energy_kwh=float(np.round(rng.uniform(5, 40), 3)), max_charge_kw=float(rng.choice([11.0, 22.0])),
            max_discharge_kw=0.0, efficiency=0.9,
        ))
    # 3 kW of connection per EV: plenty on average, short of the cheap hours' demand -> binds in ~10 slots
    limit = np.full(SLOTS, 3.0 * k)
    return ResolvedProblem(
        start=datetime(2026, 11, 28, 4, tzinfo=UTC), resolution=timedelta(minutes=15),
        price_eur_per_mwh=prices, site_limit_kw=limit, sessions=sessions, batteries=[],
        unserved_penalty_eur_per_kwh=PENALTY_EUR_PER_KWH, charge_points=[s.charge_point for s in sessions],
    )


def with_storage(problem: ResolvedProblem, dip_eur_per_mwh: float = -40.0) -> ResolvedProblem:
    """The problem with 10 batteries, 10 V2G cars and prices at `dip` from 11:00 to 14:00 (slots 28-39)."""
    prices = problem.price_eur_per_mwh.copy()
    prices[28:40] = dip_eur_per_mwh
    batteries = [BatterySpec(name=f"b{i}", capacity_kwh=13.5, max_charge_kw=5, max_discharge_kw=5, soc_min_kwh=1.35,
                             initial_soc_kwh=6.75, round_trip_efficiency=0.9) for i in range(10)]
    cars = [ResolvedSession(id=f"car{i}", charge_point=f"v2g{i}", first=4 * i, end=min(SLOTS, 4 * i + 48),
                            energy_kwh=10.0, max_charge_kw=11.0, max_discharge_kw=11.0, efficiency=0.92, v2g=True,
                            soc_initial_kwh=20.0, soc_min_kwh=10.0, soc_max_kwh=60.0) for i in range(10)]
    return ResolvedProblem(
        start=problem.start, resolution=problem.resolution, price_eur_per_mwh=prices,
        site_limit_kw=problem.site_limit_kw + 200.0, sessions=[*problem.sessions, *cars], batteries=batteries,
        unserved_penalty_eur_per_kwh=PENALTY_EUR_PER_KWH,
        charge_points=[*problem.charge_points, *(car.charge_point for car in cars)],
        base_load_kw=np.full(SLOTS, 20.0), site_floor_kw=np.full(SLOTS, -60.0),
    )


def solve_direct(problem: ResolvedProblem) -> tuple[float, float, int]:
    """The same LP as cariflex_pipeline.scheduling.model, as CSC arrays passed to highspy in one call.

    Columns: p[k,t] inside each window, then one unserved column per EV. Rows: one energy row per EV, then one
    site row per slot that has a variable. Objective in milli-EUR, tie-break included, exactly as the model.
    Returns (seconds, objective in EUR, binding site rows).
    """
    started = time.perf_counter()
    k = len(problem.sessions)
    first = np.array([s.first for s in problem.sessions])
    end = np.array([s.end for s in problem.sessions])
    lengths = end - first
    n_p = int(lengths.sum())
    owner = np.repeat(np.arange(k), lengths)
    offsets = np.arange(n_p) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    slot = first[owner] + offsets
    eta = np.array([s.efficiency for s in problem.sessions])
    pmax = np.array([s.max_charge_kw for s in problem.sessions])
    energy = np.array([s.energy_kwh for s in problem.sessions])
    used_slots = np.unique(slot)
    site_row = np.full(SLOTS, -1)
    site_row[used_slots] = k + np.arange(len(used_slots))

    lp = highspy.HighsLp()
    lp.num_col_ = n_p + k
    lp.num_row_ = k + len(used_slots)
    prices = problem.price_eur_per_mwh
    lp.col_cost_ = np.concatenate([DT_H * (prices[slot] + TIE_BREAK * slot), np.full(k, PENALTY_EUR_PER_KWH * 1000)])
    lp.col_lower_ = np.zeros(n_p + k)
    lp.col_upper_ = np.concatenate([pmax[owner], energy])
    lp.row_lower_ = np.concatenate([energy, np.full(len(used_slots), -highspy.kHighsInf)])
    lp.row_upper_ = np.concatenate([energy, problem.site_limit_kw[used_slots]])
    # column-wise: each p has (energy row, dt*eta) and (site row, 1); each u has (energy row, 1)
    index = np.empty(2 * n_p + k, dtype=np.int32)
    value = np.empty(2 * n_p + k)
    index[0:2 * n_p:2] = owner
    index[1:2 * n_p:2] = site_row[slot]
    value[0:2 * n_p:2] = DT_H * eta[owner]
    value[1:2 * n_p:2] = 1.0
    index[2 * n_p:] = np.arange(k)
    value[2 * n_p:] = 1.0
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.concatenate([np.arange(0, 2 * n_p + 1, 2), 2 * n_p + 1 + np.arange(k)]).astype(np.int32)
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"direct HiGHS: {h.modelStatusToString(h.getModelStatus())}")
    solution = h.getSolution()
    row_value = np.asarray(solution.row_value)
    elapsed = time.perf_counter() - started
    binding = int(np.sum(row_value[k:] > problem.site_limit_kw[used_slots] - 1e-6))
    return elapsed, h.getInfo().objective_function_value / 1000.0, binding


def _timed(function: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Best wall time of `repeats` calls (small K runs in milliseconds and a busy neighbour skews one call)."""
    timings = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        value = function()
        timings.append((time.perf_counter() - started, value))
    return min(timings, key=lambda timing: timing[0])


def main(sizes: list[int]) -> int:
    print(f"{'K':>6} {'vars':>8} {'build s':>8} {'solve s':>8} {'total s':>8} {'objective EUR':>14} "
          f"{'stock s':>8} {'direct s':>9} {'ratio':>6} {'binding':>7} agree")
    solve_direct(make_problem(2))  # the first Highs object prints a banner and loads the library: not timed
    ok = True
    for k in sizes:
        problem = make_problem(k)
        repeats = 3 if k <= 1000 else 1
        total, result = _timed(lambda p=problem: solve(p, solver="highs", time_limit_s=600), repeats)
        stock_total, stock = _timed(lambda p=problem: solve(p, solver="highs_pulp", time_limit_s=600), repeats)
        _, (_, direct_objective, binding) = _timed(lambda p=problem: solve_direct(p), 1)
        direct = min(solve_direct(problem)[0] for _ in range(repeats))
        agree = all(math.isclose(objective, direct_objective, rel_tol=1e-6, abs_tol=1e-6)
                    for objective in (result.objective_total_eur, stock.objective_total_eur))
        ok &= agree
        n_vars = sum(len(s.slots) for s in problem.sessions) + k
        print(f"{k:>6} {n_vars:>8} {result.build_seconds:>8.3f} {result.solve_seconds:>8.3f} {total:>8.3f} "
              f"{result.objective_total_eur:>14.4f} {stock_total:>8.3f} {direct:>9.3f} {total / direct:>6.2f} "
              f"{binding:>7} {'yes' if agree else f'NO ({direct_objective:.6f})'}", flush=True)
    print(f"\nstorage at negative prices\n{'K':>6} {'binaries':>8} {'MILP s':>8} {'every':>8} {'every s':>8} "
          f"{'LP s':>8} {'ratio':>6} agree")
    for k in [k for k in sizes if k <= 1000]:
        problem = with_storage(make_problem(k))
        floor = with_storage(make_problem(k), dip_eur_per_mwh=0.0)
        milp_s, milp = _timed(lambda p=problem: solve(p, solver="highs", time_limit_s=600), 3)
        every_s, every = _timed(lambda p=problem: solve(p, solver="highs", time_limit_s=600, one_way="every_slot"), 3)
        lp_s, lp = _timed(lambda p=floor: solve(p, solver="highs", time_limit_s=600), 3)
        agree = math.isclose(milp.objective_total_eur, every.objective_total_eur, rel_tol=1e-6, abs_tol=1e-6)
        ok &= agree and lp.binaries == 0
        print(f"{k:>6} {milp.binaries:>8} {milp_s:>8.3f} {every.binaries:>8} {every_s:>8.3f} {lp_s:>8.3f} "
              f"{milp_s / lp_s:>6.2f} {'yes' if agree else 'NO'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main([int(a) for a in sys.argv[1:]] or [10, 100, 1000, 5000]))
