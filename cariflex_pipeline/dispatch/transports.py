"""Transports that carry outbox entries to CitrineOS, chosen by configuration.

- `AmqpTransport`: the CitrineOS envelope on its headers exchange (declared passively), `mandatory` and publisher
  confirms (pipelined on a pika SelectConnection) so an offline station shows as unroutable; station answers are
  read from our own durable queue bound to origin=cs, state="2", action=SetChargingProfile.
- `RestTransport`: POST /ocpp/2.0.1/smartcharging/setChargingProfile?identifier=..&tenantId=.. over httpx.
- `OutboxOnlyTransport`: the embedded default; nothing leaves the machine, entries stay pending.

URLs and credentials come from configuration (environment); amqps:// and https:// use TLS. Secrets are never
logged: errors name host and port only.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import pika
import pika.exceptions

from cariflex_pipeline.dispatch.envelope import EnvelopeError, csms_request, decode, station_key
from cariflex_pipeline.dispatch.outbox import OutboxEntry

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendResult:
    correlation_id: str
    station_id: str
    status: str  # sent | unroutable | failed | pending
    reason: str = ""
    uncertain: bool = False  # published but never confirmed: the station may have received it


@dataclass(frozen=True)
class Answer:
    correlation_id: str
    station_id: str
    status: str  # Accepted | Rejected | ...
    reason: str = ""


class Transport(Protocol):
    name: str

    def send(self, entries: Sequence[OutboxEntry]) -> list[SendResult]: ...

    def collect_answers(self, record: Callable[[Answer], bool], *, expected: set[str] | None = None,
                        timeout: float = 0.0) -> list[Answer]: ...

    def close(self) -> None: ...


def safe_url(url: str) -> str:
    """scheme://host:port/vhost, without credentials, for logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path or ''}"


class OutboxOnlyTransport:
    """The embedded default: profiles are stored (status pending) and nothing is sent."""

    name = "outbox"

    def send(self, entries: Sequence[OutboxEntry]) -> list[SendResult]:
        return [SendResult(e.correlation_id, e.station_id, "pending", "outbox-only transport: not sent")
                for e in entries]

    def collect_answers(self, record: Callable[[Answer], bool], *, expected: set[str] | None = None,
                        timeout: float = 0.0) -> list[Answer]:
        return []

    def close(self) -> None:
        return None


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A verifying client TLS context: the system CAs, or `ca_file` (a private CA) when given."""
    return ssl.create_default_context(cafile=ca_file or None)


def amqp_parameters(url: str, connection_name: str = "cariflex-dispatch",
                    ca_file: str | None = None) -> pika.URLParameters:
    """pika parameters from an amqp:// or amqps:// URL (amqps verifies the server: system CAs or `ca_file`)."""
    parameters = pika.URLParameters(url)
    if url.startswith("amqps://"):
        parameters.ssl_options = pika.SSLOptions(tls_context(ca_file), urlsplit(url).hostname)
    parameters.client_properties = {"connection_name": connection_name}
    parameters.blocked_connection_timeout = 30
    return parameters


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
        connection = self._blocking("setup")
        try:
            channel = connection.channel()
            self._passive_exchange(channel)
            channel.queue_declare(self.answer_queue, durable=True)
            channel.queue_bind(self.answer_queue, self.exchange, routing_key="", arguments={
                "x-match": "all", "origin": "cs", "state": "2", "action": "SetChargingProfile"})
            self._answer_queue_ready = True
        finally:
            _close_quietly(connection)

    def _blocking(self, suffix: str) -> pika.BlockingConnection:
        try:
            return pika.BlockingConnection(self._parameters(suffix))
        except (pika.exceptions.AMQPError, OSError) as error:  # OSError: TLS verification, refused, DNS
            raise ConnectionError(f"RabbitMQ at {safe_url(self.url)} unreachable: {type(error).__name__}") from None

    def _passive_exchange(self, channel: Any) -> None:
        try:
            channel.exchange_declare(self.exchange, passive=True)
        except pika.exceptions.ChannelClosedByBroker as error:
            raise ConnectionError(
                f"exchange {self.exchange!r} not found on {safe_url(self.url)} (is CitrineOS running?): "
                f"{error.reply_text}") from None

    def envelope(self, entry: OutboxEntry) -> tuple[dict[str, str], bytes]:
        return csms_request(station_id=entry.station_id, tenant_id=self.tenant_id, action="SetChargingProfile",
                            payload=entry.payload, correlation_id=entry.correlation_id,
                            version=self.envelope_version)

    def send(self, entries: Sequence[OutboxEntry]) -> list[SendResult]:
        if not entries:
            return []
        self.ensure_answer_queue()
        messages = [(e.correlation_id, e.station_id, *self.envelope(e)) for e in entries]
        return publish_confirmed(self._parameters("publish"), self.exchange, messages, window=self.window,
                                 timeout=self.confirm_timeout, fault_hook=self.fault_hook,
                                 where=safe_url(self.url))

    def collect_answers(self, record: Callable[[Answer], bool], *, expected: set[str] | None = None,
                        timeout: float = 0.0) -> list[Answer]:
        """Drain station answers into `record`; wait up to `timeout` s while expected ids are unanswered."""
        self.ensure_answer_queue()
        waiting = set(expected or ())
        answers: list[Answer] = []
        connection = self._blocking("answers")
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=500)
            deadline = time.monotonic() + timeout
            for method, properties, body in channel.consume(self.answer_queue, inactivity_timeout=0.05):
                if method is None:
                    if not waiting or time.monotonic() >= deadline:
                        break
                    continue
                answer = _parse_answer(properties.headers, body)
                if answer is None:
                    LOG.warning("answer queue %s: dropping a message that is not a SetChargingProfile answer",
                                self.answer_queue)
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
            _close_quietly(connection)
        return answers

    def close(self) -> None:
        return None


def _parse_answer(headers: dict[str, Any] | None, body: bytes) -> Answer | None:
    try:
        message = decode(headers, body)
    except EnvelopeError:
        return None
    if message.action != "SetChargingProfile" or message.state != 2 or not message.correlation_id:
        return None
    status = message.payload.get("status")
    info = message.payload.get("statusInfo") or {}
    reason = " ".join(str(info.get(k, "")) for k in ("reasonCode", "additionalInfo") if info.get(k)).strip()
    return Answer(message.correlation_id, message.station_id, str(status), reason)


def _close_quietly(connection: Any) -> None:
    try:
        if connection.is_open:
            connection.close()
    except Exception:  # closing a broken connection must not mask the real error
        LOG.debug("closing the AMQP connection failed", exc_info=True)


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
                results[corr] = SendResult(corr, stations[corr], "unroutable",
                                           f"no queue bound for station {stations[corr]} (offline?): "
                                           f"{returned[corr]}")
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


class RestTransport:
    """CitrineOS REST: one POST per profile; `success: true` only means 'handed to the bus' (status sent)."""

    name = "rest"

    def __init__(self, base_url: str, *, tenant_id: str = "1", token: str | None = None,
                 callback_url: str | None = None, timeout: float = 10.0, ca_file: str | None = None,
                 client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.tenant_id = str(tenant_id)
        self.callback_url = callback_url
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = client or httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers,
                                              verify=tls_context(ca_file))

    def send(self, entries: Sequence[OutboxEntry]) -> list[SendResult]:
        out = []
        for entry in entries:
            params: dict[str, str] = {"identifier": entry.station_id, "tenantId": self.tenant_id}
            if self.callback_url:
                params["callbackUrl"] = self.callback_url
            try:
                response = self._client.post("/ocpp/2.0.1/smartcharging/setChargingProfile", params=params,
                                             json=entry.payload)
            except httpx.HTTPError as error:
                out.append(SendResult(entry.correlation_id, entry.station_id, "failed",
                                      f"CitrineOS at {safe_url(self.base_url)}: {type(error).__name__}"))
                continue
            out.append(self._result(entry, response))
        return out

    def _result(self, entry: OutboxEntry, response: httpx.Response) -> SendResult:
        corr, station = entry.correlation_id, entry.station_id
        try:
            body = response.json()
        except (json.JSONDecodeError, ValueError):
            body = response.text[:300]
        if response.status_code != 200:
            return SendResult(corr, station, "failed", f"HTTP {response.status_code}: {json.dumps(body)[:300]}")
        first = body[0] if isinstance(body, list) and body else body
        if isinstance(first, dict) and first.get("success") is True:
            return SendResult(corr, station, "sent")
        detail = str(first.get("payload", "")) if isinstance(first, dict) else str(first)
        if "No connection found" in detail:
            return SendResult(corr, station, "unroutable", detail)
        return SendResult(corr, station, "failed", detail or "success false")

    def collect_answers(self, record: Callable[[Answer], bool], *, expected: set[str] | None = None,
                        timeout: float = 0.0) -> list[Answer]:
        return []  # answers come to callbackUrl when configured; CitrineOS keeps its own correlation ids

    def close(self) -> None:
        self._client.close()
