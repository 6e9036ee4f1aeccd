"""Publishing onto CitrineOS's exchange with mandatory=True and publisher confirms, pipelined on a pika
SelectConnection: nothing is believed sent that RabbitMQ did not route and confirm.

Up to `window` messages are in flight. A returned message is 'unroutable' (RabbitMQ sends basic.return before
the ack), an acked one 'sent', a nacked one 'failed'. If the connection drops, messages published but not
confirmed are 'failed' and flagged uncertain (the station may have them); messages never published are
'failed'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pika
import pika.exceptions

from cariflex_pipeline.dispatch.transports import SendResult

# (correlation id, station, AMQP headers, body)
Message = tuple[str, str, dict[str, str], bytes]


def publish_confirmed(parameters: pika.connection.Parameters, exchange: str, messages: Sequence[Message], *,
                      window: int = 512, timeout: float = 30.0, where: str = "RabbitMQ") -> list[SendResult]:
    """Publish the messages and return one result per message, in their order."""
    return _ConfirmedPublish(parameters, exchange, messages, window=window, timeout=timeout, where=where).run()


class _ConfirmedPublish:
    """One pipelined publish: the pika callbacks as methods, the outcome per correlation id."""

    def __init__(self, parameters: pika.connection.Parameters, exchange: str, messages: Sequence[Message], *,
                 window: int, timeout: float, where: str) -> None:
        self.parameters, self.exchange, self.messages = parameters, exchange, messages
        self.window, self.timeout, self.where = max(1, window), timeout, where
        self.stations = {corr: station for corr, station, _, _ in messages}
        self.in_flight: dict[int, str] = {}  # delivery tag -> correlation id, published and not yet confirmed
        self.results: dict[str, SendResult] = {}
        self.returned: dict[str, str] = {}  # correlation id -> "312 NO_ROUTE"
        self.next_index = 0
        self.tag = 0
        self.error: BaseException | None = None
        self.channel: Any = None

    def run(self) -> list[SendResult]:
        connection = pika.SelectConnection(self.parameters, on_open_callback=self._on_open,
                                           on_open_error_callback=self._on_open_error,
                                           on_close_callback=self._on_closed)
        timer = connection.ioloop.call_later(self.timeout, lambda: self._on_timeout(connection))
        try:
            connection.ioloop.start()
        finally:
            connection.ioloop.remove_timeout(timer)
        return self._outcome()

    # --- connection and channel ------------------------------------------------------------------------------
    def _on_open(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_open_error(self, connection: Any, error: BaseException) -> None:
        self.error = error
        connection.ioloop.stop()

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        # passive: CitrineOS owns the exchange; a missing one closes the channel with 404
        channel.exchange_declare(self.exchange, passive=True, callback=lambda _frame: channel.confirm_delivery(
            self._on_confirm, callback=lambda _f: self._publish_more()))

    def _on_channel_closed(self, channel: Any, reason: BaseException) -> None:
        self.error = self.error or reason
        if channel.connection.is_open:
            channel.connection.close()

    def _on_closed(self, connection: Any, reason: BaseException) -> None:
        if not isinstance(reason, pika.exceptions.ConnectionClosedByClient) or reason.reply_code != 200:
            self.error = self.error or reason
        connection.ioloop.stop()

    def _on_timeout(self, connection: Any) -> None:
        self.error = self.error or TimeoutError(f"no confirms within {self.timeout} s")
        if connection.is_open:
            connection.close()

    # --- publishing and confirms -----------------------------------------------------------------------------
    def _publish_more(self) -> None:
        channel = self.channel
        while self.next_index < len(self.messages) and len(self.in_flight) < self.window and channel.is_open:
            corr, _station, headers, body = self.messages[self.next_index]
            properties = pika.BasicProperties(headers=headers, content_type="application/json",
                                              content_encoding="utf-8", correlation_id=corr, message_id=corr,
                                              delivery_mode=1)
            channel.basic_publish(self.exchange, "", body, properties, mandatory=True)
            self.next_index += 1
            self.tag += 1
            self.in_flight[self.tag] = corr
        if self.next_index >= len(self.messages) and not self.in_flight and channel.connection.is_open:
            channel.connection.close()

    def _on_return(self, _channel: Any, method: Any, properties: Any, _body: bytes) -> None:
        self.returned[properties.correlation_id] = f"{method.reply_code} {method.reply_text}"

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        tags = [t for t in self.in_flight if t <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        for tag in tags:
            corr = self.in_flight.pop(tag, None)
            if corr is not None:
                self.results[corr] = self._confirmed(corr, acked)
        if self.channel is not None and self.channel.is_open:
            self._publish_more()

    def _confirmed(self, corr: str, acked: bool) -> SendResult:
        station = self.stations[corr]
        if corr in self.returned:
            return SendResult(corr, station, "unroutable", self.returned[corr])
        if acked:
            return SendResult(corr, station, "sent")
        return SendResult(corr, station, "failed", "nacked by the broker")

    def _outcome(self) -> list[SendResult]:
        error = self.error
        detail = f"{type(error).__name__}: {error}" if error else "not confirmed"
        if isinstance(error, pika.exceptions.ChannelClosedByBroker) and error.reply_code == 404:
            detail = f"exchange {self.exchange!r} not found on {self.where}"
        published = set(self.in_flight.values())
        out: list[SendResult] = []
        for corr, station, _, _ in self.messages:
            if corr in self.results:
                out.append(self.results[corr])
            elif corr in published:
                out.append(SendResult(corr, station, "failed",
                                      f"connection to {self.where} lost before confirm ({detail})", uncertain=True))
            else:
                out.append(SendResult(corr, station, "failed", f"not published: {detail}"))
        return out
