"""The AMQP transport: CitrineOS over RabbitMQ with mandatory publishing and publisher confirms.

Profiles go onto CitrineOS's headers exchange (declared passively) in its bus envelope (version configurable),
pipelined with up to `window` unconfirmed messages (`confirmed_publish`), so that an offline station (no queue
bound for it) shows as unroutable and a broker that drops the connection leaves nothing lost. Station
answers (to SetChargingProfile, ClearChargingProfile and GetCompositeSchedule) are read from our own durable queue
bound to origin=cs, state="2" and those actions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pika
import pika.exceptions

from cariflex_pipeline.dispatch.confirmed_publish import publish_confirmed
from cariflex_pipeline.dispatch.connections import (
    amqp_parameters,
    close_quietly,
    connect_blocking,
    declare_exchange_passively,
    safe_url,
)
from cariflex_pipeline.dispatch.envelope import EnvelopeError, csms_request, decode, station_key
from cariflex_pipeline.dispatch.outbox import OutboxEntry
from cariflex_pipeline.dispatch.transports import ANSWERED_ACTIONS, Answer, Call, SendResult

LOG = logging.getLogger(__name__)


class AmqpTransport:
    """CitrineOS over RabbitMQ with mandatory publishing and publisher confirms."""

    name = "amqp"

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "citrineos",
        tenant_id: str = "1",
        envelope_version: str = "1.8",
        answer_queue: str = "cariflex.dispatch.answers",
        window: int = 512,
        confirm_timeout: float = 30.0,
        connection_name: str = "cariflex-dispatch",
        ca_file: str | None = None,
    ) -> None:
        station_key(envelope_version)  # validates the version
        self.ca_file = ca_file
        self.url = url
        self.exchange = exchange
        self.tenant_id = str(tenant_id)
        self.envelope_version = envelope_version
        self.answer_queue = answer_queue
        self.window = max(1, window)
        self.confirm_timeout = confirm_timeout
        self.connection_name = connection_name
        self._answer_queue_ready = False

    def _parameters(self, suffix: str) -> pika.URLParameters:
        return amqp_parameters(self.url, f"{self.connection_name}-{suffix}", self.ca_file)

    def ensure_answer_queue(self) -> None:
        """Declare our durable answer queue and bind it before anything is published (answers are never lost)."""
        if self._answer_queue_ready:
            return
        connection = connect_blocking(self.url, f"{self.connection_name}-setup", self.ca_file)
        try:
            channel = connection.channel()
            declare_exchange_passively(channel, self.exchange, self.url)
            channel.queue_declare(self.answer_queue, durable=True)
            for action in ANSWERED_ACTIONS:
                channel.queue_bind(self.answer_queue, self.exchange, routing_key="", arguments={
                    "x-match": "all", "origin": "cs", "state": "2", "action": action})
            self._answer_queue_ready = True
        finally:
            close_quietly(connection)

    def envelope(self, call: Call) -> tuple[dict[str, str], bytes]:
        """The CitrineOS bus message (headers, body) carrying one call."""
        return csms_request(station_id=call.station_id, tenant_id=self.tenant_id, action=call.action,
                            payload=call.payload, correlation_id=call.correlation_id,
                            version=self.envelope_version)

    def send(self, entries: Sequence[OutboxEntry]) -> list[SendResult]:
        """Publish the entries' SetChargingProfileRequests. On the bus a profile with the same id replaces the
        station's one (K01.FR.05): CitrineOS's REST-side rules do not apply, so no ClearChargingProfile first."""
        return self.send_calls([Call(e.correlation_id, e.station_id, "SetChargingProfile", e.payload)
                                for e in entries])

    def send_calls(self, calls: Sequence[Call]) -> list[SendResult]:
        if not calls:
            return []
        self.ensure_answer_queue()
        messages = [(c.correlation_id, c.station_id, *self.envelope(c)) for c in calls]
        results = publish_confirmed(self._parameters("publish"), self.exchange, messages, window=self.window,
                                    timeout=self.confirm_timeout, where=safe_url(self.url))
        return [self._explain(result) for result in results]

    def _explain(self, result: SendResult) -> SendResult:
        """An unroutable message names what to check: CitrineOS binds a station's queue only while it is connected,
        and only for its own envelope version and tenant."""
        if result.status != "unroutable":
            return result
        key = station_key(self.envelope_version)
        return replace(result, reason=(
            f"no CitrineOS queue bound for station {result.station_id} on exchange {self.exchange!r} "
            f"({result.reason}); likely causes: the station is not connected to CitrineOS; CitrineOS expects "
            f"another envelope version (sent {self.envelope_version}, header {key}: 1.8.x uses stationId, later "
            f"releases ocppConnectionName; CARIFLEX_CITRINEOS_ENVELOPE); the station belongs to another tenant "
            f"(sent tenantId {self.tenant_id}; CARIFLEX_CITRINEOS_TENANT)"))

    def collect_answers(self, record: Callable[[Answer], bool], *, expected: set[str] | None = None,
                        timeout: float = 0.0) -> list[Answer]:
        """Drain station answers into `record`; wait up to `timeout` s while expected ids are unanswered."""
        self.ensure_answer_queue()
        waiting = set(expected or ())
        answers: list[Answer] = []
        connection = connect_blocking(self.url, f"{self.connection_name}-answers", self.ca_file)
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=500)
            deadline = time.monotonic() + timeout
            for method, properties, body in channel.consume(self.answer_queue, inactivity_timeout=0.05):
                if method is None:
                    if not waiting or time.monotonic() >= deadline:
                        break
                    continue
                answer, problem = _parse_answer(properties.headers, body)
                if answer is None:
                    LOG.warning("answer queue %s: dropping a message that is not an answer we asked for: %s",
                                self.answer_queue, problem)
                else:
                    known = record(answer)
                    if known:
                        answers.append(answer)
                    waiting.discard(answer.correlation_id)
                channel.basic_ack(method.delivery_tag)
                if not waiting and timeout > 0 and expected:
                    # all expected answers in; still drain what is already queued
                    deadline = min(deadline, time.monotonic())
            channel.cancel()
        finally:
            close_quietly(connection)
        return answers

    def close(self) -> None:
        return None


def _parse_answer(headers: dict[str, Any] | None, body: bytes) -> tuple[Answer | None, str]:
    """The station's answer, or None and what is wrong with the message (naming station and correlation id)."""
    try:
        message = decode(headers, body)
    except EnvelopeError as error:
        return None, str(error)
    if message.action not in ANSWERED_ACTIONS or message.state != 2 or not message.correlation_id:
        return None, (f"station {message.station_id}: {message.action} state {message.state} correlation id "
                      f"{message.correlation_id or 'missing'}")
    status = message.payload.get("status")
    info = message.payload.get("statusInfo") or {}
    reason = " ".join(str(info.get(k, "")) for k in ("reasonCode", "additionalInfo") if info.get(k)).strip()
    return Answer(message.correlation_id, message.station_id, str(status), reason, action=message.action,
                  payload=message.payload), ""
