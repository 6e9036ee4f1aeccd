"""The EV-charging LP in PuLP, built with the fast idioms, solved by HiGHS (highspy) or CBC.

    min  Σ_t dt·(x_t·net_t + (price_t − x_t)·import_t)  +  penalty·Σ_k unserved_k        (bill + penalty)
         + ε·Σ_{k,t} t·dt·p[k,t]  +  θ·Σ dt·(charge + discharge)                            (tie-breaks)
    s.t. Σ_t dt·η_k·p[k,t] + unserved_k = E_k             (V2G: SoC at departure + unserved_k ≥ target)
         floor_t ≤ flex_t := Σ flexible power_t ≤ site_limit_t   (EVs, V2G and batteries; discharge negative)
         import_t ≥ net_t := flex_t + inflexible_t − pv_t,  import_t ≥ 0
         0 ≤ p[k,t] ≤ min(charge point, EV)                 (a variable only inside the plug-in window)
         soc_t = soc_{t-1} + dt·(η·charge_t − discharge_t/η), soc_min ≤ soc_t ≤ soc_max  (batteries, V2G)
         charge_t ≤ C·y_t, discharge_t ≤ D·(1 − y_t), y_t binary       (storage slots where one-way is needed)

x_t = min(export price, price) is what export earns, so the first term is the site's grid bill (see
problem.py). ``import_t`` is a column only where the site can export (net_t < 0 possible) and x_t < price_t;
elsewhere net_t is priced linearly. The export floor is a row only where storage can discharge.
The objective is kept in milli-euros (EUR/MWh × kWh) so that the tie-breaks stay far above the solver's
tolerances; the result reports bill, penalty and tie-breaks separately, in EUR.

A storage device must never charge and discharge in one slot: the schedule carries one net power per device and
slot, and a simultaneous flow would make the LP's SoC differ from the one that net power gives. Doing both burns
energy in the losses, which pays only by making room for energy that storage can then take at a negative price
(flexible power paid to consume) in that slot or a later one: directly, or by absorbing another device's
discharge that the export limit would refuse, so that the other device makes room. With no negative price ahead,
more energy in store is never worse (a device can simply charge less later). So a binary per device and slot
(charge or discharge, not both) is added only in the slots up to the horizon's last negative (or zero: a free
burn the tie-break may reward) price: the MILP has
the optimum of the problem that forbids simultaneous flows everywhere (tested against it), and a horizon without
negative prices stays an LP. Elsewhere the tie-break θ keeps a burn that pays nothing out of the solution.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pulp

from cariflex_pipeline.scheduling.resolve import ResolvedProblem
from cariflex_pipeline.scheduling.result import (
    ScheduleResult,
    SessionOutcome,
    SolverError,
    SolverTimeLimitError,
)

SolverName = Literal["auto", "highs", "highs_pulp", "cbc"]
# "needed": binaries only up to the last negative price (module docstring); "every_slot": in every storage slot,
# the exact reference "needed" is measured against (same optimum, more binaries)
OneWay = Literal["needed", "every_slot"]

TIE_BREAK = 1e-4  # milli-EUR per kWh and slot index: < 0.01 EUR/MWh over 96 slots
THROUGHPUT = 1e-4  # milli-EUR per kWh through a battery: no simultaneous charge and discharge on ties
SIMULTANEOUS_TOL_KW = 1e-6  # charge and discharge of one device in one slot both above this: no schedule
MIP_REL_GAP = 1e-7  # the MILP's optimum within 1e-7 relative (HiGHS' default 1e-4 would lose up to 0.01 %)


@dataclass
class _Device:
    """Variables of one storage device (battery or V2G session): per slot charge, discharge, SoC."""

    name: str  # prefix of its variables' names
    label: str  # the battery's name or the V2G session's id, for errors
    slots: list[int]
    charge: list[pulp.LpVariable]
    discharge: list[pulp.LpVariable]
    soc: list[pulp.LpVariable]
    charge_kw: float
    discharge_kw: float
    one_way: dict[int, pulp.LpVariable] = field(default_factory=dict)  # slot index -> binary (1: may charge)

    def add_one_way(self, prob: pulp.LpProblem, indices: list[int]) -> dict[str, pulp.LpConstraint]:
        """A binary in each of these slots (indices into `slots`) and its two rows: charge or discharge, not both."""
        rows = {}
        for i in indices:
            y = self.one_way[i] = prob.add_variable(f"{self.name}y{self.slots[i]:04d}", cat=pulp.LpBinary)
            rows[f"{self.name}charge_if{self.slots[i]:04d}"] = pulp.LpConstraint(
                pulp.LpAffineExpression([(self.charge[i], 1.0), (y, -self.charge_kw)]), pulp.LpConstraintLE)
            rows[f"{self.name}discharge_unless{self.slots[i]:04d}"] = pulp.LpConstraint(
                pulp.LpAffineExpression([(self.discharge[i], 1.0), (y, self.discharge_kw)]), pulp.LpConstraintLE,
                rhs=self.discharge_kw)
        return rows

    def flows(self) -> list[tuple[float, float]]:
        """Charge and discharge per slot of the solution; both at once would make the net power lie about the SoC."""
        flows = []
        for t, charge, discharge in zip(self.slots, self.charge, self.discharge, strict=True):
            c, d = _value(charge), _value(discharge)
            if c > SIMULTANEOUS_TOL_KW and d > SIMULTANEOUS_TOL_KW:
                raise SolverError(f"{self.label} slot {t}: the solver charges {c:.6g} kW and discharges {d:.6g} kW "
                                  "at once; no schedule")
            flows.append((c, d))
        return flows

    @property
    def soc_last(self) -> pulp.LpVariable | None:
        return self.soc[-1] if self.soc else None


@dataclass
class BuiltModel:
    prob: pulp.LpProblem
    ev_power: dict[int, dict[int, pulp.LpVariable]]  # session index (plain EVs) -> slot -> power variable
    unserved: list[pulp.LpVariable | None]  # per session
    v2g: dict[int, _Device]  # session index -> device
    batteries: list[_Device]
    penalty: float  # milli-EUR per kWh unserved, as the LP used it (raised to a floor: see notes)
    tie_break: list[tuple[pulp.LpVariable, float]]  # the objective's tie-break terms (milli-EUR)
    notes: list[str] = field(default_factory=list)

    @property
    def storage(self) -> list[_Device]:
        return [*self.v2g.values(), *self.batteries]


def build_model(problem: ResolvedProblem, one_way: OneWay = "needed") -> BuiltModel:
    """Build the model: each constraint once as an LpAffineExpression, all added with prob.extend."""
    n, dt = problem.n_slots, problem.dt_h
    prices = problem.price_eur_per_mwh.tolist()
    bill = _bill(problem)
    notes: list[str] = []
    min_eff = min([s.efficiency for s in problem.sessions] or [1.0])
    penalty = problem.unserved_penalty_eur_per_kwh * 1000.0
    floor = 10.0 * max(max(prices), 0.0) / min_eff + 1.0
    if penalty < floor:
        notes.append(f"unserved penalty raised to {floor / 1000:.4f} EUR/kWh (10x the dearest kWh)")
        penalty = floor

    prob = pulp.LpProblem("ev_charging")  # PuLP minimizes by default
    objective: list[tuple[pulp.LpVariable, float]] = []
    tie_break: list[tuple[pulp.LpVariable, float]] = []
    costs = _Costs(bill, objective, tie_break)
    site_terms: list[list[tuple[pulp.LpVariable, float]]] = [[] for _ in range(n)]
    constraints: dict[str, pulp.LpConstraint] = {}
    ev_power: dict[int, dict[int, pulp.LpVariable]] = {}
    unserved: list[pulp.LpVariable | None] = []
    v2g: dict[int, _Device] = {}

    for k, session in enumerate(problem.sessions):
        slots = list(session.slots)
        if not session.v2g and session.energy_kwh <= 0:  # nothing needed: no power, even where paid to take it
            unserved.append(None)
            continue
        u = prob.add_variable(f"u{k:06d}", 0, session.energy_kwh)
        unserved.append(u)
        objective.append((u, penalty))
        if session.v2g:  # always a target row, even at a gain of 0: the car may not leave emptier than it came
            device = v2g[k] = _storage(
                prob, f"v{k:06d}", session.id, slots, session.max_charge_kw, session.max_discharge_kw,
                session.efficiency, session.efficiency, session.soc_initial_kwh, session.soc_min_kwh,
                session.soc_max_kwh, dt, costs, site_terms, constraints)
            if device.soc_last is None:  # no whole slot inside the horizon: what it wants is unserved
                terms, rhs = [(u, 1.0)], session.energy_kwh
            else:
                terms, rhs = [(device.soc_last, 1.0), (u, 1.0)], session.soc_initial_kwh + session.energy_kwh
            constraints[f"target_{k}"] = pulp.LpConstraint(pulp.LpAffineExpression(terms), pulp.LpConstraintGE,
                                                           rhs=rhs)
            continue
        powers = ev_power[k] = {t: prob.add_variable(f"p{k:06d}_{t:04d}", 0, session.max_charge_kw) for t in slots}
        terms = [(p, dt * session.efficiency) for p in powers.values()]
        terms.append((u, 1.0))
        constraints[f"energy_{k}"] = pulp.LpConstraint(
            pulp.LpAffineExpression(terms), pulp.LpConstraintEQ, rhs=session.energy_kwh)
        for t, p in powers.items():
            objective.append((p, dt * (bill.flex_price[t] + TIE_BREAK * t)))
            tie_break.append((p, dt * TIE_BREAK * t))
            site_terms[t].append((p, 1.0))

    batteries = [
        _storage(prob, f"b{i:03d}", b.name, list(range(n)), b.max_charge_kw, b.max_discharge_kw,
                 math.sqrt(b.round_trip_efficiency), math.sqrt(b.round_trip_efficiency), b.initial_soc_kwh,
                 b.soc_min_kwh, b.capacity_kwh if b.soc_max_kwh is None else b.soc_max_kwh, dt, costs,
                 site_terms, constraints,
                 final_min=b.initial_soc_kwh if b.final_soc_min_kwh is None else b.final_soc_min_kwh)
        for i, b in enumerate(problem.batteries)
    ]

    _site_rows(prob, problem, bill, site_terms, objective, constraints)
    # a consumption price of 0 counts too: a burn there costs nothing, and the tie-break (earlier charging) can even
    # reward it (found by the verifier's property test)
    negative = [t for t, price in enumerate(bill.flex_price)
                if price < 0 or problem.price_eur_per_mwh[t] <= 0]
    for device in [*v2g.values(), *batteries]:
        # up to the horizon's last negative price, not the device's: a burn in one device can absorb another's
        # discharge (the export limit refusing it), which makes room in that other one after the first has left
        last = (negative[-1] if negative else -1) if one_way == "needed" else math.inf
        constraints.update(device.add_one_way(prob, [i for i, t in enumerate(device.slots) if t <= last]))
    prob.setObjective(pulp.LpAffineExpression(objective, constant=bill.constant))
    prob.extend(constraints)
    return BuiltModel(prob, ev_power, unserved, v2g, batteries, penalty, tie_break, notes)


@dataclass
class _Bill:
    """The site's grid bill in LP terms, per slot: a price on the flexible power, and an import column if needed."""

    flex_price: list[float]  # EUR/MWh on each kW of flexible power (charge +, discharge −)
    import_price: list[float]  # EUR/MWh on the slot's import column; 0: the slot has none
    constant: float  # milli-EUR: the base load's part of the bill


def _bill(problem: ResolvedProblem) -> _Bill:
    """x·net + (price − x)·max(0, net), with max(0, net) = net where the site cannot export in the slot."""
    n, dt = problem.n_slots, problem.dt_h
    lowest = np.zeros(n)  # the flexible power with every storage device discharging at full power
    for session in problem.sessions:
        lowest[session.first:session.end] -= session.max_discharge_kw
    for battery in problem.batteries:
        lowest -= battery.max_discharge_kw
    lowest = np.maximum(lowest, problem.site_floor_kw)
    prices, export_value = problem.price_eur_per_mwh, problem.export_value_eur_per_mwh()
    kinked = (prices > export_value) & (problem.base_load_kw + lowest < 0)
    flex_price = np.where(kinked, export_value, prices)
    return _Bill(flex_price=flex_price.tolist(), import_price=np.where(kinked, prices - export_value, 0.0).tolist(),
                 constant=float(dt * np.dot(flex_price, problem.base_load_kw)))


def _site_rows(prob: pulp.LpProblem, problem: ResolvedProblem, bill: _Bill,
               site_terms: list[list[tuple[pulp.LpVariable, float]]], objective: list[tuple[pulp.LpVariable, float]],
               constraints: dict[str, pulp.LpConstraint]) -> None:
    """Per slot: the import limit, the export floor where storage can discharge, the import column if needed."""
    limits, floors = problem.site_limit_kw.tolist(), problem.site_floor_kw.tolist()
    base = problem.base_load_kw.tolist()
    for t, terms in enumerate(site_terms):
        if not terms:
            continue
        constraints[f"site_{t:04d}"] = pulp.LpConstraint(
            pulp.LpAffineExpression(terms), pulp.LpConstraintLE, rhs=limits[t])
        if sum(coefficient * var.upBound for var, coefficient in terms if coefficient < 0) < floors[t]:
            constraints[f"export_{t:04d}"] = pulp.LpConstraint(
                pulp.LpAffineExpression(terms), pulp.LpConstraintGE, rhs=floors[t])
        if bill.import_price[t] > 0:
            grid = prob.add_variable(f"g{t:04d}", 0, None)
            constraints[f"import_{t:04d}"] = pulp.LpConstraint(
                pulp.LpAffineExpression([(grid, 1.0), *((var, -c) for var, c in terms)]), pulp.LpConstraintGE,
                rhs=base[t])
            objective.append((grid, problem.dt_h * bill.import_price[t]))


@dataclass
class _Costs:
    """Where a storage device's objective terms go."""

    bill: _Bill
    objective: list[tuple[pulp.LpVariable, float]]
    tie_break: list[tuple[pulp.LpVariable, float]]


def _storage(prob: pulp.LpProblem, prefix: str, label: str, slots: list[int], charge_kw: float, discharge_kw: float,
             eta_c: float, eta_d: float, soc0: float, soc_min: float, soc_max: float, dt: float, costs: _Costs,
             site_terms: list[list[tuple[pulp.LpVariable, float]]], constraints: dict[str, pulp.LpConstraint],
             final_min: float | None = None) -> _Device:
    """Charge/discharge/SoC columns and the SoC balance rows of one storage device over `slots`."""
    charge = [prob.add_variable(f"{prefix}c{t:04d}", 0, charge_kw) for t in slots]
    discharge = [prob.add_variable(f"{prefix}d{t:04d}", 0, discharge_kw) for t in slots]
    soc = [prob.add_variable(f"{prefix}s{t:04d}", soc_min, soc_max) for t in slots]  # a capacity: always finite
    for i, t in enumerate(slots):
        terms = [(soc[i], 1.0), (charge[i], -dt * eta_c), (discharge[i], dt / eta_d)]
        if i > 0:
            terms.append((soc[i - 1], -1.0))
        constraints[f"{prefix}soc{t:04d}"] = pulp.LpConstraint(
            pulp.LpAffineExpression(terms), pulp.LpConstraintEQ, rhs=soc0 if i == 0 else 0.0)
        price = costs.bill.flex_price[t]
        costs.objective += [(charge[i], dt * (price + THROUGHPUT)), (discharge[i], dt * (-price + THROUGHPUT))]
        costs.tie_break += [(charge[i], dt * THROUGHPUT), (discharge[i], dt * THROUGHPUT)]
        site_terms[t] += [(charge[i], 1.0), (discharge[i], -1.0)]
    if final_min is not None:  # batteries: they span the whole horizon, so `soc` is never empty
        constraints[f"{prefix}final"] = pulp.LpConstraint(
            pulp.LpAffineExpression([(soc[-1], 1.0)]), pulp.LpConstraintGE, rhs=final_min)
    return _Device(prefix, label, slots, charge, discharge, soc, charge_kw, discharge_kw)


def _solver(name: SolverName, time_limit_s: float | None, msg: bool) -> tuple[str, pulp.LpSolver]:
    """HiGHS through the one-call bridge by default; ``highs_pulp`` is PuLP's stock HiGHS class; CBC last.

    The HiGHS thread count is left at its default: HiGHS keeps one thread pool per process, and a solve that asks
    for another count than the pool has fails ("Not Set"), so forcing one would break on any other HiGHS user.
    """
    if name == "highs_pulp":
        return "highs", pulp.HiGHS(msg=msg, timeLimit=time_limit_s, gapRel=MIP_REL_GAP)
    if name in ("auto", "highs"):
        try:
            from cariflex_pipeline.scheduling.highs_bridge import FastHiGHS
        except ImportError:
            if name == "highs":
                raise SolverError("HiGHS (highspy) is not available") from None
        else:
            return "highs", FastHiGHS(msg=msg, timeLimit=time_limit_s, gapRel=MIP_REL_GAP)
    with warnings.catch_warnings():  # PuLP 3.3 deprecates the bundled CBC for 4.0; it is the one we have
        warnings.simplefilter("ignore", DeprecationWarning)
        return "cbc", pulp.PULP_CBC_CMD(msg=msg, timeLimit=time_limit_s, gapRel=MIP_REL_GAP)


def _check_status(prob: pulp.LpProblem, solver: str, time_limit_s: float | None) -> None:
    if solver == "highs":
        import highspy

        status = prob.solverModel.getModelStatus()
        if status == highspy.HighsModelStatus.kTimeLimit:
            raise SolverTimeLimitError(f"HiGHS hit the time limit of {time_limit_s} s; no schedule")
        if status != highspy.HighsModelStatus.kOptimal:
            raise SolverError(f"HiGHS ended with {prob.solverModel.modelStatusToString(status)}; no schedule")
        return
    if prob.status != pulp.LpStatusOptimal or prob.sol_status != pulp.LpSolutionOptimal:
        detail = f"{pulp.LpStatus.get(prob.status)} / solution status {prob.sol_status}"
        if prob.sol_status in (pulp.LpSolutionIntegerFeasible, pulp.LpSolutionNoSolutionFound) and time_limit_s:
            raise SolverTimeLimitError(f"CBC stopped ({detail}) within the time limit of {time_limit_s} s; "
                                       "no schedule")
        raise SolverError(f"CBC ended with {detail}; no schedule")


def solve(problem: ResolvedProblem, solver: SolverName = "auto", time_limit_s: float | None = 60.0,
          msg: bool = False, one_way: OneWay = "needed") -> ScheduleResult:
    """Build and solve the model; raise SolverError / SolverTimeLimitError rather than return a non-optimal plan."""
    started = time.perf_counter()
    built = build_model(problem, one_way)
    built_at = time.perf_counter()
    name = solve_built(built, solver, time_limit_s, msg)
    return _extract(problem, built, name, built_at - started, time.perf_counter() - built_at)


def solve_built(built: BuiltModel, solver: SolverName = "auto", time_limit_s: float | None = 60.0,
                msg: bool = False) -> str:
    """Solve a built model in place with the project's solver settings (MIP_REL_GAP) and return the solver's
    name; SolverError / SolverTimeLimitError as `solve`."""
    name, backend = _solver(solver, time_limit_s, msg)
    try:
        built.prob.solve(backend)
    except pulp.PulpSolverError as error:
        raise SolverError(f"{name} failed: {error}; no schedule") from error
    _check_status(built.prob, name, time_limit_s)
    return name


def _value(var: pulp.LpVariable | None) -> float:
    if var is None:
        return 0.0
    value = var.varValue or 0.0
    return 0.0 if abs(value) < 1e-9 else float(value)


def _extract(problem: ResolvedProblem, built: BuiltModel, solver: str, build_s: float,
             solve_s: float) -> ScheduleResult:
    n, dt = problem.n_slots, problem.dt_h
    power = {point: [0.0] * n for point in problem.charge_points}
    outcomes = []
    for k, session in enumerate(problem.sessions):
        series = power[session.charge_point]  # resolve gives every session's charge point a series
        if session.v2g:
            device = built.v2g[k]
            net = 0.0
            for t, (c, d) in zip(device.slots, device.flows(), strict=True):
                series[t] = c - d
                net += dt * (session.efficiency * c - d / session.efficiency)
            delivered = net
        else:
            delivered = 0.0
            for t, var in built.ev_power.get(k, {}).items():
                series[t] = _value(var)
                delivered += dt * session.efficiency * series[t]
        outcomes.append(SessionOutcome(session.id, session.charge_point, session.energy_kwh, delivered,
                                       _value(built.unserved[k])))
    battery_power = {}
    for spec, device in zip(problem.batteries, built.batteries, strict=True):
        battery_power[spec.name] = [c - d for c, d in device.flows()]
    # milli-EUR -> EUR; the bill is what remains of the objective once penalty and tie-breaks are taken out
    objective = pulp.value(built.prob.objective) or 0.0
    penalty = built.penalty * sum(outcome.unserved_kwh for outcome in outcomes)
    tie_break = sum(coefficient * _value(var) for var, coefficient in built.tie_break)
    return ScheduleResult(
        start=problem.start, resolution=problem.resolution, power_kw=power, battery_power_kw=battery_power,
        sessions=outcomes, site_limit_kw=problem.site_limit_kw.tolist(),
        bill_eur=(objective - penalty - tie_break) / 1000.0, unserved_penalty_eur=penalty / 1000.0,
        tie_break_eur=tie_break / 1000.0, status="optimal", solver=solver, build_seconds=build_s,
        solve_seconds=solve_s, binaries=sum(len(device.one_way) for device in built.storage),
        notes=built.notes,
    )
