"""Closed loop under the daemon: from the VTN accepting an event to the charge points holding the new limits.

Starts the production topology on this machine as `scripts/serve` does (deploy/serve.py: gRPC code server, daemon,
webserver; Dagster instance and store on scratch PostgreSQL databases), the real OpenLEADR 2.0b VTN in-process, and
the CitrineOS-shaped router with ten `ocpp` stations on the real RabbitMQ (both from the test scaffolding). Then:

1. a new price event and `--modifications` modifications of it, one at a time, each moving the cheap hours;
2. a burst of `--burst` modifications a fraction of a second apart: only the last may be skipped over, never lost
   (the store must end with the last modification number and the stations with its plan);
3. an EV plugging in at a free charge point (TransactionEvent Started on the bus).

For each it prints, in seconds from the VTN's acceptance (the modify call returning) or the TransactionEvent's
publication: the run requested (its creation in the instance), the run finished, and the last station holding its
new profile (the router's station recorded the SetChargingProfile). p50 and max over the single modifications.

The reference in the same run is the VTN's own requested poll interval (`--poll-seconds`): the VEN must not poll
faster, so detection alone averages half of it; the ratio printed is p50 / poll interval.

    source scripts/env.sh && python benchmarks/closed_loop.py [--modifications 5] [--poll-seconds 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pika
from scratch_database import scratch_database
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test scaffolding below: the real OpenLEADR VTN, the CitrineOS-shaped router

from cariflex_pipeline.dispatch import station_message  # noqa: E402
from cariflex_pipeline.openadr.repository import EventLog  # noqa: E402
from cariflex_pipeline.site_model import load_site  # noqa: E402
from cariflex_pipeline.site_model.portfolio import slug  # noqa: E402
from cariflex_pipeline.store import TimeSeriesStore  # noqa: E402
from cariflex_pipeline_tests.dispatch.citrineos_sim import (  # noqa: E402
    CitrineRouter,
    SimStation,
    declare_citrineos_exchange,
    delete_names,
)
from cariflex_pipeline_tests.openadr.vtn20b import PRICE_CONTEXT, InProcessVtn, free_port  # noqa: E402

T = TypeVar("T")
RUNS = """
query ($sensor: String!) {
  runsOrError(filter: {tags: [{key: "dagster/sensor_name", value: $sensor}]}) {
    ... on Runs { results { runId status creationTime startTime endTime tags { key value } } }
    ... on PythonError { message }
  }
}
"""


@dataclass
class Timing:
    what: str
    requested_s: float
    started_s: float  # the run worker began executing: queue, launch and code loading are behind it
    finished_s: float
    stations_s: float | None  # None: no station got a new profile
    stations: int


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.5) -> T:
    """Poll `check` until it gives a value. The figures come from the runs' and the stations' own timestamps,
    not from when this notices, so a slow poll loses no precision and keeps its load off the measured stack."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value is not None:
            return value
        time.sleep(every)
    raise TimeoutError(f"closed loop: no {what} within {timeout:.0f} s")


def hourly_prices(cheap_from: int) -> list[float]:
    """24 hourly prices (EUR/MWh), dear everywhere but three cheap hours from `cheap_from`: each modification moves
    the cheap hours, so the plan (and the stations' limits) must move with it."""
    return [20.0 if cheap_from <= hour < cheap_from + 3 else 300.0 for hour in range(24)]


@contextmanager
def topology(instance_url: str, store_url: str, extra_env: dict[str, str], log_path: Path) -> Iterator[str]:
    """deploy/serve.py with this interpreter, on the given databases; yields the webserver's base URL."""
    instance = make_url(instance_url)
    web_port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CARIFLEX_", "DAGSTER_"))}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "DAGSTER_PG_HOST": instance.host or "127.0.0.1", "DAGSTER_PG_PORT": str(instance.port or 5432),
        "DAGSTER_PG_USER": instance.username or "postgres", "DAGSTER_PG_PASSWORD": instance.password or "",
        "DAGSTER_PG_DB": instance.database or "",
        "CARIFLEX_DATABASE_URL": store_url,
        "CARIFLEX_CODE_SERVER_PORT": str(free_port()), "CARIFLEX_WEBSERVER_PORT": str(web_port),
        "CARIFLEX_SERVE_HOME": str(log_path.parent / "dagster_home"),
        **extra_env,
    })
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, str(ROOT / "deploy" / "serve.py")], cwd=ROOT, env=env,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        yield f"http://127.0.0.1:{web_port}"
        if process.poll() is not None:
            raise RuntimeError(f"serve exited early ({process.returncode}); log: {log_path}")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def sensor_runs(base: str, sensor: str) -> list[dict[str, Any]]:
    try:
        response = httpx.post(f"{base}/graphql", json={"query": RUNS, "variables": {"sensor": sensor}}, timeout=10)
    except httpx.TransportError:
        return []  # the webserver is not up yet
    runs = response.json()["data"]["runsOrError"]
    if "results" not in runs:
        raise RuntimeError(f"webserver: {runs}")
    return runs["results"]


def finished_runs(base: str, sensor: str, matches: Callable[[dict[str, str]], bool]) -> list[dict[str, Any]] | None:
    """The sensor's runs whose tags match, once there is one and all have finished (an event over two local days
    runs two partitions, requested in the same tick); a failed one stops the benchmark."""
    runs = [run for run in sensor_runs(base, sensor) if matches({tag["key"]: tag["value"] for tag in run["tags"]})]
    if not runs or any(run["status"] not in ("SUCCESS", "FAILURE", "CANCELED") for run in runs):
        return None
    for run in runs:
        if run["status"] != "SUCCESS":
            raise RuntimeError(f"run {run['runId']} of {sensor} ended {run['status']}")
    return runs


def carries(version: str) -> Callable[[dict[str, str]], bool]:
    return lambda tags: version in tags.get("cariflex/openadr_events", "").split(",")


def newest_receipts(stations: dict[str, SimStation], since: datetime) -> dict[str, datetime]:
    """Each station's latest SetChargingProfile after `since`: when it started holding its new limits."""
    return {station_id: station.received[-1].received_at for station_id, station in stations.items()
            if station.received and station.received[-1].received_at > since}


def timing(what: str, accepted: datetime, runs: list[dict[str, Any]], stations: dict[str, SimStation]) -> Timing:
    receipts = newest_receipts(stations, accepted)
    zero = accepted.timestamp()
    return Timing(what, min(run["creationTime"] for run in runs) - zero, min(run["startTime"] for run in runs) - zero,
                  max(run["endTime"] for run in runs) - zero,
                  max(receipts.values()).timestamp() - zero if receipts else None, len(receipts))


def measure_modification(vtn: InProcessVtn, base: str, stations: dict[str, SimStation], ven_id: str,
                         event_id: str, number: int, cheap_from: int, timeout: float) -> Timing:
    accepted = datetime.now(UTC)
    vtn.modify_event(ven_id, event_id, hourly_prices(cheap_from))
    runs = wait_for(lambda: finished_runs(base, "openadr_vtn_sensor", carries(f"{event_id}@{number}")),
                    timeout, f"finished runs for {event_id}@{number}")
    return timing(f"modification {number}", accepted, runs, stations)


def plug_in(amqp_url: str, exchange: str, station_id: str, transaction_id: str) -> None:
    headers, body = station_message(
        station_id=station_id, tenant_id="1", action="TransactionEvent", state=1, correlation_id=transaction_id,
        payload={"eventType": "Started", "timestamp": datetime.now(UTC).isoformat(), "triggerReason": "CablePluggedIn",
                 "seqNo": 0, "transactionInfo": {"transactionId": transaction_id}, "evse": {"id": 1}})
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().basic_publish(exchange, "", body, pika.BasicProperties(headers=headers))
    finally:
        connection.close()


def report(timings: list[Timing], poll_seconds: float) -> None:
    print(f"{'':18}{'run requested':>15}{'run started':>13}{'run finished':>14}{'stations hold':>15}{'stations':>10}")
    for row in timings:
        held = "-" if row.stations_s is None else f"{row.stations_s:.2f}"
        print(f"{row.what:18}{row.requested_s:15.2f}{row.started_s:13.2f}{row.finished_s:14.2f}{held:>15}"
              f"{row.stations:10d}")
    single = [row for row in timings if row.what.startswith(("new event", "modification"))]
    for label, values in (("run requested", [row.requested_s for row in single]),
                          ("run started", [row.started_s for row in single]),
                          ("run finished", [row.finished_s for row in single]),
                          ("stations hold", [row.stations_s for row in single if row.stations_s is not None])):
        if values:
            print(f"{label:15} p50 {statistics.median(values):6.2f} s   max {max(values):6.2f} s   "
                  f"(n={len(values)})")
    held = [row.stations_s for row in single if row.stations_s is not None]
    if held:
        print(f"ratio p50(stations hold) / VTN poll interval ({poll_seconds:g} s): "
              f"{statistics.median(held) / poll_seconds:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modifications", type=int, default=5)
    parser.add_argument("--burst", type=int, default=3)
    parser.add_argument("--poll-seconds", type=float, default=5.0, help="the VTN's requested poll frequency")
    parser.add_argument("--admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/test",
                        help="where the two scratch databases (instance, store) are created")
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--timeout", type=float, default=120.0, help="per step")
    args = parser.parse_args()

    site = load_site()
    suffix = uuid.uuid4().hex[:8]
    exchange, sessions, answers = f"bench.loop.{suffix}", f"bench.sessions.{suffix}", f"bench.answers.{suffix}"
    work = Path(f"/tmp/cariflex_closed_loop_{suffix}")
    work.mkdir()
    declare_citrineos_exchange(args.amqp, exchange)
    router = CitrineRouter(args.amqp, exchange).start()
    vtn = InProcessVtn(poll_freq=timedelta(seconds=args.poll_seconds))
    timings: list[Timing] = []
    try:
        stations = {cp.id: router.connect(cp.id) for cp in site.charge_points}
        env = {"CARIFLEX_VTN_URL": vtn.url, "CARIFLEX_VTN_PROTOCOL": "2.0b",
               "CARIFLEX_DISPATCH_TRANSPORT": "amqp", "CARIFLEX_AMQP_URL": args.amqp,
               "CARIFLEX_CITRINEOS_EXCHANGE": exchange, "CARIFLEX_SESSION_QUEUE": sessions,
               "CARIFLEX_DISPATCH_ANSWER_QUEUE": answers}
        with scratch_database(args.admin_url) as instance_url, scratch_database(args.admin_url) as store_url, \
                topology(instance_url, store_url, env, work / "serve.log") as base:
            started = time.monotonic()
            registration = wait_for(lambda: vtn.registrations[0] if vtn.registrations else None, args.timeout,
                                    "VEN registration at the VTN")
            ven_id = registration.get("ven_id") or "ven_1"
            print(f"topology up, VEN registered after {time.monotonic() - started:.1f} s; log: {work / 'serve.log'}")

            start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            accepted = datetime.now(UTC)
            event_id = vtn.add_event(ven_id, "ELECTRICITY_PRICE", "price", PRICE_CONTEXT,
                                     [(start + timedelta(hours=h), timedelta(hours=1), price)
                                      for h, price in enumerate(hourly_prices(0))])
            runs = wait_for(lambda: finished_runs(base, "openadr_vtn_sensor", carries(f"{event_id}@0")),
                            args.timeout, "finished runs for the new event")
            timings.append(timing("new event", accepted, runs, stations))
            number = 0
            for step in range(args.modifications):
                number += 1
                timings.append(measure_modification(vtn, base, stations, ven_id, event_id, number,
                                                    cheap_from=3 * (step + 1) % 21, timeout=args.timeout))

            accepted = datetime.now(UTC)
            for _ in range(args.burst):
                number += 1
                vtn.modify_event(ven_id, event_id, hourly_prices(3 * number % 21))
                time.sleep(0.3)
            store = TimeSeriesStore(store_url)
            last = wait_for(lambda: next((record for (_, stored_id), record in
                                          EventLog(store.engine, site_id=slug(site.name)).latest_versions().items()
                                          if stored_id == event_id and record.modification_number == number), None),
                            args.timeout, f"modification {number} (the burst's last) in the store")
            runs = wait_for(lambda: finished_runs(base, "openadr_vtn_sensor", carries(f"{event_id}@{number}")),
                            args.timeout, "the burst's last runs")
            timings.append(timing(f"burst of {args.burst}", accepted, runs, stations))
            print(f"burst: the store holds modification {last.modification_number} of {number}")

            free = site.charge_points[-1].id
            transaction_id = f"bench-{suffix}"
            accepted = datetime.now(UTC)
            plug_in(args.amqp, exchange, free, transaction_id)
            [run] = wait_for(lambda: finished_runs(base, "ev_session_sensor", lambda tags: free in tags.get(
                "cariflex/stations", "").split(",")), args.timeout, f"finished run for the EV at {free}")
            held = wait_for(lambda: next((receipt.received_at for receipt in reversed(stations[free].received)
                                          if receipt.charging_profile.get("transaction_id") == transaction_id),
                                         None), args.timeout, f"TxProfile at {free}")
            zero = accepted.timestamp()
            timings.append(Timing(f"EV plug-in {free}", run["creationTime"] - zero, run["startTime"] - zero,
                                  run["endTime"] - zero,
                                  held.timestamp() - zero, 1))
    finally:
        vtn.stop()
        router.stop()
        delete_names(args.amqp, exchange, (sessions, answers))
    report(timings, args.poll_seconds)
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(vtn.polls, vtn.polls[1:], strict=False)]
    if gaps:
        print(f"VEN polls: {len(vtn.polls)}, interval min {min(gaps):.2f} s, median {statistics.median(gaps):.2f} s "
              f"(requested {args.poll_seconds:g} s)")
        if min(gaps) < args.poll_seconds - 0.05:  # a VEN polling faster than asked: the figures do not count
            print("FAILED: the VEN polled faster than the VTN's requested poll frequency")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
