"""A CitrineOS-shaped router and simulated OCPP 2.0.1 stations for the dispatch tests.

This is test scaffolding, not a mock of our code: it stands in for CitrineOS 1.8 (which cannot run here).
- The router binds one queue per *connected* station, exactly as CitrineOS 1.8's OcppRouter does:
  headers exchange, `{x-match: all, tenantId, stationId, state: "1", origin: "csms"}` (or
  `ocppConnectionName` for the later envelope).
- Each SetChargingProfile taken from that queue is sent to the station over a loopback websocket as
  `[2, correlationId, "SetChargingProfile", payload]` by an `ocpp` v201 ChargePoint (which validates it against
  the OCPP 2.0.1 schema), and the station's answer is published with CitrineOS's headers
  (origin=cs, state="2", action=SetChargingProfile, same correlationId).
- Stations are `ocpp` v201 ChargePoints answering Accepted or Rejected and recording every call they get.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

import pika
import websockets
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

from cariflex_pipeline.dispatch.envelope import decode, station_key, station_message


@dataclass
class Received:
    message_id: str
    evse_id: int
    charging_profile: dict[str, Any]


class SimStation(ChargePoint):
    """A charging station: answers SetChargingProfile with its configured status and records each call."""

    def __init__(self, station_id: str, connection: Any, answer: str = "Accepted") -> None:
        super().__init__(station_id, connection)
        self.answer = answer
        self.received: list[Received] = []

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict, call_unique_id: str, **_: Any):
        self.received.append(Received(call_unique_id, evse_id, charging_profile))
        info = None if self.answer == "Accepted" else {"reason_code": "InvalidSchedule"}
        return call_result.SetChargingProfile(status=self.answer, status_info=info)


class CsmsSide(ChargePoint):
    """The CSMS end of one station's websocket (CitrineOS's side)."""


@dataclass
class _Link:
    station: SimStation
    csms: CsmsSide | None = None
    consumer: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)


class CitrineRouter:
    """Runs the websocket server, the stations and one AMQP consumer thread per connected station."""

    def __init__(self, amqp_url: str, exchange: str, *, tenant_id: str = "1", envelope_version: str = "1.8"):
        self.amqp_url = amqp_url
        self.exchange = exchange
        self.tenant_id = tenant_id
        self.envelope_version = envelope_version
        self.links: dict[str, _Link] = {}
        self.forwarded = 0
        self.errors: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None
        self._csms_ready: dict[str, asyncio.Future] = {}
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> CitrineRouter:
        self._thread.start()
        self._run(self._serve())
        return self

    def _run(self, coroutine: Any, timeout: float = 20.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _serve(self) -> None:
        self._server = await websockets.serve(self._on_connect, "127.0.0.1", 0, subprotocols=["ocpp2.0.1"])
        self.port = self._server.sockets[0].getsockname()[1]

    async def _on_connect(self, websocket: Any) -> None:
        station_id = websocket.request.path.strip("/")
        csms = CsmsSide(station_id, websocket, response_timeout=10)
        self._csms_ready[station_id].set_result(csms)
        with contextlib.suppress(websockets.ConnectionClosed):
            await csms.start()

    def connect(self, station_id: str, answer: str = "Accepted") -> SimStation:
        """Connect a simulated station and bind its queue, as CitrineOS does when a station connects."""
        station = self._run(self._connect_station(station_id, answer))
        link = self.links[station_id]
        bound = threading.Event()
        link.consumer = threading.Thread(target=self._consume, args=(station_id, link, bound), daemon=True)
        link.consumer.start()
        if not bound.wait(10):
            raise RuntimeError(f"router queue for {station_id} not bound")
        return station

    async def _connect_station(self, station_id: str, answer: str) -> SimStation:
        self._csms_ready[station_id] = self._loop.create_future()
        websocket = await websockets.connect(f"ws://127.0.0.1:{self.port}/{station_id}",
                                             subprotocols=["ocpp2.0.1"])
        station = SimStation(station_id, websocket, answer)
        self._loop.create_task(self._station_loop(station))
        csms = await asyncio.wait_for(self._csms_ready[station_id], 10)
        self.links[station_id] = _Link(station, csms)
        return station

    @staticmethod
    async def _station_loop(station: SimStation) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await station.start()

    def _consume(self, station_id: str, link: _Link, bound: threading.Event) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        channel.queue_bind(queue, self.exchange, routing_key="", arguments={
            "x-match": "all", "tenantId": self.tenant_id, station_key(self.envelope_version): station_id,
            "state": "1", "origin": "csms"})
        bound.set()
        try:
            for method, properties, body in channel.consume(queue, inactivity_timeout=0.1):
                if link.stop.is_set():
                    break
                if method is None:
                    continue
                self._forward(channel, station_id, link, properties, body)
                channel.basic_ack(method.delivery_tag)
        finally:
            with contextlib.suppress(Exception):
                connection.close()

    def _forward(self, channel: Any, station_id: str, link: _Link, properties: Any, body: bytes) -> None:
        message = decode(properties.headers, body)
        if message.action != "SetChargingProfile":
            self.errors.append(f"{station_id}: unexpected action {message.action}")
            return
        request = call.SetChargingProfile(evse_id=message.payload["evseId"],
                                          charging_profile=message.payload["chargingProfile"])
        try:
            response = self._run(link.csms.call(request, unique_id=message.correlation_id, suppress=False))
        except Exception as error:  # CitrineOS only logs a failing call; the test inspects `errors`
            self.errors.append(f"{station_id}: {type(error).__name__}: {error}")
            return
        self.forwarded += 1
        payload: dict[str, Any] = {"status": str(response.status)}
        if response.status_info:
            payload["statusInfo"] = {"reasonCode": response.status_info["reason_code"]}
        headers, answer = station_message(station_id=station_id, tenant_id=self.tenant_id,
                                          action="SetChargingProfile", state=2, payload=payload,
                                          correlation_id=message.correlation_id,
                                          version=self.envelope_version)
        channel.basic_publish(self.exchange, "", answer, pika.BasicProperties(
            headers=headers, content_type="application/json", content_encoding="utf-8"))

    def stop(self) -> None:
        for link in self.links.values():
            link.stop.set()
        for link in self.links.values():
            if link.consumer is not None:
                link.consumer.join(5)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                self._run(self._server.wait_closed(), timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def declare_citrineos_exchange(amqp_url: str, exchange: str) -> None:
    """Declare the exchange as CitrineOS 1.8 does: headers type, non-durable."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().exchange_declare(exchange, exchange_type="headers", durable=False)
    finally:
        connection.close()


def delete_names(amqp_url: str, exchange: str | None = None, queues: tuple[str, ...] = ()) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        for queue in queues:
            channel.queue_delete(queue)
        if exchange:
            channel.exchange_delete(exchange)
    finally:
        connection.close()
