"""Small builders for scheduling tests: a horizon starting at a fixed slot, sessions by slot index."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from cariflex_pipeline.scheduling import EvSession, SchedulingProblem, resolve, solve, verify

START = datetime(2026, 11, 28, 12, 0, tzinfo=timezone(timedelta(hours=-4)))
SLOT = timedelta(minutes=15)


def at(slot: int) -> datetime:
    return START + slot * SLOT


def ev(id: str, point: str, first: int, end: int, **fields: Any) -> EvSession:
    fields.setdefault("efficiency", 1.0)
    return EvSession(id=id, charge_point=point, arrival=at(first), departure=at(end), **fields)


def problem(prices: list[float | None], sessions: list[EvSession], **fields: Any) -> SchedulingProblem:
    return SchedulingProblem(start=START, prices_eur_per_mwh=prices, sessions=sessions, **fields)


# A 10 kWh battery at half charge, 4 kW each way, 0.9 efficiency each way
BATTERY = {"name": "b1", "capacity_kwh": 10, "max_charge_kw": 4, "max_discharge_kw": 4, "initial_soc_kwh": 5,
           "round_trip_efficiency": 0.81}


def solve_checked(site, p: SchedulingProblem, solver: str = "highs"):
    """Resolve and solve `p`, and check the plan with the verifier: (resolved problem, result)."""
    resolved = resolve(p, site)
    result = solve(resolved, solver=solver)
    assert verify(resolved, result) == []
    return resolved, result
