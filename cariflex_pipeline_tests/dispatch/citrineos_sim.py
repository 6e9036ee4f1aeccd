"""A CitrineOS-shaped router and simulated OCPP 2.0.1 stations for the dispatch tests.

This is test scaffolding, not a mock of our code: it stands in for CitrineOS 1.8.3 (which cannot run here).
- The router binds one queue per *connected* station, exactly as CitrineOS 1.8's OcppRouter does:
  headers exchange, `{x-match: all, tenantId, stationId, state: "1", origin: "csms"}` (or
  `ocppConnectionName` for the later envelope).
- Like CitrineOS, it validates each payload against CitrineOS 1.8.3's own schema before sending it on; a payload
  that fails is acknowledged and dropped without an answer (`dropped`), as CitrineOS only logs a FormatViolation.
  It does the same with the station's answer (CitrineOS's `_onCallResult` validates it too).
- SetChargingProfile, ClearChargingProfile and GetCompositeSchedule go to the station over a loopback websocket
  as `[2, correlationId, action, payload]` by an `ocpp` v201 ChargePoint (which validates against the OCPP 2.0.1
  schema); the station's answer is published with CitrineOS's headers (origin=cs, state="2", action, same
  correlationId).
- Stations are `ocpp` v201 ChargePoints whose profiles behave as a station's do (`StationProfiles`: replace by
  id, duplicate stack levels refused, TxProfiles need their transaction, composite schedules). Each station's
  queue also receives the TransactionEvents published for it (as CitrineOS relays them from the station), so the
  station knows which transaction runs on which EVSE, in the order the bus delivered them.
- Fault knobs: `drop_next` loses messages as a broker restart or a CitrineOS crash would, `delay_answers` holds
  a station's answers back; `citrineos_tx_profile` installs the TxProfile CitrineOS sends on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pika
import websockets
from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

from cariflex_pipeline.dispatch.envelope import EnvelopeError, decode, station_key, station_message
from cariflex_pipeline.dispatch.peer_schemas import violations
from cariflex_pipeline_tests.dispatch.station_model import StationProfiles

FORWARDED_ACTIONS = ("SetChargingProfile", "ClearChargingProfile", "GetCompositeSchedule")


@dataclass
class Received:
    message_id: str
    evse_id: int
    charging_profile: dict[str, Any]  # snake_case, as the `ocpp` library hands it to the handler
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))  # for latency measurements


class SimStation(ChargePoint):
    """A charging station: keeps its profiles as a station does (`profiles`), answers SetChargingProfile,
    ClearChargingProfile and GetCompositeSchedule from them, and records each SetChargingProfile call.

    `answer` other than "Accepted" makes it refuse every profile (reasonCode InvalidSchedule) without keeping it.
    `clock` is the station's "now" for composite schedules."""

    def __init__(self, station_id: str, connection: Any, answer: str = "Accepted", **station: Any) -> None:
        super().__init__(station_id, connection)
        self.answer = answer
        self.profiles = StationProfiles(station_id, **station)
        self.received: list[Received] = []
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict, call_unique_id: str, **_: Any):
        self.received.append(Received(call_unique_id, evse_id, charging_profile))
        if self.answer != "Accepted":
            return call_result.SetChargingProfile(status=self.answer, status_info={"reason_code": "InvalidSchedule"})
        status, reason = self.profiles.set_profile(evse_id, snake_to_camel_case(charging_profile))
        return call_result.SetChargingProfile(status=status,
                                              status_info=None if reason is None else {"reason_code": reason})

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, charging_profile_id: int | None = None,
                                  charging_profile_criteria: dict | None = None, **_: Any):
        request = remove_nones({"chargingProfileId": charging_profile_id,
                                "chargingProfileCriteria": snake_to_camel_case(charging_profile_criteria)})
        return call_result.ClearChargingProfile(status=self.profiles.clear(request))

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, duration: int, evse_id: int, charging_rate_unit: str = "W", **_: Any):
        # without a chargingRateUnit the station picks one: W
        schedule = self.profiles.composite(evse_id, duration, charging_rate_unit, self.clock())
        return call_result.GetCompositeSchedule(status="Accepted", schedule=camel_to_snake_case(schedule))


class CsmsSide(ChargePoint):
    """The CSMS end of one station's websocket (CitrineOS's side)."""


@dataclass
class _Link:
    station: SimStation
    csms: CsmsSide | None = None
    consumer: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)


def citrineos_tx_profile_request(transaction_id: str, evse_id: int, *, profile_id: int, schedule_id: int,
                                 now: datetime) -> dict[str, Any]:
    """The SetChargingProfileRequest CitrineOS 1.8.3 sends a station on its own after it accepts a
    NotifyEVChargingNeeds from an AC three-phase EV (evMinCurrent 6 A, evMaxCurrent 32 A, no departureTime):
    `InternalSmartCharging.calculateChargingProfile` in 03_Modules/SmartCharging. Its next profile and schedule
    ids, stack level 0 (getNextStackLevel: the transaction's first), Absolute without startSchedule, validFrom now
    (JavaScript's toISOString), no validTo or duration without a departure time, one period of evMaxCurrent A."""
    valid_from = now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"evseId": evse_id, "chargingProfile": {
        "id": profile_id, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Absolute",
        "validFrom": valid_from, "transactionId": transaction_id,
        "chargingSchedule": [{"id": schedule_id, "chargingRateUnit": "A", "minChargingRate": 6.0,
                              "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 32.0, "numberPhases": 3}]}]}}


class CitrineRouter:
    """Runs the websocket server, the stations and one AMQP consumer thread per connected station.

    `forwarded` counts calls the stations answered; `errors` lists calls that failed on the websocket;
    `dropped` (station, correlationId, violations) the payloads CitrineOS's schema refused; `lost`
    (station, correlationId) the messages `drop_next` lost."""

    def __init__(self, amqp_url: str, exchange: str, *, tenant_id: str = "1", envelope_version: str = "1.8"):
        self.amqp_url = amqp_url
        self.exchange = exchange
        self.tenant_id = tenant_id
        self.envelope_version = envelope_version
        self.links: dict[str, _Link] = {}
        self.forwarded = 0
        self.errors: list[str] = []
        self.dropped: list[tuple[str, str | None, list[str]]] = []
        self.lost: list[tuple[str, str | None]] = []
        self._faults = threading.Lock()
        self._drops: dict[str, int] = {}
        self._delays: dict[str, float] = {}
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

    def connect(self, station_id: str, answer: str = "Accepted", *, transactions: dict[int, str] | None = None,
                **station: Any) -> SimStation:
        """Connect a simulated station and bind its queue, as CitrineOS does when a station connects.
        `transactions` (evseId -> transactionId) already run on it; `station` configures its StationProfiles
        (max_power_w, voltage, phases)."""
        simulated = self._run(self._connect_station(station_id, answer, station))
        simulated.profiles.active_transactions.update(transactions or {})
        link = self.links[station_id]
        bound = threading.Event()
        link.consumer = threading.Thread(target=self._consume, args=(station_id, link, bound), daemon=True)
        link.consumer.start()
        if not bound.wait(10):
            raise RuntimeError(f"router queue for {station_id} not bound")
        return simulated

    async def _connect_station(self, station_id: str, answer: str, station: dict[str, Any]) -> SimStation:
        self._csms_ready[station_id] = self._loop.create_future()
        websocket = await websockets.connect(f"ws://127.0.0.1:{self.port}/{station_id}",
                                             subprotocols=["ocpp2.0.1"])
        simulated = SimStation(station_id, websocket, answer, **station)
        self._loop.create_task(self._station_loop(simulated))
        csms = await asyncio.wait_for(self._csms_ready[station_id], 10)
        self.links[station_id] = _Link(simulated, csms)
        return simulated

    @staticmethod
    async def _station_loop(station: SimStation) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await station.start()

    # --- fault knobs -----------------------------------------------------------------------------------------
    def drop_next(self, station_id: str, n: int = 1) -> None:
        """Lose the next `n` messages for the station without a trace on the bus (acked, never sent on), as a
        broker restart or a CitrineOS crash would; each is listed in `lost`."""
        with self._faults:
            self._drops[station_id] = self._drops.get(station_id, 0) + n

    def delay_answers(self, station_id: str, seconds: float) -> None:
        """Publish the station's answers `seconds` late (0: on time again); its next calls wait meanwhile, as
        CitrineOS allows one call in flight per station."""
        with self._faults:
            self._delays[station_id] = seconds

    def _take_drop(self, station_id: str) -> bool:
        with self._faults:
            if self._drops.get(station_id, 0) <= 0:
                return False
            self._drops[station_id] -= 1
            return True

    # --- what CitrineOS does on its own ----------------------------------------------------------------------
    def citrineos_tx_profile(self, station_id: str, transaction_id: str, evse_id: int = 1, *,
                             now: datetime | None = None) -> dict[str, Any]:
        """Send the station the stack-level-0, 32 A TxProfile CitrineOS 1.8.3 sends after an accepted
        NotifyEVChargingNeeds (see `citrineos_tx_profile_request`; validFrom `now`, by default the clock's) and
        publish the answer as the router does; returns the request. Raises when the station does not accept it."""
        link = self.links[station_id]
        held = [profile for _, profile in link.station.profiles.installed()]
        request = citrineos_tx_profile_request(
            transaction_id, evse_id, profile_id=max((p["id"] for p in held), default=0) + 1,
            schedule_id=max((s["id"] for p in held for s in p["chargingSchedule"]), default=0) + 1,
            now=now or datetime.now(UTC))
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            answer = self._deliver(connection.channel(), station_id, link, "SetChargingProfile", request,
                                   str(uuid.uuid4()))
        finally:
            connection.close()
        if answer is None or answer["status"] != "Accepted":
            raise RuntimeError(f"station {station_id} did not accept CitrineOS's TxProfile for {transaction_id}: "
                               f"answer {answer}, errors {self.errors}, dropped {self.dropped}")
        return request

    # --- the bus ---------------------------------------------------------------------------------------------
    def _consume(self, station_id: str, link: _Link, bound: threading.Event) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        station = {"x-match": "all", "tenantId": self.tenant_id, station_key(self.envelope_version): station_id}
        channel.queue_bind(queue, self.exchange, routing_key="", arguments={**station, "state": "1",
                                                                            "origin": "csms"})
        channel.queue_bind(queue, self.exchange, routing_key="", arguments={**station, "state": "1", "origin": "cs",
                                                                            "action": "TransactionEvent"})
        bound.set()
        try:
            for method, properties, body in channel.consume(queue, inactivity_timeout=0.1):
                if link.stop.is_set():
                    break
                if method is None:
                    continue
                self._handle(channel, station_id, link, properties, body)
                channel.basic_ack(method.delivery_tag)
        finally:
            with contextlib.suppress(Exception):
                connection.close()

    def _handle(self, channel: Any, station_id: str, link: _Link, properties: Any, body: bytes) -> None:
        try:
            message = decode(properties.headers, body)
        except EnvelopeError as error:  # CitrineOS logs and drops what it cannot read
            self.errors.append(f"{station_id}: {error}")
            return
        if message.origin == "cs":
            self._run(self._follow_transaction(link.station, message.payload))
        elif self._take_drop(station_id):
            self.lost.append((station_id, message.correlation_id))
        else:
            self._deliver(channel, station_id, link, message.action, message.payload, message.correlation_id)

    @staticmethod
    async def _follow_transaction(station: SimStation, event: dict[str, Any]) -> None:
        """Apply a TransactionEvent to the station's transactions (on the event loop, with its handlers)."""
        transaction = (event.get("transactionInfo") or {}).get("transactionId")
        running = station.profiles.active_transactions
        evse_id = (event.get("evse") or {}).get("id")
        if evse_id is None:  # Updated and Ended events may leave the EVSE out
            evse_id = next((evse for evse, tx in running.items() if tx == transaction), None)
        if transaction is None or evse_id is None:
            return
        if event.get("eventType") == "Ended":
            station.profiles.end_transaction(evse_id)
        else:
            running[evse_id] = transaction

    def _deliver(self, channel: Any, station_id: str, link: _Link, action: str, payload: dict[str, Any],
                 correlation_id: str | None) -> dict[str, Any] | None:
        """Validate, send to the station, validate its answer and publish it, as CitrineOS's router does; returns
        the answer payload, None when nothing was published."""
        if action not in FORWARDED_ACTIONS:
            self.errors.append(f"{station_id}: unexpected action {action}")
            return None
        problems = violations(action, payload)
        if problems:
            self.dropped.append((station_id, correlation_id, problems))
            return None
        request = getattr(call, action)(**camel_to_snake_case(payload))
        try:
            response = self._run(link.csms.call(request, unique_id=correlation_id, suppress=False))
        except Exception as error:  # CitrineOS only logs a failing call; the test inspects `errors`
            self.errors.append(f"{station_id}: {action} {type(error).__name__}: {error}")
            return None
        self.forwarded += 1
        answer = json.loads(json.dumps(snake_to_camel_case(remove_nones(serialize_as_dict(response)))))
        problems = violations(action, answer, "Response")
        if problems:
            self.dropped.append((station_id, correlation_id, problems))
            return None
        with self._faults:
            delay = self._delays.get(station_id, 0.0)
        if delay:
            channel.connection.sleep(delay)  # keeps the AMQP connection serviced meanwhile
        headers, body = station_message(station_id=station_id, tenant_id=self.tenant_id, action=action, state=2,
                                        payload=answer, correlation_id=correlation_id or "",
                                        version=self.envelope_version)
        channel.basic_publish(self.exchange, "", body, pika.BasicProperties(
            headers=headers, content_type="application/json", content_encoding="utf-8"))
        return answer

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
