"""A running CEM on loopback over the `store` fixture (SQLite and PostgreSQL), and simulated RMs closed after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.s2.helpers import Clock, RunningCem
from cariflex_pipeline_tests.s2.simulators import SimulatedRm, Storage

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def cem(store: TimeSeriesStore, clock: Clock) -> Iterator[RunningCem]:
    running = RunningCem(store, clock)
    yield running
    running.close()


@pytest.fixture
def make_rm(cem: RunningCem) -> Iterator[Callable[..., SimulatedRm]]:
    made: list[SimulatedRm] = []

    def make(name: str = "battery_01", *, fill_kwh: float = 6.75, capacity_kwh: float = 13.5, max_kw: float = 5.0,
             frbc: bool = True, **storage: object) -> SimulatedRm:
        rm = SimulatedRm(name, Storage(capacity_kwh, max_kw, max_kw, fill_kwh, **storage), cem.url, NOW, frbc=frbc)
        made.append(rm)
        return rm

    yield make
    for rm in made:
        rm.close()
