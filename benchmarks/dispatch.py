"""Dispatch benchmark: 10 000 SetChargingProfile messages through the AMQP transport (CitrineOS envelope,
mandatory, publisher confirms) and the outbox's delivery bookkeeping on PostgreSQL (each entry marked sent with
its time and event, the answer-deadline scan), against the raw pika publish rate of the same messages without
confirms.

    .venv/bin/python benchmarks/dispatch.py [--amqp-url URL] [--count 10000] [--window 512]
                                            [--admin-url postgresql+psycopg2://postgres@127.0.0.1:5432/test]

Both runs publish onto a CitrineOS-like headers exchange with one sink queue bound as the CitrineOS router
binds (x-match all, origin=csms, state="1"), so every message is routed and stored by RabbitMQ.
The raw rate is timed until a synchronous call on the same channel returns (RabbitMQ has then processed every
publish before it), so both figures count messages the broker has taken. Prints profiles/s for each and the
ratio confirmed/raw (aim >= 0.3). The entries are stored in the outbox beforehand (pending, as every run does
before it sends); that step is timed and printed on its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from citrineos_router import Router, citrineos_router
from scratch_database import scratch_database

from cariflex_pipeline.dispatch import (
    AmqpTransport,
    BuiltProfile,
    Call,
    DeliveryPolicy,
    Outbox,
    StationTarget,
    build_profile,
    validate_request,
)
from cariflex_pipeline.store import TimeSeriesStore


def make_profiles(count: int, now: datetime) -> list[BuiltProfile]:
    start = now.replace(minute=0, second=0, microsecond=0)
    profiles = []
    for index in range(count):
        station = f"BENCH{index:05d}"
        # a realistic day: 96 slots with a few price-driven steps
        plan = {start + timedelta(minutes=15 * slot): (0.0 if (slot + index) % 24 < 8 else 7.4 + (slot % 5))
                for slot in range(96)}
        profile = build_profile(StationTarget(station, 1, 22.0), plan, now=now)
        validate_request(profile.payload, station_id=station, now=now)
        profiles.append(profile)
    return profiles


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amqp-url", default=os.environ.get("CARIFLEX_AMQP_URL",
                                                            "amqp://guest:guest@127.0.0.1:5672/%2F"))
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with scratch_database(args.admin_url) as database_url:
        return run(args, database_url)


def run(args: argparse.Namespace, database_url: str) -> int:
    store = TimeSeriesStore(database_url)
    store.migrate()
    outbox = Outbox(store.engine)

    with citrineos_router(args.amqp_url) as router:
        return measure(args, outbox, router)


def measure(args: argparse.Namespace, outbox: Outbox, router: Router) -> int:
    exchange, sink = router.exchange, router.sink
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    profiles = make_profiles(args.count, now)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    entries = outbox.prepare(profiles, site_id="bench", run_id="bench", transport="amqp", now=now).to_send
    store_s = time.perf_counter() - t0
    transport = AmqpTransport(args.amqp_url, exchange=exchange, answer_queue=router.answer_queue, window=args.window,
                              confirm_timeout=600)
    transport.ensure_answer_queue()
    messages = [(e.correlation_id, e.station_id,
                 *transport.envelope(Call(e.correlation_id, e.station_id, "SetChargingProfile", e.payload)))
                for e in entries]
    policy = DeliveryPolicy()
    # 1. through the transport (envelope, mandatory, publisher confirms) and the outbox's bookkeeping: each
    # entry sent with its time and event, then the scan for entries past their answer deadline
    t0 = time.perf_counter()
    results = transport.send(entries)
    outbox.mark_sent([r.correlation_id for r in results if r.status == "sent"], now=now)
    outbox.expire_unanswered(now, policy)
    confirmed_s = time.perf_counter() - t0
    outcome: dict[str, int] = {}
    for result in results:
        outcome[result.status] = outcome.get(result.status, 0) + 1
    router.purge()

    # 2. raw pika: the same messages, no confirms, no mandatory
    raw = pika.BlockingConnection(pika.URLParameters(args.amqp_url))
    raw_channel = raw.channel()
    t0 = time.perf_counter()
    for corr, _station, headers, body in messages:
        raw_channel.basic_publish(exchange, "", body, pika.BasicProperties(
            headers=headers, content_type="application/json", content_encoding="utf-8", correlation_id=corr,
            message_id=corr, delivery_mode=1))
    raw_channel.queue_declare(sink, passive=True)  # synchronous: the broker has processed every publish
    raw_s = time.perf_counter() - t0
    deadline = time.monotonic() + 10  # the count in declare-ok can lag the queue process: poll, untimed
    stored = 0
    while time.monotonic() < deadline:
        stored = raw_channel.queue_declare(sink, passive=True).method.message_count
        if stored >= args.count:
            break
        raw.sleep(0.05)
    raw.close()

    body_bytes = sum(len(m[3]) for m in messages) / len(messages)
    confirmed_rate = args.count / confirmed_s
    raw_rate = args.count / raw_s
    print(f"profiles built and validated: {args.count} in {build_s:.2f} s ({args.count / build_s:,.0f}/s), "
          f"mean body {body_bytes:,.0f} bytes")
    print(f"stored in the outbox (pending, before sending): {store_s:.2f} s ({args.count / store_s:,.0f}/s)")
    sent = sum(e.status == "sent" for e in outbox.entries())
    print(f"AMQP transport (mandatory + confirms, window {args.window}) + outbox bookkeeping: {confirmed_s:.2f} s, "
          f"{confirmed_rate:,.0f} profiles/s, outcome {outcome}, {sent} marked sent")
    print(f"raw pika publish (no confirms):                 {raw_s:.2f} s, {raw_rate:,.0f} profiles/s, "
          f"{stored} stored")
    print(f"ratio confirmed / raw: {confirmed_rate / raw_rate:.2f}  (aim >= 0.3)")
    return 0 if outcome.get("sent") == args.count else 1


if __name__ == "__main__":
    raise SystemExit(main())
