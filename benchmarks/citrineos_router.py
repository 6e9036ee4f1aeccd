"""A CitrineOS-shaped router of a benchmark's own on RabbitMQ, declared for the run and deleted afterwards (shared
by the benchmarks that dispatch profiles through the AMQP transport).

A headers exchange with one sink queue bound as the CitrineOS router binds (x-match all, origin=csms, state="1"),
so every profile published is routed and stored by RabbitMQ; the names carry a random tag, so runs on a shared
broker never meet.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pika


@dataclass(frozen=True)
class Router:
    exchange: str
    sink: str  # where every request to a station lands
    answer_queue: str  # for AmqpTransport(answer_queue=...): deleted with the rest
    channel: Any  # a blocking channel of the set-up connection, open while the router exists


@contextmanager
def citrineos_router(amqp_url: str) -> Iterator[Router]:
    """Yield a new router on `amqp_url`; its exchange and queues are deleted on the way out, whatever happened."""
    tag = uuid.uuid4().hex[:8]
    router = None
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        router = Router(f"citrineos.bench.{tag}", f"bench.sink.{tag}", f"bench.answers.{tag}", channel)
        channel.exchange_declare(router.exchange, exchange_type="headers", durable=False)
        channel.queue_declare(router.sink, auto_delete=False)
        channel.queue_bind(router.sink, router.exchange, arguments={"x-match": "all", "origin": "csms", "state": "1"})
        yield router
    finally:
        if router is not None and connection.is_open:
            channel = connection.channel()  # the router's channel may have been closed by the broker
            channel.queue_delete(router.sink)
            channel.queue_delete(router.answer_queue)
            channel.exchange_delete(router.exchange)
        connection.close()
