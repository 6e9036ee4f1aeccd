"""The session queue on the CitrineOS bus: station requests in, sessions and measured power out.

A durable queue of our own is bound to the CitrineOS exchange once per station request we follow
(origin=cs, state="1", action=TransactionEvent | MeterValues | StatusNotification | NotifyEVChargingNeeds), and
once for CitrineOS's answer to NotifyEVChargingNeeds (origin=csms, state="2", action=NotifyEVChargingNeeds): EV
needs apply only if CitrineOS accepted them. `SessionConsumer.drain()` applies each message with `SessionBook` and
writes the measured power of the drained samples as slot averages, continuing what earlier drains stored for the
same slots.

Request and answer share this one queue. CitrineOS's module publishes its answer only after it has consumed the
request, which the exchange had routed to our queue as well, so the request is normally ahead of its answer; the
book does not rely on it (an answer seen first is kept and decides the request when it comes).

A malformed or unexpected message is published to a dead-letter queue with the reason in its headers
(`x-cariflex-reason`) and acknowledged; the consumer keeps going. One consumer serves the whole portfolio: the
book's stations (`stations_from_portfolio`) give each station's site, which every row it writes carries. A message
from a station that no site of the portfolio has is logged, counted (`unknown_station`, `unknown_stations`) and
acknowledged; nothing is stored for it (its site would be "", NO_SITE). Messages are acknowledged only after their
data is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import pika

from cariflex_pipeline.dispatch.connections import close_quietly, connect_blocking, declare_exchange_passively
from cariflex_pipeline.dispatch.envelope import EnvelopeError, decode
from cariflex_pipeline.dispatch.meter import SlotCoverage, power_frame
from cariflex_pipeline.dispatch.profiles import floor_to_grid
from cariflex_pipeline.dispatch.sessions import (
    ANSWERED_ACTIONS,
    FOLLOWED_ACTIONS,
    STANDING_ANSWERS,
    SessionBook,
    SessionChange,
    SessionMessageError,
    UnknownStationError,
    needs_answer,
)

LOG = logging.getLogger(__name__)


@dataclass
class DrainReport:
    processed: int = 0
    dead_lettered: int = 0
    unknown_station: int = 0
    unknown_stations: set[str] = field(default_factory=set)  # ids of the stations no site of the portfolio has
    beliefs_written: int = 0
    changes: list[SessionChange] = field(default_factory=list)
    dead_letter_reasons: list[str] = field(default_factory=list)
    needs_answers: int = 0  # CitrineOS's answers to NotifyEVChargingNeeds applied in this drain
    needs_rejected: list[str] = field(default_factory=list)  # "CP001: Rejected (reason)": needs not applied


class SessionConsumer:
    """Drains our session queue: station requests -> sessions, station status and measured power."""

    def __init__(
        self,
        url: str,
        book: SessionBook,
        *,
        write_beliefs: Callable[[pd.DataFrame], int] | None = None,
        read_beliefs: Callable[[list[int], datetime, datetime], pd.DataFrame] | None = None,
        exchange: str = "citrineos",
        queue: str = "cariflex.sessions",
        dead_letter_queue: str | None = None,
        tenant_id: str | None = None,
        connection_name: str = "cariflex-sessions",
        ca_file: str | None = None,
    ) -> None:
        self.url = url
        self.ca_file = ca_file
        self.book = book
        self.write_beliefs = write_beliefs
        self.read_beliefs = read_beliefs  # (sensor ids, start, end) -> the measured power already stored
        self.exchange = exchange
        self.queue = queue
        self.dead_letter_queue = dead_letter_queue or f"{queue}.dead"
        self.tenant_id = tenant_id
        self.connection_name = connection_name

    def setup(self, channel: Any) -> None:
        """Check CitrineOS's exchange, declare our durable queue and its dead letters, bind what we follow."""
        declare_exchange_passively(channel, self.exchange, self.url)
        channel.queue_declare(self.dead_letter_queue, durable=True)
        channel.queue_declare(self.queue, durable=True)
        bindings = [("cs", "1", action) for action in FOLLOWED_ACTIONS]
        bindings += [("csms", "2", action) for action in ANSWERED_ACTIONS]
        for origin, state, action in bindings:
            arguments = {"x-match": "all", "origin": origin, "state": state, "action": action}
            if self.tenant_id is not None:
                arguments["tenantId"] = str(self.tenant_id)
            channel.queue_bind(self.queue, self.exchange, routing_key="", arguments=arguments)

    def ensure_queue(self) -> None:
        """Declare and bind our queue now, so that nothing published from here on is missed."""
        connection = connect_blocking(self.url, self.connection_name, self.ca_file)
        try:
            self.setup(connection.channel())
        finally:
            close_quietly(connection)

    def drain(self, max_messages: int = 10_000, idle_timeout: float = 0.2,
              now: Callable[[], datetime] | None = None) -> DrainReport:
        """Consume what is queued (up to `max_messages`), then return. Acks only after the data is stored."""
        report = DrainReport()
        samples: list[tuple[int, datetime, float]] = []
        connection = connect_blocking(self.url, self.connection_name, self.ca_file)
        try:
            channel = connection.channel()
            self.setup(channel)
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=200)
            to_ack: list[int] = []
            for method, properties, body in channel.consume(self.queue, inactivity_timeout=idle_timeout):
                if method is None:
                    break
                headers = dict(properties.headers or {})
                try:
                    message = decode(headers, body)
                    changes, new_samples = self.book.apply(message, now() if now else None)
                    report.changes += changes
                    samples += new_samples
                    report.processed += 1
                    if message.state == 2:
                        self._count_answer(message.station_id, message.payload, report)
                except (EnvelopeError, SessionMessageError, UnknownStationError, TypeError, ValueError) as error:
                    if isinstance(error, UnknownStationError):
                        LOG.warning("%s: message ignored", error)
                        report.unknown_station += 1
                        report.unknown_stations.add(error.station_id)
                    else:
                        reason = str(error) or type(error).__name__
                        self._dead_letter(channel, headers, body, reason)
                        report.dead_lettered += 1
                        report.dead_letter_reasons.append(reason)
                to_ack.append(method.delivery_tag)
                if len(to_ack) >= max_messages:
                    break
            self._store_samples(samples, report)
            if to_ack:
                channel.basic_ack(to_ack[-1], multiple=True)
            channel.cancel()
        finally:
            close_quietly(connection)
        return report

    @staticmethod
    def _count_answer(station_id: str, payload: dict[str, Any], report: DrainReport) -> None:
        answer, reason = needs_answer(payload)
        report.needs_answers += 1
        if answer not in STANDING_ANSWERS:
            report.needs_rejected.append(f"{station_id}: {answer}" + (f" ({reason})" if reason else ""))

    def _store_samples(self, samples: list[tuple[int, datetime, float]], report: DrainReport) -> None:
        if not samples or self.write_beliefs is None:
            return
        resolution = next(iter(self.book.stations.values())).resolution
        previous: SlotCoverage = {}
        if self.read_beliefs is not None:
            slots = [floor_to_grid(at, resolution) for _, at, _ in samples]
            stored = self.read_beliefs(sorted({sensor for sensor, _, _ in samples}), min(slots),
                                       max(slots) + resolution)
            for row in stored.itertuples():
                previous[(int(row.sensor_id), row.event_start.to_pydatetime())] = (
                    float(row.value), row.belief_time.to_pydatetime())
        frame = power_frame(samples, resolution, previous)
        report.beliefs_written = self.write_beliefs(frame)

    def _dead_letter(self, channel: Any, headers: dict[str, Any], body: bytes, reason: str) -> None:
        LOG.warning("session queue %s: dead-lettering a message: %s", self.queue, reason)
        dead_headers = {k: v for k, v in headers.items() if isinstance(v, str | int | float | bool)}
        dead_headers.update({"x-cariflex-reason": reason[:1000], "x-cariflex-queue": self.queue})
        channel.basic_publish("", self.dead_letter_queue, body,
                              pika.BasicProperties(headers=dead_headers, delivery_mode=2,
                                                   content_type="application/json"))
