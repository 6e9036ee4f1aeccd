"""A verifier that knows nothing of the LP: it replays a schedule against the problem and lists every violation.

It recomputes energy and state of charge from the power series alone (a V2G or battery series is net power:
charge > 0 with the charge efficiency, discharge < 0 with the discharge efficiency), so a wrong model, a solver
tolerance gone astray or a hand-edited schedule all show up.

Tolerances: a power limit L holds up to POWER_TOL_KW + 1e-7 × |L| beyond it (a slot outside every window up to
POWER_TOL_KW); an energy or state of charge up to ENERGY_TOL_KWH. A value that is not a finite number never holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cariflex_pipeline.scheduling.problem import BatterySpec
from cariflex_pipeline.scheduling.resolve import ResolvedProblem, ResolvedSession
from cariflex_pipeline.scheduling.result import ScheduleResult, SessionOutcome

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


def verify(problem: ResolvedProblem, result: ScheduleResult) -> list[Violation]:
    """Every violation of the problem's limits, windows, energy accounting and site limit by `result`."""
    found: list[Violation] = []
    # charge points and batteries apart: a battery named like a charge point must not hide either from the site
    power = _checked_series(result.power_kw, problem.n_slots, found)
    battery_power = _checked_series(result.battery_power_kw, problem.n_slots, found)
    found += _device_violations(problem, result)
    found += _charge_point_violations(problem, power)
    found += _session_violations(problem, power, {o.id: o for o in result.sessions})
    found += _battery_violations(problem, battery_power)
    found += _site_violations(problem, [*power.values(), *battery_power.values()])
    return found


def _tol(limit: float) -> float:
    return POWER_TOL_KW + 1e-7 * abs(limit)


def _beyond(value: float, low: float, high: float, tolerance: float) -> bool:
    # written as "not within" so that a NaN is beyond every bound
    return not low - tolerance <= value <= high + tolerance


def _checked_series(given: Mapping[str, Sequence[float]], n: int, found: list[Violation]) -> dict[str, np.ndarray]:
    """Each device's power as n floats; a series of the wrong length, or not all finite numbers, counts as 0 kW."""
    series = {}
    for name, values in given.items():
        try:
            # no conversion: "7.4", a string, is not a power, and dispatch would not get a number
            array = np.asarray(values)
        except ValueError:  # ragged nesting: a hand-edited schedule
            array = np.asarray(None)
        if array.shape != (n,) or not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
            found.append(Violation("shape", name, None, f"expected {n} finite values, got {values!r:.80}"))
            array = np.zeros(n)
        series[name] = array.astype(float)
    return series


def _device_violations(problem: ResolvedProblem, result: ScheduleResult) -> Iterator[Violation]:
    """Devices the result has and the problem does not (their power counts against the site, unchecked otherwise),
    and charge points of the problem without a series (nothing would tell that station what to do)."""
    known = set(problem.charge_points) | {s.charge_point for s in problem.sessions}
    for name in result.power_kw:
        if name not in known:
            yield Violation("unknown_device", name, None, "not a charge point of the problem")
    for name in sorted(known - set(result.power_kw)):
        yield Violation("shape", name, None, "charge point missing from the result")
    batteries = {battery.name for battery in problem.batteries}
    for name in result.battery_power_kw:
        if name not in batteries:
            yield Violation("unknown_device", name, None, "not a battery of the problem")


def _charge_point_violations(problem: ResolvedProblem, power: Mapping[str, np.ndarray]) -> Iterator[Violation]:
    """Per charge point and slot: no power outside every session's window, the session's limits inside it."""
    sessions_at: dict[str, list[ResolvedSession]] = {}
    for session in problem.sessions:
        sessions_at.setdefault(session.charge_point, []).append(session)
    for point, series in power.items():
        owner = {t: s for s in sessions_at.get(point, []) for t in s.slots}
        for t, value in enumerate(series):
            session = owner.get(t)
            if session is None:
                if _beyond(value, 0.0, 0.0, POWER_TOL_KW):
                    yield Violation("window", point, t, f"{value:.6g} kW with no EV plugged in")
                continue
            # 0.0 - x, not -x: a plain session's lower limit reads 0, not -0, in the message
            upper, lower = session.max_charge_kw, 0.0 - session.max_discharge_kw
            if value > upper + _tol(upper) or value < lower - _tol(lower):
                yield Violation("power_limit", point, t,
                                f"{value:.6g} kW outside [{lower:g}, {upper:g}] for {session.id!r}")


def _session_violations(problem: ResolvedProblem, power: Mapping[str, np.ndarray],
                        outcomes: Mapping[str, SessionOutcome]) -> Iterator[Violation]:
    """Per session, from its charge point's series: SoC bounds (V2G), energy beyond the need, and the reported
    delivered and unserved energy."""
    dt = problem.dt_h
    for session in problem.sessions:
        window = power.get(session.charge_point, np.zeros(problem.n_slots))[session.first:session.end]
        if session.v2g:
            steps = dt * (session.efficiency * np.maximum(window, 0) - np.maximum(-window, 0) / session.efficiency)
            yield from _soc_violations(session.id, session.soc_initial_kwh + np.cumsum(steps), session.soc_min_kwh,
                                       session.soc_max_kwh, session.first)
            delivered = float(steps.sum())  # a V2G session may give back more than it takes: no upper bound here
        else:
            delivered = float(dt * session.efficiency * window.sum())
            if delivered > session.energy_kwh + ENERGY_TOL_KWH:
                yield Violation("energy", session.id, None,
                                f"{delivered:.6g} kWh delivered, only {session.energy_kwh:g} needed")
        outcome = outcomes.get(session.id)
        if outcome is None:
            yield Violation("unserved", session.id, None, "session missing from the result")
            continue
        unserved = max(session.energy_kwh - delivered, 0.0)
        if _beyond(outcome.energy_delivered_kwh, delivered, delivered, ENERGY_TOL_KWH):
            yield Violation("energy", session.id, None,
                            f"reports {outcome.energy_delivered_kwh:.6g} kWh delivered, the power series gives "
                            f"{delivered:.6g} kWh")
        if _beyond(outcome.unserved_kwh, unserved, unserved, ENERGY_TOL_KWH):
            yield Violation("unserved", session.id, None,
                            f"reports {outcome.unserved_kwh:.6g} kWh unserved, the power series leaves "
                            f"{unserved:.6g} kWh")


def _battery_violations(problem: ResolvedProblem, battery_power: Mapping[str, np.ndarray]) -> Iterator[Violation]:
    """Per stationary battery: present, within its power limits, its SoC within bounds and high enough at the end."""
    for battery in problem.batteries:
        power = battery_power.get(battery.name)
        if power is None:
            yield Violation("shape", battery.name, None, "battery missing from the result")
            continue
        upper, lower = battery.max_charge_kw, -battery.max_discharge_kw
        for t, value in enumerate(power):
            if value > upper + _tol(upper) or value < lower - _tol(lower):
                yield Violation("power_limit", battery.name, t, f"{value:.6g} kW outside [{lower:g}, {upper:g}]")
        soc = _battery_soc(battery, power, problem.dt_h)
        soc_max = battery.capacity_kwh if battery.soc_max_kwh is None else battery.soc_max_kwh
        yield from _soc_violations(battery.name, soc, battery.soc_min_kwh, soc_max, 0)
        final = battery.initial_soc_kwh if battery.final_soc_min_kwh is None else battery.final_soc_min_kwh
        if len(soc) and soc[-1] < final - ENERGY_TOL_KWH:
            yield Violation("soc", battery.name, len(soc) - 1, f"ends at {soc[-1]:.6g} kWh < {final:g} kWh")


def _battery_soc(battery: BatterySpec, power: np.ndarray, dt_h: float) -> np.ndarray:
    """The SoC at the end of each slot; the round-trip losses are split evenly between charge and discharge."""
    eta = math.sqrt(battery.round_trip_efficiency)
    return battery.initial_soc_kwh + np.cumsum(dt_h * (eta * np.maximum(power, 0) - np.maximum(-power, 0) / eta))


def _site_violations(problem: ResolvedProblem, series: Sequence[np.ndarray]) -> Iterator[Violation]:
    """Per slot, the total of every series (unknown devices too) within [export floor, site limit]."""
    total = np.sum([np.zeros(problem.n_slots), *series], axis=0)  # the zeros: a result with no device at all
    for t, (value, limit, floor) in enumerate(zip(total, problem.site_limit_kw, problem.site_floor_kw, strict=True)):
        if value > limit + _tol(limit):
            yield Violation("site_limit", "site", t, f"{value:.6g} kW > limit {limit:.6g} kW")
        if value < floor - _tol(floor):
            yield Violation("export_limit", "site", t, f"{value:.6g} kW < export floor {floor:.6g} kW")


def _soc_violations(name: str, soc: np.ndarray, low: float, high: float, first: int) -> Iterator[Violation]:
    for i, value in enumerate(soc):
        if _beyond(value, low, high, ENERGY_TOL_KWH):
            yield Violation("soc", name, first + i, f"{value:.6g} kWh outside [{low:g}, {high:g}]")
