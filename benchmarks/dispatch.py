"""Dispatch benchmark: 10 000 SetChargingProfile messages through the AMQP transport (CitrineOS envelope,
mandatory, publisher confirms) against the raw pika publish rate of the same messages without confirms.

    .venv/bin/python benchmarks/dispatch.py [--amqp-url URL] [--count 10000] [--window 512]

Both runs publish onto a CitrineOS-like headers exchange with one sink queue bound as the CitrineOS router
binds (x-match all, origin=csms, state="1"), so every message is routed and stored by RabbitMQ.
The raw rate is timed until a synchronous call on the same channel returns (RabbitMQ has then processed every
publish before it), so both figures count messages the broker has taken. Prints profiles/s for each and the
ratio confirmed/raw (aim >= 0.3).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cariflex_pipeline.dispatch.amqp_transport import AmqpTransport
from cariflex_pipeline.dispatch.outbox import OutboxEntry, payload_hash
from cariflex_pipeline.dispatch.profiles import StationTarget, build_profile
from cariflex_pipeline.dispatch.validation import validate_request


def make_entries(count: int, now: datetime) -> list[OutboxEntry]:
    start = now.replace(minute=0, second=0, microsecond=0)
    entries = []
    for index in range(count):
        station = f"BENCH{index:05d}"
        # a realistic day: 96 slots with a few price-driven steps
        plan = {start + timedelta(minutes=15 * slot): (0.0 if (slot + index) % 24 < 8 else 7.4 + (slot % 5))
                for slot in range(96)}
        profile = build_profile(StationTarget(station, 1, 22.0), plan, now=now)
        validate_request(profile.payload, station_id=station, now=now)
        entries.append(OutboxEntry(
            id=index, station_id=station, evse_id=1, profile_id=profile.profile_id, stack_level=1,
            purpose=profile.purpose, transaction_id=None, correlation_id=str(uuid.uuid4()), payload=profile.payload,
            payload_hash=payload_hash(profile.payload), status="pending", status_reason="",
            delivery_uncertain=False, transport="amqp", run_id="bench", attempts=1, valid_to=now, created_at=now,
            sent_at=None, answered_at=None, updated_at=now))
    return entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amqp-url", default=os.environ.get("CARIFLEX_AMQP_URL",
                                                            "amqp://guest:guest@127.0.0.1:5672/%2F"))
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=512)
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    exchange, sink, answers = f"citrineos.bench.{tag}", f"bench.sink.{tag}", f"bench.answers.{tag}"
    setup = pika.BlockingConnection(pika.URLParameters(args.amqp_url))
    channel = setup.channel()
    channel.exchange_declare(exchange, exchange_type="headers", durable=False)
    channel.queue_declare(sink, auto_delete=False)
    channel.queue_bind(sink, exchange, arguments={"x-match": "all", "origin": "csms", "state": "1"})

    now = datetime.now(UTC)
    t0 = time.perf_counter()
    entries = make_entries(args.count, now)
    build_s = time.perf_counter() - t0
    transport = AmqpTransport(args.amqp_url, exchange=exchange, answer_queue=answers, window=args.window,
                              confirm_timeout=600)
    transport.ensure_answer_queue()
    messages = [(e.correlation_id, e.station_id, *transport.envelope(e)) for e in entries]
    try:
        # 1. through the transport: envelope, mandatory, publisher confirms
        t0 = time.perf_counter()
        results = transport.send(entries)
        confirmed_s = time.perf_counter() - t0
        outcome: dict[str, int] = {}
        for result in results:
            outcome[result.status] = outcome.get(result.status, 0) + 1
        channel.queue_purge(sink)

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
    finally:
        channel.queue_delete(sink)
        channel.queue_delete(answers)
        channel.exchange_delete(exchange)
        setup.close()

    body_bytes = sum(len(m[3]) for m in messages) / len(messages)
    confirmed_rate = args.count / confirmed_s
    raw_rate = args.count / raw_s
    print(f"profiles built and validated: {args.count} in {build_s:.2f} s ({args.count / build_s:,.0f}/s), "
          f"mean body {body_bytes:,.0f} bytes")
    print(f"AMQP transport (mandatory + confirms, window {args.window}): {confirmed_s:.2f} s, "
          f"{confirmed_rate:,.0f} profiles/s, outcome {outcome}")
    print(f"raw pika publish (no confirms):                 {raw_s:.2f} s, {raw_rate:,.0f} profiles/s, "
          f"{stored} stored")
    print(f"ratio confirmed / raw: {confirmed_rate / raw_rate:.2f}  (aim >= 0.3)")
    return 0 if outcome.get("sent") == args.count else 1


if __name__ == "__main__":
    raise SystemExit(main())
