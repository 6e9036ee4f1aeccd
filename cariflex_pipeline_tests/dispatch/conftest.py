"""Fixtures for the dispatch tests: a unique CitrineOS-like exchange per test, the router and stations."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from cariflex_pipeline_tests.dispatch.citrineos_sim import CitrineRouter, declare_citrineos_exchange, delete_names

NOW = datetime(2026, 11, 28, 13, 7, 30, tzinfo=UTC)


@pytest.fixture
def names() -> dict[str, str]:
    """Unique exchange and queue names, so parallel test runs never collide."""
    tag = uuid.uuid4().hex[:10]
    return {"exchange": f"citrineos.test.{tag}", "answers": f"cariflex.answers.{tag}",
            "sessions": f"cariflex.sessions.{tag}"}


@pytest.fixture
def exchange(amqp_url: str, names: dict[str, str]) -> Iterator[str]:
    declare_citrineos_exchange(amqp_url, names["exchange"])
    yield names["exchange"]
    delete_names(amqp_url, names["exchange"], (names["answers"], names["sessions"], names["sessions"] + ".dead"))


@pytest.fixture
def make_router(amqp_url: str, exchange: str) -> Iterator[Callable[..., CitrineRouter]]:
    routers: list[CitrineRouter] = []

    def make(envelope_version: str = "1.8") -> CitrineRouter:
        router = CitrineRouter(amqp_url, exchange, envelope_version=envelope_version).start()
        routers.append(router)
        return router

    yield make
    for router in routers:
        router.stop()


def plan_frame(site, start: datetime, per_station: dict[str, list[float]]) -> pd.DataFrame:
    """Planned power (kW) per 15-minute slot, shaped like TimeSeriesStore.read_latest."""
    rows = []
    for cp in site.charge_points:
        for index, value in enumerate(per_station.get(cp.id, [])):
            rows.append({"sensor_id": cp.sensor_id, "event_start": start + timedelta(minutes=15 * index),
                         "value": value})
    frame = pd.DataFrame(rows)
    frame["event_start"] = pd.to_datetime(frame["event_start"], utc=True)
    return frame
