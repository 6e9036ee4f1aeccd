"""The verifier: silent on the solver's schedules for random problems, loud on deliberately broken ones."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cariflex_pipeline.scheduling import BatterySpec, build_model, resolve, solve, verify
from cariflex_pipeline.scheduling.highs_bridge import FastHiGHS
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
    built.prob.solve(FastHiGHS(msg=False))
    for device in [*built.v2g.values(), *built.batteries]:
        for t, charge, discharge in zip(device.slots, device.charge, device.discharge, strict=True):
            assert min(charge.varValue, discharge.varValue) <= 1e-6, (device.name, t)


@SETTINGS
@given(problems(), st.sampled_from(["window", "power_limit", "unserved", "site_limit", "energy"]), st.data())
def test_broken_schedules_are_caught(p, breakage, data):
    resolved = resolve(p, SITE)
    result = solve(resolved, solver="highs")
    broken = copy.deepcopy(result)
    plain = [s for s in resolved.sessions if not s.v2g and len(s.slots)]
    if breakage == "window":
        busy = {(s.charge_point, t) for s in resolved.sessions for t in s.slots}
        free = [(cp, t) for cp in POINTS for t in range(resolved.n_slots) if (cp, t) not in busy]
        cp, t = data.draw(st.sampled_from(free))
        broken.power_kw[cp][t] = 1.0
    elif breakage == "power_limit" and plain:
        session = data.draw(st.sampled_from(plain))
        broken.power_kw[session.charge_point][session.first] = session.max_charge_kw + 0.5
    elif breakage == "unserved" and resolved.sessions:
        index = data.draw(st.integers(0, len(resolved.sessions) - 1))
        broken.sessions[index].unserved_kwh += 0.5
    elif breakage == "energy" and plain:
        index = resolved.sessions.index(data.draw(st.sampled_from(plain)))
        broken.sessions[index].energy_delivered_kwh += 0.5
    else:  # site_limit: every point of the site at 1000 kW in slot 0 (also breaks windows and limits)
        for cp in POINTS:
            broken.power_kw[cp][0] = 1000.0
        breakage = "site_limit"
    kinds = {v.kind for v in verify(resolved, broken)}
    assert breakage in kinds


def test_export_beyond_the_export_capacity_is_caught():
    battery = BatterySpec(name="b", capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5, initial_soc_kwh=5,
                          final_soc_min_kwh=0)
    resolved = resolve(problem([50, 100], [], batteries=[battery], export_capacity_kw=2), SITE)
    result = solve(resolved, solver="highs")
    assert verify(resolved, result) == []
    result.battery_power_kw["b"][1] = -3.0  # SoC and power limits still hold: only the export is wrong
    assert [(v.kind, v.slot) for v in verify(resolved, result)] == [("export_limit", 1)]


def test_a_battery_the_problem_does_not_have_is_caught():
    # its power would count against the site limit unchecked (no SoC, no power limit)
    resolved = resolve(problem([50, 100], [ev("a", "CP001", 0, 2, energy_needed_kwh=1)]), SITE)
    result = solve(resolved, solver="highs")
    result.battery_power_kw["battery_99"] = [-2.0, 0.0]
    assert [(v.kind, v.subject) for v in verify(resolved, result)] == [("unknown_device", "battery_99")]
