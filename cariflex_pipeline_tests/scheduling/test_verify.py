"""The verifier: silent on the solver's schedules for random problems, loud, at its tolerance, on broken ones."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cariflex_pipeline.scheduling import (
    BatterySpec,
    ResolvedProblem,
    ScheduleResult,
    SessionOutcome,
    build_model,
    resolve,
    solve,
    verify,
)
from cariflex_pipeline.scheduling.model import solve_built
from cariflex_pipeline.scheduling.resolve import ResolvedSession
from cariflex_pipeline.site_model import load_site
from cariflex_pipeline_tests.scheduling.helpers import ev, problem

SITE = load_site()
POINTS = [cp.id for cp in SITE.charge_points]


@st.composite
def problems(draw):
    n = draw(st.integers(2, 16))
    # negative prices happen with a PV surplus
    prices = draw(st.lists(st.floats(-100, 300, allow_nan=False).map(lambda p: round(p, 2)), min_size=n,
                           max_size=n))
    points = draw(st.lists(st.sampled_from(POINTS), max_size=6, unique=True))
    sessions = []
    for i, point in enumerate(points):
        first = draw(st.integers(-2, n - 1))
        end = draw(st.integers(first + 1, n + 2))
        sessions.append(ev(f"ev{i}", point, first, end,
                           energy_needed_kwh=draw(st.floats(0, 60).map(lambda e: round(e, 3))),
                           max_power_kw=draw(st.sampled_from([3.7, 7.4, 11, 22])),
                           efficiency=draw(st.sampled_from([0.85, 0.9, 1.0]))))
    if draw(st.booleans()):
        first = draw(st.integers(0, n - 1))
        sessions.append(ev("car", "v2g_02", first, draw(st.integers(first + 1, n)), battery_capacity_kwh=50,
                           soc_now=draw(st.floats(0.2, 1.0)), soc_target=draw(st.floats(0, 1)), soc_min=0.2,
                           efficiency=0.92))
    batteries = [BatterySpec(name="b", capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5, soc_min_kwh=1,
                             initial_soc_kwh=draw(st.sampled_from([1, 5, 10])), round_trip_efficiency=0.85)
                 ] if draw(st.booleans()) else []
    return problem(
        prices, sessions, batteries=batteries,
        connection_capacity_kw=draw(st.sampled_from([10, 30, 60, 120])),
        load_control_pct=draw(st.lists(st.sampled_from([0, 50, 100]), min_size=n, max_size=n)),
        demand_response_level=draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)),
        inflexible_load_kw=draw(st.lists(st.floats(0, 20).map(lambda x: round(x, 2)), min_size=n, max_size=n)),
        pv_forecast_kw=draw(st.lists(st.sampled_from([0, 5, 40, 150]), min_size=n, max_size=n)),
        export_price_eur_per_mwh=draw(st.lists(st.sampled_from([0, 40, 400]), min_size=n, max_size=n)),
        export_capacity_kw=draw(st.sampled_from([0, 3, 60])),
    )


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# each example of the sharp properties runs the verifier a few hundred times
SHARP = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(problems())
def test_the_solvers_schedules_pass_the_verifier(p):
    resolved = resolve(p, SITE)
    result = solve(resolved, solver="highs")
    assert verify(resolved, result) == []
    for outcome, session in zip(result.sessions, resolved.sessions, strict=True):
        assert outcome.unserved_kwh >= 0 and outcome.unserved_kwh <= session.energy_kwh + 1e-6


@SETTINGS
@given(problems())
def test_no_storage_charges_and_discharges_in_the_same_slot(p):
    # read in the LP itself: the result only carries net power, which would hide a burn
    resolved = resolve(p, SITE)
    built = build_model(resolved)
    solve_built(built, solver="highs")
    for device in [*built.v2g.values(), *built.batteries]:
        for t, charge, discharge in zip(device.slots, device.charge, device.discharge, strict=True):
            assert min(charge.varValue, discharge.varValue) <= 1e-6, (device.name, t)


def test_export_beyond_the_export_capacity_is_caught():
    battery = BatterySpec(name="b", capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5, initial_soc_kwh=5,
                          final_soc_min_kwh=0)
    resolved = resolve(problem([50, 100], [], batteries=[battery], export_capacity_kw=2), SITE)
    result = solve(resolved, solver="highs")
    assert verify(resolved, result) == []
    result.battery_power_kw["b"][1] = -3.0  # SoC and power limits still hold: only the export is wrong
    assert [(v.kind, v.slot) for v in verify(resolved, result)] == [("export_limit", 1)]


def _solved_one_ev(**fields: Any) -> tuple[ResolvedProblem, ScheduleResult]:
    resolved = resolve(problem([50, 100], [ev("a", "CP001", 0, 2, energy_needed_kwh=1)], **fields), SITE)
    return resolved, solve(resolved, solver="highs")


@pytest.mark.parametrize("field, name, expected", [
    ("battery_power_kw", "battery_99", [("unknown_device", "battery_99", None)]),
    ("power_kw", "CP099", [("unknown_device", "CP099", None), ("window", "CP099", 0)]),
])
def test_a_device_the_problem_does_not_have_is_caught(field: str, name: str, expected: list[Any]) -> None:
    # its power would count against the site limit unchecked (no window, SoC or power limit of its own)
    resolved, result = _solved_one_ev()
    getattr(result, field)[name] = [-2.0, 0.0]
    assert [(v.kind, v.subject, v.slot) for v in verify(resolved, result)] == expected


# --- Sharp at the tolerance ------------------------------------------------------------------------------------
# Each property below builds a valid schedule by hand (every limit, window and SoC bound drawn around it, every
# outcome accounted from the power series), then puts one constraint just beyond the verifier's tolerance and
# expects exactly the violations that makes (kind, subject, slot), then just inside it and expects none there.
# It does so at every slot, every charge point and every storage device, so a verifier that is looser at a single
# slot or device fails. A limit is moved to the schedule rather than the schedule to the limit: moving power would
# also change energy, SoC and the site total, and the violation would no longer be one constraint's.

# The tolerances the verifier documents, restated: importing them would let a looser verifier loosen its tests.
POWER_TOL_KW = 1e-5  # plus RELATIVE_TOL × |limit|; outside every window, exactly this
RELATIVE_TOL = 1e-7
ENERGY_TOL_KWH = 1e-4
OVER, UNDER = 1.1, 0.9  # multiples of the tolerance just beyond and just within it
GRID = 100  # powers on a 0.01 kW grid: two that differ, differ by far more than any tolerance
DT_H = 0.25
V2G_POINT = SITE.v2g_chargers[0].name


def power_tol(limit: float) -> float:
    return POWER_TOL_KW + RELATIVE_TOL * abs(limit)


def energy_tol(limit: float) -> float:
    return ENERGY_TOL_KWH


def soc_kwh(initial: float, power: list[float], eta: float) -> np.ndarray:
    """SoC at the end of each slot: charge × eta, discharge / eta (the verifier's documented accounting)."""
    steps = [DT_H * (eta * p if p > 0 else p / eta) for p in power]
    return initial + np.cumsum(steps)


def kw(low: float, high: float) -> st.SearchStrategy[float]:
    return st.integers(round(low * GRID), round(high * GRID)).map(lambda c: c / GRID)


MARGIN = st.sampled_from([0.5, 3.0])  # how far the valid schedule stays from each limit it was drawn around


@functools.cache
def template() -> Case:
    """The solver's answer for an empty horizon: the fields the verifier does not read (cost, timings) come from it.

    Solved on first use, not at import: a HiGHS thread started in a process that later forks (mutmut's) would
    deadlock the child.
    """
    resolved = resolve(problem([0.0], []), SITE)
    return Case(resolved, solve(resolved, solver="highs"))


@dataclass(frozen=True)
class Case:
    problem: ResolvedProblem
    result: ScheduleResult

    def violations(self) -> list[tuple[str, str, int | None]]:
        return [(v.kind, v.subject, v.slot) for v in verify(self.problem, self.result)]

    def with_problem(self, **changes: Any) -> Case:
        return Case(dataclasses.replace(self.problem, **changes), self.result)

    def with_session(self, index: int, **changes: Any) -> Case:
        sessions = list(self.problem.sessions)
        sessions[index] = dataclasses.replace(sessions[index], **changes)
        return self.with_problem(sessions=sessions)

    def with_battery(self, **changes: Any) -> Case:
        return self.with_problem(batteries=[self.problem.batteries[0].model_copy(update=changes)])

    def with_outcome(self, index: int, **changes: Any) -> Case:
        outcomes = list(self.result.sessions)
        outcomes[index] = dataclasses.replace(outcomes[index], **changes)
        return Case(self.problem, dataclasses.replace(self.result, sessions=outcomes))

    def with_power(self, point: str, slot: int, value: float) -> Case:
        series = list(self.result.power_kw[point])
        series[slot] = value
        return Case(self.problem, dataclasses.replace(self.result, power_kw={**self.result.power_kw, point: series}))

    def site_kw(self) -> np.ndarray:
        return np.sum([*self.result.power_kw.values(), *self.result.battery_power_kw.values()], axis=0)


def _window(draw: st.DrawFn, n: int) -> tuple[int, int]:
    first = draw(st.integers(0, n - 1))
    return first, draw(st.integers(first + 1, n))


def _padded(values: list[float], first: int, n: int) -> list[float]:
    return [0.0] * first + values + [0.0] * (n - first - len(values))


@st.composite
def valid_cases(draw: st.DrawFn) -> Case:
    """A valid schedule on every charge point of the site, one V2G car or none, and one battery; it imports at
    least 1 kW in every slot or exports at least 1 kW in every slot, so a relative slack matters in every slot."""
    n = draw(st.integers(2, 16))
    exporting = draw(st.booleans())
    sessions, power, outcomes = [], {}, []
    for i, point in enumerate(POINTS):
        # the first charge point charges all the time: an importing schedule has a site total >= 1 kW everywhere
        first, end = (0, n) if i == 0 else _window(draw, n)
        max_kw = draw(st.sampled_from([3.7, 7.4, 11.0, 22.0]))
        values = [draw(kw(1.0 if i == 0 and not exporting else 0.0, max_kw)) for _ in range(first, end)]
        efficiency = draw(st.sampled_from([0.9, 1.0]))
        delivered = DT_H * efficiency * sum(values)
        unserved = draw(st.sampled_from([0.0, 0.5, 5.0]))
        sessions.append(ResolvedSession(id=f"ev{i}", charge_point=point, first=first, end=end,
                                        energy_kwh=delivered + unserved, max_charge_kw=max_kw, max_discharge_kw=0.0,
                                        efficiency=efficiency))
        outcomes.append(SessionOutcome(f"ev{i}", point, delivered + unserved, delivered, unserved))
        power[point] = _padded(values, first, n)
    if draw(st.booleans()):
        first, end = _window(draw, n)
        values = [draw(kw(-11.0 if exporting else 0.0, 11.0)) for _ in range(first, end)]
        efficiency = draw(st.sampled_from([0.9, 1.0]))
        soc = soc_kwh(0.0, values, efficiency)
        soc_min = draw(kw(0, 5))
        initial = soc_min + draw(MARGIN) - min(0.0, soc.min())
        delivered, needed = float(soc[-1]), draw(kw(0, 20))
        sessions.append(ResolvedSession(id="car", charge_point=V2G_POINT, first=first, end=end, energy_kwh=needed,
                                        max_charge_kw=11.0, max_discharge_kw=11.0, efficiency=efficiency, v2g=True,
                                        soc_initial_kwh=initial, soc_min_kwh=soc_min,
                                        soc_max_kwh=initial + max(0.0, soc.max()) + draw(MARGIN)))
        outcomes.append(SessionOutcome("car", V2G_POINT, needed, delivered, max(needed - delivered, 0.0)))
        power[V2G_POINT] = _padded(values, first, n)
    flexible = np.sum(list(power.values()), axis=0)
    # exporting: the battery turns the site total into an export of 1 to 10 kW in every slot
    battery_kw = [round(-flexible[t] - draw(kw(1, 10)), 2) if exporting else draw(kw(0, 5)) for t in range(n)]
    rte = draw(st.sampled_from([0.81, 1.0]))
    soc = soc_kwh(0.0, battery_kw, math.sqrt(rte))
    soc_min = draw(kw(0, 5))
    initial = soc_min + draw(MARGIN) - min(0.0, soc.min())
    soc_max = initial + max(0.0, soc.max()) + draw(MARGIN)
    battery = BatterySpec(name="b", capacity_kwh=soc_max + draw(kw(0, 1)), soc_min_kwh=soc_min, soc_max_kwh=soc_max,
                          initial_soc_kwh=initial, final_soc_min_kwh=max(soc_min, initial + soc[-1] - draw(MARGIN)),
                          max_charge_kw=max(0.0, *battery_kw) + draw(MARGIN),
                          max_discharge_kw=max(0.0, *(-p for p in battery_kw)) + draw(MARGIN),
                          round_trip_efficiency=rte)
    total = flexible + np.asarray(battery_kw)
    limit = np.maximum(total, 0.0) + draw(MARGIN)
    resolved = dataclasses.replace(
        template().problem, price_eur_per_mwh=np.zeros(n), site_limit_kw=limit, sessions=sessions,
        batteries=[battery], charge_points=list(power), base_load_kw=np.zeros(n),
        site_floor_kw=np.minimum(total, 0.0) - draw(MARGIN), export_price_eur_per_mwh=np.zeros(n))
    result = dataclasses.replace(template().result, power_kw=power, battery_power_kw={"b": battery_kw},
                                 sessions=outcomes, site_limit_kw=limit.tolist())
    case = Case(resolved, result)
    assert case.violations() == []  # the builder's own check: what the properties perturb is valid
    return case


@dataclass(frozen=True)
class Limit:
    """One limit that `values` (at `slots`) must stay below (`upper`) or above, and the case with it moved."""

    kind: str
    subject: str
    slots: list[int | None]
    values: list[float]
    upper: bool
    tolerance: Callable[[float], float]
    moved: Callable[[float], Case]


def _at_slot(case: Case, field: str, t: int) -> Callable[[float], Case]:
    """The case with the per-slot limit `field` moved in slot t only."""
    def moved(at: float) -> Case:
        limits = getattr(case.problem, field).copy()
        limits[t] = at
        return case.with_problem(**{field: limits})
    return moved


def site_limits(case: Case) -> Iterator[Limit]:
    for t, value in enumerate(case.site_kw()):
        yield Limit("site_limit", "site", [t], [value], True, power_tol, _at_slot(case, "site_limit_kw", t))
        yield Limit("export_limit", "site", [t], [value], False, power_tol, _at_slot(case, "site_floor_kw", t))


def charge_point_limits(case: Case) -> Iterator[Limit]:
    for i, session in enumerate(case.problem.sessions):
        slots = list(session.slots)
        values = [case.result.power_kw[session.charge_point][t] for t in slots]
        yield Limit("power_limit", session.charge_point, slots, values, True, power_tol,
                    lambda at, i=i: case.with_session(i, max_charge_kw=at))
        yield Limit("power_limit", session.charge_point, slots, values, False, power_tol,
                    lambda at, i=i: case.with_session(i, max_discharge_kw=-at))


def storage_limits(case: Case) -> Iterator[Limit]:
    battery = case.problem.batteries[0]
    power = case.result.battery_power_kw["b"]
    slots: list[int | None] = list(range(len(power)))
    yield Limit("power_limit", "b", slots, power, True, power_tol, lambda at: case.with_battery(max_charge_kw=at))
    yield Limit("power_limit", "b", slots, power, False, power_tol,
                lambda at: case.with_battery(max_discharge_kw=-at))
    soc = list(soc_kwh(battery.initial_soc_kwh, power, math.sqrt(battery.round_trip_efficiency)))
    yield Limit("soc", "b", slots, soc, True, energy_tol, lambda at: case.with_battery(soc_max_kwh=at))
    yield Limit("soc", "b", slots, soc, False, energy_tol, lambda at: case.with_battery(soc_min_kwh=at))
    yield Limit("soc", "b", [slots[-1]], [soc[-1]], False, energy_tol,
                lambda at: case.with_battery(final_soc_min_kwh=at))
    for i, session in enumerate(case.problem.sessions):
        if session.v2g:
            slots = list(session.slots)
            window = case.result.power_kw[session.charge_point][session.first:session.end]
            soc = list(soc_kwh(session.soc_initial_kwh, window, session.efficiency))
            yield Limit("soc", session.id, slots, soc, True, energy_tol,
                        lambda at, i=i: case.with_session(i, soc_max_kwh=at))
            yield Limit("soc", session.id, slots, soc, False, energy_tol,
                        lambda at, i=i: case.with_session(i, soc_min_kwh=at))


def energy_limits(case: Case) -> Iterator[Limit]:
    """A plain session may not get more than it needs (the report then says 0 kWh unserved, as it should)."""
    for i, (session, outcome) in enumerate(zip(case.problem.sessions, case.result.sessions, strict=True)):
        if not session.v2g:
            yield Limit("energy", session.id, [None], [outcome.energy_delivered_kwh], True, energy_tol,
                        lambda at, i=i: case.with_session(i, energy_kwh=at).with_outcome(i, unserved_kwh=0.0))


@SHARP
@pytest.mark.parametrize("limits", [site_limits, charge_point_limits, storage_limits, energy_limits])
@given(case=valid_cases())
def test_every_limit_is_sharp_at_its_tolerance(limits: Callable[[Case], Iterator[Limit]], case: Case) -> None:
    for limit in limits(case):
        sign = 1.0 if limit.upper else -1.0
        for slot, value in zip(limit.slots, limit.values, strict=True):
            for factor in (OVER, UNDER):
                at = value - sign * factor * limit.tolerance(value)
                expected = [(limit.kind, limit.subject, s) for s, v in zip(limit.slots, limit.values, strict=True)
                            if sign * (v - at) > limit.tolerance(at)]
                # the test's own arithmetic: beyond the tolerance is a violation at this slot, within it is not
                assert ((limit.kind, limit.subject, slot) in expected) == (factor == OVER)
                assert limit.moved(at).violations() == expected, (limit.kind, limit.subject, slot, factor)


@SHARP
@given(case=valid_cases())
def test_power_outside_every_window_is_sharp_at_its_tolerance(case: Case) -> None:
    busy = {(s.charge_point, t) for s in case.problem.sessions for t in s.slots}
    for point in case.result.power_kw:
        for t in range(case.problem.n_slots):
            if (point, t) not in busy:
                # exactly the tolerance still holds ("up to"); 1e-5 and 0 make it exact in floating point
                for sign, factor in itertools.product((1.0, -1.0), (OVER, 1.0, UNDER)):
                    expected = [("window", point, t)] if factor == OVER else []
                    assert case.with_power(point, t, sign * factor * POWER_TOL_KW).violations() == expected


@SHARP
@given(case=valid_cases())
def test_the_reported_energy_is_sharp_at_its_tolerance(case: Case) -> None:
    for i, outcome in enumerate(case.result.sessions):
        for field, kind in (("energy_delivered_kwh", "energy"), ("unserved_kwh", "unserved")):
            for sign, factor in itertools.product((1.0, -1.0), (OVER, UNDER)):
                expected = [(kind, outcome.id, None)] if factor == OVER else []
                wrong = getattr(outcome, field) + sign * factor * ENERGY_TOL_KWH
                assert case.with_outcome(i, **{field: wrong}).violations() == expected, (field, sign, factor)


# --- What the verifier once let through --------------------------------------------------------------------------


@pytest.mark.parametrize("field, kind", [("energy_delivered_kwh", "energy"), ("unserved_kwh", "unserved")])
def test_a_report_that_is_not_a_number_is_caught(field: str, kind: str) -> None:
    # a NaN compares false with everything: "differs by more than the tolerance" was false too
    resolved, result = _solved_one_ev()
    setattr(result.sessions[0], field, math.nan)
    assert [(v.kind, v.subject) for v in verify(resolved, result)] == [(kind, "a")]


def test_a_battery_named_like_a_charge_point_counts_against_the_site_limit() -> None:
    # one dict of series by name kept only the battery's, so the charge point's 7 kW vanished from the site total
    battery = BatterySpec(name="CP001", capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5, initial_soc_kwh=5)
    resolved = resolve(problem([50, 100], [ev("a", "CP001", 0, 2, energy_needed_kwh=1.75)], batteries=[battery],
                               connection_capacity_kw=10), SITE)
    result = solve(resolved, solver="highs")
    result.power_kw["CP001"] = [7.0, 0.0]  # 1.75 kWh, as the outcome says
    result.battery_power_kw["CP001"] = [5.0, -4.5]  # 5 kW × the 0.9 round trip: back where it started
    assert [(v.kind, v.subject, v.slot) for v in verify(resolved, result)] == [("site_limit", "site", 0)]


@pytest.mark.parametrize("point, expected", [
    ("CP002", [("shape", "CP002")]),
    # with an EV on it, the EV's energy is replayed from 0 kW: what the result reports no longer adds up
    ("CP001", [("shape", "CP001"), ("energy", "a"), ("unserved", "a")]),
])
def test_a_charge_point_without_a_series_is_caught(point: str, expected: list[tuple[str, str]]) -> None:
    # the station would get no profile and keep its last one, while the plan counts it at 0 kW
    resolved, result = _solved_one_ev()
    del result.power_kw[point]
    assert [(v.kind, v.subject) for v in verify(resolved, result)] == expected


def test_a_battery_missing_from_the_result_is_caught_and_the_next_one_still_checked() -> None:
    batteries = [BatterySpec(name=name, capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5) for name in "xy"]
    resolved, result = _solved_one_ev(batteries=batteries)
    del result.battery_power_kw["x"]
    result.battery_power_kw["y"] = [6.0, -1.0]  # 6 kW is over its limit; its SoC (0, 1.42, 1.16 kWh) is not
    assert [(v.kind, v.subject, v.slot) for v in verify(resolved, result)] == [
        ("shape", "x", None), ("power_limit", "y", 0)]
    assert str(verify(resolved, result)[0]) == "shape: x: battery missing from the result"


def test_a_battery_out_of_bounds_says_its_limits_and_where_it_ends() -> None:
    # three slots: the last SoC is not also the second one
    battery = BatterySpec(name="b", capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5, initial_soc_kwh=5,
                          round_trip_efficiency=1.0)
    resolved = resolve(problem([50, 100, 100], [], batteries=[battery], export_capacity_kw=10), SITE)
    result = solve(resolved, solver="highs")
    result.battery_power_kw["b"] = [6.0, 0.0, -8.0]  # SoC 6.5, 6.5, 4.5 kWh
    assert [str(v) for v in verify(resolved, result)] == [
        "power_limit: b slot 0: 6 kW outside [-5, 5]",
        "power_limit: b slot 2: -8 kW outside [-5, 5]",
        "soc: b slot 2: ends at 4.5 kWh < 5 kWh",
    ]


@pytest.mark.parametrize("field, name", [("power_kw", "CP002"), ("battery_power_kw", "b")])
@pytest.mark.parametrize("series", [[[1.0], 0.0], ["fast", 0.0], ["1.0", "0.0"], [None, 0.0], [1.0], [1.0, math.inf]])
def test_a_series_that_is_not_one_number_per_slot_is_caught(field: str, name: str, series: list[Any]) -> None:
    battery = BatterySpec(name="b", capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5)
    resolved, result = _solved_one_ev(batteries=[battery])
    getattr(result, field)[name] = series
    assert [(v.kind, v.subject) for v in verify(resolved, result)] == [("shape", name)]


def test_whole_numbers_are_a_power_series_too() -> None:
    resolved, result = _solved_one_ev()
    result.power_kw["CP001"] = [4, 0]  # 1 kWh, as the solver's outcome says
    assert verify(resolved, result) == []


def test_each_violation_says_what_where_and_by_how_much() -> None:
    # the CLI prints these and the blocking asset check shows them: the numbers must be the ones that matter
    battery = BatterySpec(name="b", capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5, soc_min_kwh=4,
                          initial_soc_kwh=5)
    resolved = resolve(problem([50, 100], [ev("a", "CP001", 0, 1, energy_needed_kwh=1),
                                           ev("c", "CP003", 0, 2, energy_needed_kwh=1),
                                           ev("d", "CP004", 0, 2, energy_needed_kwh=1)],
                               batteries=[battery], connection_capacity_kw=10, export_capacity_kw=0), SITE)
    result = solve(resolved, solver="highs")
    # every series set here, so that no number below depends on the solver's choice among equal-cost schedules
    result.power_kw.update({"CP001": [30.0, 1.0], "CP003": [0.0, 0.0], "CP004": [4.0, 0.0]})
    result.battery_power_kw["b"] = [-5.0, -5.0]
    result.power_kw["CP099"] = [0.0, 0.0]
    del result.power_kw["CP002"]
    result.battery_power_kw["x"] = [1.0]
    result.sessions[2].energy_delivered_kwh, result.sessions[2].unserved_kwh = 1.0, 0.5
    del result.sessions[1]  # not the last one: the sessions after it are still checked
    assert [str(v) for v in verify(resolved, result)] == [
        "shape: x: expected 2 finite values, got [1.0]",
        "unknown_device: CP099: not a charge point of the problem",
        "shape: CP002: charge point missing from the result",
        "unknown_device: x: not a battery of the problem",
        "power_limit: CP001 slot 0: 30 kW outside [0, 22] for 'a'",
        "window: CP001 slot 1: 1 kW with no EV plugged in",
        "energy: a: 7.5 kWh delivered, only 1 needed",
        "energy: a: reports 1 kWh delivered, the power series gives 7.5 kWh",
        "unserved: c: session missing from the result",
        "unserved: d: reports 0.5 kWh unserved, the power series leaves 0 kWh",
        "soc: b slot 0: 3.68238 kWh outside [4, 10]",
        "soc: b slot 1: 2.36477 kWh outside [4, 10]",
        "soc: b slot 1: ends at 2.36477 kWh < 5 kWh",
        "site_limit: site slot 0: 29 kW > limit 10 kW",
        "export_limit: site slot 1: -4 kW < export floor 0 kW",
    ]


def test_a_full_battery_does_not_burn_before_a_pv_surplus_refills_it():
    # hypothesis's counterexample: after the last negative price there is no binary, and a MIP stopped at HiGHS's
    # default gap (1e-4, far above the tie-break) cycled 5 kW in and out at slot 5 for the PV at slot 6 to refill
    # the loss for free. The project's gap (MIP_REL_GAP) leaves no room for it; the property test solved with
    # HiGHS's defaults until it went through solve_built.
    battery = BatterySpec(name="b", capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5, soc_min_kwh=1,
                          initial_soc_kwh=10, round_trip_efficiency=0.85)
    p = problem([0.0, 0.0, -3.0, -4.0, -1.0, 1.0, 1.0],
                [ev(f"ev{k}", POINTS[k], 0, 2 if k == 3 else 1, energy_needed_kwh=3.0 if k == 3 else 0.0,
                    max_power_kw=3.7, efficiency=0.85) for k in range(4)],
                connection_capacity_kw=10.0, export_capacity_kw=60.0, export_price_eur_per_mwh=[0.0] * 7,
                load_control_pct=[0.0, 0.0, 50.0, 0.0, 0.0, 0.0, 0.0],
                pv_forecast_kw=[0.0, 5.0, 0.0, 5.0, 5.0, 5.0, 150.0], batteries=[battery])
    built = build_model(resolve(p, SITE))
    solve_built(built, solver="highs")
    [device] = built.batteries
    assert [min(c.varValue, d.varValue) for c, d in zip(device.charge, device.discharge, strict=True)] == [0.0] * 7
