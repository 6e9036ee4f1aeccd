"""Small builders for scheduling tests: a horizon starting at a fixed slot, sessions by slot index."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from cariflex_pipeline.scheduling import EvSession, SchedulingProblem

START = datetime(2026, 11, 28, 12, 0, tzinfo=timezone(timedelta(hours=-4)))
SLOT = timedelta(minutes=15)


def at(slot: int) -> datetime:
    return START + slot * SLOT


def ev(id: str, point: str, first: int, end: int, **fields: Any) -> EvSession:
    fields.setdefault("efficiency", 1.0)
    return EvSession(id=id, charge_point=point, arrival=at(first), departure=at(end), **fields)


def problem(prices: list[float | None], sessions: list[EvSession], **fields: Any) -> SchedulingProblem:
    return SchedulingProblem(start=START, prices_eur_per_mwh=prices, sessions=sessions, **fields)
