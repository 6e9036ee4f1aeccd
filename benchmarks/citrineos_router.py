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
    url: str
    exchange: str
    sink: str  # where every request to a station lands
    answer_queue: str  # for AmqpTransport(answer_queue=...): deleted with the rest

    def purge(self) -> None:
        """Empty the sink (between measurements)."""
        with _channel(self.url) as channel:
            channel.queue_purge(self.sink)


@contextmanager
def _channel(url: str) -> Iterator[Any]:
    """A channel on a connection of its own: a set-up connection left idle through a long measurement misses its
    heartbeats and is closed by the broker, which once left a benchmark's exchange and queues behind."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


@contextmanager
def citrineos_router(amqp_url: str) -> Iterator[Router]:
    """Yield a new router on `amqp_url`; its exchange and queues are deleted on the way out, whatever happened."""
    tag = uuid.uuid4().hex[:8]
    router = Router(amqp_url, f"citrineos.bench.{tag}", f"bench.sink.{tag}", f"bench.answers.{tag}")
    try:
        with _channel(amqp_url) as channel:
            channel.exchange_declare(router.exchange, exchange_type="headers", durable=False)
            channel.queue_declare(router.sink, auto_delete=False)
            channel.queue_bind(router.sink, router.exchange,
                               arguments={"x-match": "all", "origin": "csms", "state": "1"})
        yield router
    finally:
        with _channel(amqp_url) as channel:
            channel.queue_delete(router.sink)
            channel.queue_delete(router.answer_queue)
            channel.exchange_delete(router.exchange)
