"""The AMQP transport: CitrineOS over RabbitMQ with mandatory publishing and publisher confirms.

Profiles go onto CitrineOS's headers exchange (declared passively) in its bus envelope (version configurable),
pipelined on a pika SelectConnection with up to `window` unconfirmed messages, so that an offline station (no
queue bound for it) shows as unroutable and a broker that drops the connection leaves nothing lost. Station
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
        fault_hook: Callable[[str, int, Any], None] | None = None,
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
        # Test-only fault injection: called with ("published" | "confirmed", count, SelectConnection).
        self.fault_hook = fault_hook
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
                                    timeout=self.confirm_timeout, fault_hook=self.fault_hook,
                                    where=safe_url(self.url))
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


def publish_confirmed(
    parameters: pika.connection.Parameters,
    exchange: str,
    messages: Sequence[tuple[str, str, dict[str, str], bytes]],
    *,
    window: int = 512,
    timeout: float = 30.0,
    fault_hook: Callable[[str, int, Any], None] | None = None,
    where: str = "RabbitMQ",
) -> list[SendResult]:
    """Publish (correlation id, station, headers, body) messages with mandatory=True and publisher confirms.

    Up to `window` messages are in flight. A returned message is 'unroutable' (RabbitMQ sends basic.return
    before the ack), an acked one 'sent', a nacked one 'failed'. If the connection drops, messages published
    but not confirmed are 'failed' and flagged uncertain; messages never published are 'failed'.
    """
    in_flight: dict[int, str] = {}
    results: dict[str, SendResult] = {}
    stations = {corr: station for corr, station, _, _ in messages}
    returned: dict[str, str] = {}
    state: dict[str, Any] = {"next": 0, "tag": 0, "error": None, "confirmed": 0, "channel": None}

    def finish(connection: Any) -> None:
        if connection.is_open:
            connection.close()

    def publish_more(channel: Any) -> None:
        connection = channel.connection
        while state["next"] < len(messages) and len(in_flight) < window and channel.is_open:
            corr, _station, headers, body = messages[state["next"]]
            properties = pika.BasicProperties(
                headers=headers, content_type="application/json", content_encoding="utf-8",
                correlation_id=corr, message_id=corr, delivery_mode=1)
            channel.basic_publish(exchange, "", body, properties, mandatory=True)
            state["next"] += 1
            state["tag"] += 1
            in_flight[state["tag"]] = corr
            if fault_hook is not None:
                fault_hook("published", state["tag"], connection)
        if state["next"] >= len(messages) and not in_flight:
            finish(connection)

    def on_return(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        returned[properties.correlation_id] = f"{method.reply_code} {method.reply_text}"

    def on_confirm(frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        tags = [t for t in in_flight if t <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        for tag in tags:
            corr = in_flight.pop(tag, None)
            if corr is None:
                continue
            if corr in returned:
                results[corr] = SendResult(corr, stations[corr], "unroutable", returned[corr])
            elif acked:
                results[corr] = SendResult(corr, stations[corr], "sent")
            else:
                results[corr] = SendResult(corr, stations[corr], "failed", "nacked by the broker")
            state["confirmed"] += 1
            if fault_hook is not None:
                fault_hook("confirmed", state["confirmed"], state["channel"].connection)
        channel = state["channel"]
        if channel is not None and channel.is_open:
            publish_more(channel)

    def on_channel_closed(channel: Any, reason: Exception) -> None:
        state["error"] = state["error"] or reason
        if channel.connection.is_open:
            channel.connection.close()

    def on_channel(channel: Any) -> None:
        state["channel"] = channel
        channel.add_on_close_callback(on_channel_closed)
        channel.add_on_return_callback(on_return)
        channel.exchange_declare(
            exchange, passive=True,
            callback=lambda _frame: channel.confirm_delivery(on_confirm,
                                                             callback=lambda _f: publish_more(channel)))

    def on_open(connection: Any) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_open_error(connection: Any, error: Exception) -> None:
        state["error"] = error
        connection.ioloop.stop()

    def on_closed(connection: Any, reason: Exception) -> None:
        if not isinstance(reason, pika.exceptions.ConnectionClosedByClient) or reason.reply_code != 200:
            state["error"] = state["error"] or reason
        connection.ioloop.stop()

    def on_timeout(connection: Any) -> None:
        state["error"] = state["error"] or TimeoutError(f"no confirms within {timeout} s")
        finish(connection)

    connection = pika.SelectConnection(parameters, on_open_callback=on_open,
                                       on_open_error_callback=on_open_error, on_close_callback=on_closed)
    timer = connection.ioloop.call_later(timeout, lambda: on_timeout(connection))
    try:
        connection.ioloop.start()
    finally:
        connection.ioloop.remove_timeout(timer)
    error = state["error"]
    detail = f"{type(error).__name__}: {error}" if error else "not confirmed"
    if isinstance(error, pika.exceptions.ChannelClosedByBroker) and error.reply_code == 404:
        detail = f"exchange {exchange!r} not found on {where}"
    published = {corr for corr in in_flight.values()}
    out: list[SendResult] = []
    for corr, station, _, _ in messages:
        if corr in results:
            out.append(results[corr])
        elif corr in published:
            out.append(SendResult(corr, station, "failed", f"connection to {where} lost before confirm ({detail})",
                                  uncertain=True))
        else:
            out.append(SendResult(corr, station, "failed", f"not published: {detail}"))
    return out


