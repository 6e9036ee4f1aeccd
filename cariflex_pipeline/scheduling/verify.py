"""A verifier that knows nothing of the LP: it replays a schedule against the problem and lists every violation.

It recomputes energy and state of charge from the power series alone (a V2G or battery series is net power:
charge > 0 with the charge efficiency, discharge < 0 with the discharge efficiency), so a wrong model, a solver
tolerance gone astray or a hand-edited schedule all show up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cariflex_pipeline.scheduling.resolve import ResolvedProblem, ResolvedSession
from cariflex_pipeline.scheduling.result import ScheduleResult

POWER_TOL_KW = 1e-5
ENERGY_TOL_KWH = 1e-4


@dataclass(frozen=True)
class Violation:
    kind: str  # shape, window, power_limit, energy, unserved, soc, site_limit, export_limit, unknown_device
    subject: str  # charge point, session, battery or "site"
    slot: int | None
    detail: str

    def __str__(self) -> str:
        where = "" if self.slot is None else f" slot {self.slot}"
        return f"{self.kind}: {self.subject}{where}: {self.detail}"


def _tol(limit: float) -> float:
    return POWER_TOL_KW + 1e-7 * abs(limit)


def verify(problem: ResolvedProblem, result: ScheduleResult) -> list[Violation]:
    """Every violation of the problem's limits, windows, energy accounting and site limit by `result`."""
    n, dt = problem.n_slots, problem.dt_h
    found: list[Violation] = []
    series: dict[str, np.ndarray] = {}
    for name, values in [*result.power_kw.items(), *result.battery_power_kw.items()]:
        array = np.asarray(values, dtype=float)
        if array.shape != (n,) or not np.isfinite(array).all():
            found.append(Violation("shape", name, None, f"expected {n} finite values, got {len(values)}"))
            array = np.zeros(n)
        series[name] = array
    known = set(problem.charge_points) | {s.charge_point for s in problem.sessions}
    for name in result.power_kw:
        if name not in known:
            found.append(Violation("unknown_device", name, None, "not a charge point of the problem"))
    batteries = {battery.name for battery in problem.batteries}
    for name in result.battery_power_kw:
        if name not in batteries:
            found.append(Violation("unknown_device", name, None, "not a battery of the problem"))

    sessions_at: dict[str, list[ResolvedSession]] = {}
    for session in problem.sessions:
        sessions_at.setdefault(session.charge_point, []).append(session)
    for point, power in series.items():
        if point not in result.power_kw:
            continue
        owner = {t: s for s in sessions_at.get(point, []) for t in s.slots}
        for t in range(n):
            session = owner.get(t)
            value = power[t]
            if session is None:
                if abs(value) > POWER_TOL_KW:
                    found.append(Violation("window", point, t, f"{value:.6g} kW with no EV plugged in"))
                continue
            upper, lower = session.max_charge_kw, -session.max_discharge_kw
            if value > upper + _tol(upper) or value < lower - _tol(lower):
                found.append(Violation("power_limit", point, t,
                                       f"{value:.6g} kW outside [{lower:g}, {upper:g}] for {session.id!r}"))

    outcomes = {o.id: o for o in result.sessions}
    for session in problem.sessions:
        power = series.get(session.charge_point, np.zeros(n))
        window = power[session.first:session.end]
        outcome = outcomes.get(session.id)
        if session.v2g:
            steps = dt * (session.efficiency * np.maximum(window, 0) - np.maximum(-window, 0) / session.efficiency)
            soc = session.soc_initial_kwh + np.cumsum(steps)
            found += _soc_violations(session.id, soc, session.soc_min_kwh, session.soc_max_kwh, session.first)
            delivered = float(steps.sum())
            shortfall = max(0.0, session.energy_kwh - delivered)
        else:
            delivered = float(dt * session.efficiency * window.sum())
            shortfall = session.energy_kwh - delivered
            if delivered > session.energy_kwh + ENERGY_TOL_KWH:
                found.append(Violation("energy", session.id, None,
                                       f"{delivered:.6g} kWh delivered, only {session.energy_kwh:g} needed"))
        if outcome is None:
            found.append(Violation("unserved", session.id, None, "session missing from the result"))
            continue
        if abs(outcome.energy_delivered_kwh - delivered) > ENERGY_TOL_KWH:
            found.append(Violation("energy", session.id, None,
                                   f"reports {outcome.energy_delivered_kwh:.6g} kWh delivered, the power "
                                   f"series gives {delivered:.6g} kWh"))
        if abs(outcome.unserved_kwh - max(shortfall, 0.0)) > ENERGY_TOL_KWH:
            found.append(Violation("unserved", session.id, None,
                                   f"reports {outcome.unserved_kwh:.6g} kWh unserved, the power series leaves "
                                   f"{max(shortfall, 0.0):.6g} kWh"))

    for battery in problem.batteries:
        power = series.get(battery.name)
        if power is None:
            found.append(Violation("shape", battery.name, None, "battery missing from the result"))
            continue
        eta = math.sqrt(battery.round_trip_efficiency)
        for t, value in enumerate(power):
            if value > battery.max_charge_kw + _tol(battery.max_charge_kw) or \
                    value < -battery.max_discharge_kw - _tol(battery.max_discharge_kw):
                found.append(Violation("power_limit", battery.name, t, f"{value:.6g} kW out of bounds"))
        soc = battery.initial_soc_kwh + np.cumsum(dt * (eta * np.maximum(power, 0) - np.maximum(-power, 0) / eta))
        soc_max = battery.capacity_kwh if battery.soc_max_kwh is None else battery.soc_max_kwh
        found += _soc_violations(battery.name, soc, battery.soc_min_kwh, soc_max, 0)
        final = battery.initial_soc_kwh if battery.final_soc_min_kwh is None else battery.final_soc_min_kwh
        if len(soc) and soc[-1] < final - ENERGY_TOL_KWH:
            found.append(Violation("soc", battery.name, n - 1, f"ends at {soc[-1]:.6g} kWh < {final:g} kWh"))

    total = np.zeros(n)
    for values in series.values():
        total += values
    for t in range(n):
        limit, floor = problem.site_limit_kw[t], problem.site_floor_kw[t]
        if total[t] > limit + _tol(limit):
            found.append(Violation("site_limit", "site", t, f"{total[t]:.6g} kW > limit {limit:.6g} kW"))
        if total[t] < floor - _tol(floor):
            found.append(Violation("export_limit", "site", t, f"{total[t]:.6g} kW < export floor {floor:.6g} kW"))
    return found


def _soc_violations(name: str, soc: np.ndarray, low: float, high: float, first: int) -> list[Violation]:
    found = []
    for i, value in enumerate(soc):
        if value < low - ENERGY_TOL_KWH or value > high + ENERGY_TOL_KWH:
            found.append(Violation("soc", name, first + i, f"{value:.6g} kWh outside [{low:g}, {high:g}]"))
    return found
