"""Fixtures for the dispatch tests: a unique CitrineOS-like exchange per test, the router and stations."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from cariflex_pipeline.dispatch import BuiltProfile, Outbox, StationTarget, build_profile
from cariflex_pipeline.dispatch.outbox import OutboxEntry
from cariflex_pipeline.dispatch.profiles import emit_limit, floor_to_grid
from cariflex_pipeline.scheduling.signals import SCHEDULER_SOURCE
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.dispatch.citrineos_sim import (
    CitrineRouter,
    Received,
    SimStation,
    declare_citrineos_exchange,
    delete_names,
)

NOW = datetime(2026, 11, 28, 13, 7, 30, tzinfo=UTC)
SLOT = timedelta(minutes=15)
START = NOW.replace(minute=0, second=0)
SITE_ID = "cariflex-martinique"  # the bundled site file's one site (a plain site file is a one-site portfolio)


def profile_for(station: str, kw: float, transaction_id: str | None = None) -> BuiltProfile:
    """The station's profile for two hours of `kw` from START (a TxProfile when it has a transaction)."""
    return build_profile(StationTarget(station, 1, 22.0, transaction_id=transaction_id),
                         {START + SLOT * i: kw for i in range(8)}, now=NOW)


def sent_entry(outbox: Outbox, profile: BuiltProfile, run_id: str = "r1", transport: str = "amqp") -> OutboxEntry:
    """`profile` stored and marked sent at NOW."""
    [entry] = outbox.prepare([profile], site_id=SITE_ID, run_id=run_id, transport=transport, now=NOW).to_send
    outbox.mark(entry.correlation_id, "sent", now=NOW)
    return entry


class Clock:
    """A 'now' the test moves: for CitrineOS doubles and simulated stations, like the dispatch runs' `now`."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


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


def assert_stations_follow_the_schedule(store_url: str, site, stations: dict[str, SimStation],
                                        dispatch_metadata) -> tuple[dict[str, Received], float]:
    """Each station received exactly one profile, accepted, whose limits equal the schedule in the store from
    the profile's start slot on (whole W rounded down, clipped to the charge point, merged). Returns what each
    station received and the planned kW summed over stations and slots (> 0 shows the comparison is not all
    zeros). `dispatch_metadata` None: the run was in another process, and the caller reads the outbox instead."""
    sent_start = next(iter(stations.values())).received[0].charging_profile["charging_schedule"][0][
        "start_schedule"]
    start = datetime.fromisoformat(sent_start.replace("Z", "+00:00"))
    assert start == floor_to_grid(start, site.resolution)
    planned = TimeSeriesStore(store_url).read_latest([cp.sensor_id for cp in site.charge_points], start=start,
                                                     sources=[SCHEDULER_SOURCE])
    received: dict[str, Received] = {}
    planned_kw = 0.0
    for cp in site.charge_points:
        rows = planned[planned["sensor_id"] == cp.sensor_id].sort_values("event_start")
        expected: list[tuple[int, float]] = []
        for offset, kw in enumerate(rows["value"]):
            limit = emit_limit(min(max(kw, 0.0), cp.max_power_kw) * 1000, "W")
            if not expected or expected[-1][1] != limit:
                expected.append((offset * 900, limit))
        [received[cp.id]] = stations[cp.id].received
        periods = received[cp.id].charging_profile["charging_schedule"][0]["charging_schedule_period"]
        assert [(p["start_period"], p["limit"]) for p in periods] == expected, cp.id
        if dispatch_metadata is not None:
            assert station_row(dispatch_metadata, cp.id)["status"] == "accepted"
        planned_kw += float(rows["value"].sum())
    return received, planned_kw


def station_row(dispatch_metadata, station: str) -> dict[str, str]:
    """The row of `station` in ocpp_dispatch's first metadata entry, the per-station table."""
    [row] = [record.data for record in dispatch_metadata["stations"].value.records
             if record.data["station"] == station]
    return row


def local_hhmm(iso: str, site, plus: timedelta = timedelta(0)) -> str:
    """An ISO instant (as the station received it) at the site's local time, as the station table shows it."""
    return (datetime.fromisoformat(iso.replace("Z", "+00:00")) + plus).astimezone(site.tz).strftime("%H:%M")
