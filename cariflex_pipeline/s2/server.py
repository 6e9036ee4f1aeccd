"""The S2 CEM endpoint: resource managers connect over a websocket, declare FRBC, report their state, and get the
instructions staged in the store.

One `CemSession` per connection. It answers every message with a ReceptionStatus (a refusal names the field and
keeps the connection up, `protocol.py`), keeps what the RM reports in the store (`state.py`), and polls the store
for instructions to send, revocations to send and answers overdue. An RM is a site device when its
ResourceManagerDetails `name` is the name of one of the devices served (every site's batteries and V2G chargers,
names unique across the portfolio); its resource row and its messages carry that device's site, "" (NO_SITE) while
it has named none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from s2python.common import (
    ControlType,
    Handshake,
    HandshakeResponse,
    InstructionStatus,
    InstructionStatusUpdate,
    PowerMeasurement,
    ReceptionStatus,
    ReceptionStatusValues,
    ResourceManagerDetails,
    RevokableObjects,
    RevokeObject,
    SelectControlType,
    SessionRequest,
    SessionRequestType,
)
from s2python.frbc import (
    FRBCActuatorStatus,
    FRBCFillLevelTargetProfile,
    FRBCInstruction,
    FRBCStorageStatus,
    FRBCSystemDescription,
    FRBCUsageForecast,
)
from s2python.message import S2Message
from s2python.version import S2_VERSION
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from cariflex_pipeline.s2 import state
from cariflex_pipeline.s2.config import CemSettings
from cariflex_pipeline.s2.devices import S2Device, soc_sensors, write_reported
from cariflex_pipeline.s2.frbc import ELECTRIC, OutsideRangesError, check_within_ranges, setpoint_for
from cariflex_pipeline.s2.protocol import NIL_ID, Phase, Refusal, out_of_protocol, parse_incoming
from cariflex_pipeline.store import BeliefValidationError, StoreUnavailableError, TimeSeriesStore
from cariflex_pipeline.store.schema import NO_SITE

log = logging.getLogger(__name__)

# the RM's InstructionStatusUpdate, as the outbox status it leads to (NEW changes nothing)
_INSTRUCTION_STATUS = {InstructionStatus.ACCEPTED: "accepted", InstructionStatus.REJECTED: "rejected",
                       InstructionStatus.STARTED: "started", InstructionStatus.SUCCEEDED: "succeeded",
                       InstructionStatus.ABORTED: "aborted", InstructionStatus.REVOKED: "revoked"}

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CemSession:
    """One RM's connection, from the Handshake to its end."""

    def __init__(self, websocket: ServerConnection, store: TimeSeriesStore, devices: Mapping[str, S2Device],
                 settings: CemSettings, clock: Clock, sessions: dict[str, CemSession]) -> None:
        self.websocket = websocket
        self.store = store
        self.engine = store.engine
        self.devices = devices
        self.settings = settings
        self.clock = clock
        self.sessions = sessions
        self.connection_id = str(uuid.uuid4())
        self.phase = Phase.AWAITING_HANDSHAKE
        self.resource_id: str | None = None
        self.device: str | None = None
        self.description: FRBCSystemDescription | None = None
        self.fill_level: float | None = None
        self._handlers: dict[type, Callable] = {
            Handshake: self._on_handshake, ResourceManagerDetails: self._on_details,
            FRBCSystemDescription: self._on_system_description, FRBCStorageStatus: self._on_storage_status,
            FRBCActuatorStatus: self._on_actuator_status, FRBCUsageForecast: self._on_usage_forecast,
            FRBCFillLevelTargetProfile: self._on_fill_level_target, InstructionStatusUpdate: self._on_status_update,
            RevokeObject: self._on_revoke, SessionRequest: self._on_session_request,
            PowerMeasurement: self._on_power_measurement,
        }

    @property
    def site_id(self) -> str:
        """The site of the RM's device: what its rows and messages carry; NO_SITE ("") until it names one."""
        return NO_SITE if self.device is None else self.devices[self.device].site_id

    # --- the connection ------------------------------------------------------------------------------------
    async def run(self) -> None:
        pump = asyncio.create_task(self._pump_forever())
        try:
            async for raw in self.websocket:
                await self.receive(raw)
        except ConnectionClosed:
            pass
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self._disconnected()

    def _disconnected(self) -> None:
        if self.resource_id is None:
            return
        if self.sessions.get(self.resource_id) is self:
            del self.sessions[self.resource_id]
            state.save_resource(self.engine, self.resource_id, self.clock(), status="disconnected",
                                status_reason="connection closed", disconnected_at=self.clock())
        log.info("S2 resource %s disconnected", self.resource_id)

    async def send(self, message: S2Message) -> None:
        text = message.to_json()
        message_id = getattr(message, "message_id", None)
        state.record_message(self.engine, site_id=self.site_id, connection_id=self.connection_id,
                             resource_id=self.resource_id,
                             direction="out", message_type=message.message_type,
                             message_id=None if message_id is None else str(message_id), payload=text,
                             at=self.clock())
        await self.websocket.send(text)

    async def _answer(self, subject: uuid.UUID, status: ReceptionStatusValues, diagnostic: str = "") -> None:
        # a ReceptionStatus is not itself logged as a message: it is the `reception_status` of the one it answers
        await self.websocket.send(ReceptionStatus(subject_message_id=subject, status=status,
                                                  diagnostic_label=diagnostic or None).to_json())

    async def receive(self, raw: str | bytes) -> None:
        """Answer one message: a refusal, or OK after it was processed and stored."""
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        parsed = parse_incoming(raw)
        if isinstance(parsed, S2Message):
            message_id = getattr(parsed, "message_id", None) or NIL_ID
            refusal = out_of_protocol(parsed.message_type, message_id, self.phase)
            if refusal is None and not isinstance(parsed, ReceptionStatus):
                refusal = await self._process(parsed)
        else:
            refusal = parsed
        if isinstance(parsed, ReceptionStatus) and refusal is None:
            self._on_reception_status(parsed)
            return
        subject = refusal.subject_message_id if refusal else parsed.message_id
        status = refusal.status if refusal else ReceptionStatusValues.OK
        diagnostic = refusal.diagnostic if refusal else ""
        message_type = refusal.message_type if refusal else parsed.message_type
        if refusal:
            log.warning("S2 connection %s (resource %s): %s refused: %s", self.connection_id,
                        self.resource_id or "unknown", message_type, diagnostic)
        state.record_message(self.engine, site_id=self.site_id, connection_id=self.connection_id,
                             resource_id=self.resource_id,
                             direction="in", message_type=message_type[:40],
                             message_id=None if subject == NIL_ID else str(subject), payload=text,
                             reception_status=status.value, diagnostic=diagnostic, at=self.clock())
        if message_type == "ReceptionStatus":
            return  # an answer is never answered: a malformed one is only logged, or two peers would loop
        with contextlib.suppress(ConnectionClosed):
            await self._answer(subject, status, refusal.reception_status().diagnostic_label if refusal else "")
            if not refusal:
                await self._after(parsed)

    async def _process(self, message: S2Message) -> Refusal | None:
        handler = self._handlers.get(type(message))
        if handler is None:
            return None  # well formed and in protocol, nothing to keep (e.g. FRBC.TimerStatus)
        return handler(message)

    async def _after(self, message: S2Message) -> None:
        """What the CEM sends once a message was answered OK."""
        if isinstance(message, Handshake):
            await self.send(HandshakeResponse(message_id=uuid.uuid4(), selected_protocol_version=S2_VERSION))
        elif isinstance(message, ResourceManagerDetails):
            chosen = (ControlType.FILL_RATE_BASED_CONTROL if self.phase == Phase.FRBC
                      else ControlType.NOT_CONTROLABLE)
            await self.send(SelectControlType(message_id=uuid.uuid4(), control_type=chosen))
        elif isinstance(message, FRBCSystemDescription):
            await self.pump()
        elif isinstance(message, SessionRequest):
            await self.websocket.close(reason=f"SessionRequest {message.request.value}")

    # --- what the RM says ----------------------------------------------------------------------------------
    def _on_handshake(self, message: Handshake) -> Refusal | None:
        if message.role.value != "RM":
            return Refusal(ReceptionStatusValues.INVALID_CONTENT, message.message_id,
                           f"role: {message.role.value}, but only a resource manager (RM) connects to this CEM",
                           message.message_type)
        self.phase = Phase.AWAITING_DETAILS
        return None

    def _on_details(self, message: ResourceManagerDetails) -> Refusal | None:
        self.resource_id = str(message.resource_id)
        name = message.name or ""
        offered = [control.value for control in message.available_control_types]
        if name not in self.devices:
            self.phase, reason = Phase.UNCONTROLLED, f"no battery or V2G charger named {name!r} in the site"
        elif ControlType.FILL_RATE_BASED_CONTROL not in message.available_control_types:
            self.phase = Phase.UNCONTROLLED
            reason = f"offers {', '.join(offered) or 'no control type'}; this CEM controls FILL_RATE_BASED_CONTROL only"
        else:
            self.phase, reason = Phase.FRBC, ""
        self.device = name if name in self.devices else None
        previous = self.sessions.get(self.resource_id)
        if previous is not None and previous is not self:
            # the same RM on a new connection: the old one is dead to us, whatever its socket says
            asyncio.get_running_loop().create_task(previous.websocket.close(reason="replaced by a new connection"))
        self.sessions[self.resource_id] = self
        state.save_resource(
            self.engine, self.resource_id, self.clock(), name=name, device=self.device, site_id=self.site_id,
            control_type=("FILL_RATE_BASED_CONTROL" if self.phase == Phase.FRBC else "NOT_CONTROLABLE"),
            status="connected" if self.phase == Phase.FRBC else "uncontrolled", status_reason=reason,
            details=message.to_json(), system_description=None, fill_level=None, fill_level_at=None,
            actuator_status=None, connected_at=self.clock(), disconnected_at=None)
        log.info("S2 resource %s (%s) connected: %s", self.resource_id, name, reason or "under FRBC control")
        return None

    def _on_system_description(self, message: FRBCSystemDescription) -> Refusal | None:
        assert self.resource_id is not None
        self.description = message
        state.save_resource(self.engine, self.resource_id, self.clock(), system_description=message.to_json())
        # a connection starts with no instruction held: what is in force is sent again under this description
        requeued = state.requeue_in_force(self.engine, self.resource_id, self.clock(),
                                          f"system description of {message.valid_from.isoformat()} received")
        if requeued:
            log.info("S2 resource %s: %d instructions in force sent again", self.resource_id, requeued)
        return None

    def _on_storage_status(self, message: FRBCStorageStatus) -> Refusal | None:
        assert self.resource_id is not None
        if self.description is not None:
            fill_range = self.description.storage.fill_level_range
            if not fill_range.start_of_range <= message.present_fill_level <= fill_range.end_of_range:
                return Refusal(ReceptionStatusValues.INVALID_CONTENT, message.message_id,
                               f"present_fill_level: {message.present_fill_level} outside the declared "
                               f"fill_level_range [{fill_range.start_of_range}, {fill_range.end_of_range}]",
                               message.message_type)
        self.fill_level = message.present_fill_level
        state.save_resource(self.engine, self.resource_id, self.clock(), fill_level=message.present_fill_level,
                            fill_level_at=self.clock())
        if self.device is not None:
            self._write_series(self.devices[self.device].soc_sensor_id, message.present_fill_level)
        return None

    def _write_series(self, sensor_id: int, value: float) -> None:
        """What the device reported, as a series; the status itself is already kept, so a failed write is logged
        and the message still answered OK."""
        try:
            write_reported(self.store, sensor_id, value, self.clock())
        except (BeliefValidationError, StoreUnavailableError) as error:
            log.error("S2 resource %s: sensor %d not written: %s", self.resource_id, sensor_id, error)

    def _on_actuator_status(self, message: FRBCActuatorStatus) -> Refusal | None:
        assert self.resource_id is not None
        declared = {str(actuator.id) for actuator in self.description.actuators} if self.description else set()
        if str(message.actuator_id) not in declared:
            return Refusal(ReceptionStatusValues.INVALID_CONTENT, message.message_id,
                           f"actuator_id: {message.actuator_id} is not an actuator of the system description",
                           message.message_type)
        row = state.resource(self.engine, self.resource_id) or {}
        statuses = state.actuator_statuses(row)
        statuses[str(message.actuator_id)] = message.to_json_dict()
        state.save_resource(self.engine, self.resource_id, self.clock(), actuator_status=json.dumps(statuses))
        if self.device is not None and self.description is not None and len(self.description.actuators) == 1:
            # one actuator: its mode and factor are the device's power (several would need summing over all)
            try:
                power = check_within_ranges(self.device, self.description, self.fill_level,
                                            str(message.actuator_id), str(message.active_operation_mode_id),
                                            message.operation_mode_factor)
            except OutsideRangesError as error:
                return Refusal(ReceptionStatusValues.INVALID_CONTENT, message.message_id,
                               f"active_operation_mode_id: {error}", message.message_type)
            self._write_series(self.devices[self.device].power_sensor_id, power)
        return None

    def _on_usage_forecast(self, message: FRBCUsageForecast) -> Refusal | None:
        assert self.resource_id is not None
        state.save_resource(self.engine, self.resource_id, self.clock(), usage_forecast=message.to_json())
        return None

    def _on_fill_level_target(self, message: FRBCFillLevelTargetProfile) -> Refusal | None:
        assert self.resource_id is not None
        state.save_resource(self.engine, self.resource_id, self.clock(), fill_level_target=message.to_json())
        return None

    def _on_power_measurement(self, message: PowerMeasurement) -> Refusal | None:
        electric = [value.value for value in message.values if value.commodity_quantity in ELECTRIC]
        if self.device is not None and electric:
            self._write_series(self.devices[self.device].power_sensor_id, sum(electric) / 1000.0)
        return None

    def _on_status_update(self, message: InstructionStatusUpdate) -> Refusal | None:
        assert self.resource_id is not None
        row = state.by_instruction_id(self.engine, self.resource_id, str(message.instruction_id))
        if row is None:
            return Refusal(ReceptionStatusValues.INVALID_CONTENT, message.message_id,
                           f"instruction_id: {message.instruction_id} is no instruction sent to this resource",
                           message.message_type)
        status = _INSTRUCTION_STATUS.get(message.status_type)
        if status is not None:
            progress = status in state.ANSWERABLE_STATUSES  # an end (succeeded, rejected, ...) moves any row
            state.transition(self.engine, row["id"], status, self.clock(),
                             f"InstructionStatusUpdate {message.status_type.value} at {message.timestamp.isoformat()}",
                             only_from=state.ANSWERABLE_STATUSES if progress else None, answered_at=self.clock())
        return None

    def _on_revoke(self, message: RevokeObject) -> Refusal | None:
        assert self.resource_id is not None
        if message.object_type != RevokableObjects.FRBC_SystemDescription:
            return Refusal(ReceptionStatusValues.INVALID_CONTENT, message.message_id,
                           f"object_type: a resource manager revokes only its FRBC.SystemDescription, not "
                           f"{message.object_type.value}", message.message_type)
        self.description = None
        state.save_resource(self.engine, self.resource_id, self.clock(), system_description=None)
        return None

    def _on_session_request(self, message: SessionRequest) -> Refusal | None:
        if self.resource_id is not None:
            state.save_resource(self.engine, self.resource_id, self.clock(),
                                status_reason=f"SessionRequest {message.request.value}: "
                                              f"{message.diagnostic_label or 'no reason given'}")
        return None

    def _on_reception_status(self, message: ReceptionStatus) -> None:
        subject = str(message.subject_message_id)
        state.record_reception(self.engine, subject, message.status.value, message.diagnostic_label or "")
        row = state.by_message_id(self.engine, subject)
        if row is None:
            return
        now = self.clock()
        revoke = row["revoke_message_id"] == subject
        if message.status != ReceptionStatusValues.OK:
            # a refused revocation is not retried (the RM would refuse it again): the row says what happened
            label = (f"{'RevokeObject refused: ' if revoke else ''}ReceptionStatus {message.status.value}: "
                     f"{message.diagnostic_label or 'no diagnostic'}")
            state.transition(self.engine, row["id"], "invalid", now, label, reception_status=message.status.value,
                             answered_at=now)
        elif revoke:
            state.transition(self.engine, row["id"], "revoked", now, "RevokeObject received", answered_at=now)
        else:
            state.transition(self.engine, row["id"], "received", now, "ReceptionStatus OK", only_from=("sent",),
                             reception_status=message.status.value, answered_at=now)

    # --- what the CEM sends from the store -----------------------------------------------------------------
    async def _pump_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            try:
                await self.pump()
            except ConnectionClosed:
                return
            except Exception:  # a store hiccup must not end the connection; the next poll tries again
                log.exception("S2 resource %s: sending staged instructions failed", self.resource_id)

    async def pump(self) -> None:
        """Send what the store has staged for this RM, revoke what was replaced, retry what went unanswered."""
        if self.phase != Phase.FRBC or self.resource_id is None or self.description is None:
            return
        now = self.clock()
        self._retry_unanswered(now)
        for row in state.instructions(self.engine, self.resource_id, ["pending"]):
            await self._send_instruction(row, now)
        for row in state.instructions(self.engine, self.resource_id, ["revoking"]):
            await self._revoke(row, now)

    async def _revoke(self, row: dict, now: datetime) -> None:
        """Send the RevokeObject of a replaced instruction; again when unanswered, up to max_attempts."""
        if row["revoke_message_id"] is not None:
            if row["updated_at"] > now - timedelta(seconds=self.settings.answer_timeout_seconds):
                return  # sent, its answer may still come
            sent = sum(event["reason"] == "RevokeObject sent"
                       for event in state.instruction_events(self.engine, row["id"]))
            if sent >= self.settings.max_attempts:
                state.transition(self.engine, row["id"], "unanswered", now,
                                 f"RevokeObject unanswered after {sent} attempts")
                return
        message_id = uuid.uuid4()
        state.transition(self.engine, row["id"], "revoking", now, "RevokeObject sent",
                         revoke_message_id=str(message_id), reception_status=None)
        await self.send(RevokeObject(message_id=message_id, object_type=RevokableObjects.FRBC_Instruction,
                                     object_id=uuid.UUID(row["instruction_id"])))

    async def _send_instruction(self, row: dict, now: datetime) -> None:
        assert self.description is not None and self.device is not None
        try:
            check_within_ranges(self.device, self.description, self.fill_level, row["actuator_id"],
                                row["operation_mode_id"], row["operation_mode_factor"])
        except OutsideRangesError as error:
            state.transition(self.engine, row["id"], "outside_ranges", now, str(error))
            return
        message_id = uuid.uuid4()
        if not state.transition(self.engine, row["id"], "sent", now, f"attempt {row['attempts'] + 1}",
                                only_from=("pending",), message_id=str(message_id), sent_at=now,
                                attempts=row["attempts"] + 1, reception_status=None):
            return  # superseded by a new plan since it was read: never sent
        await self.send(FRBCInstruction(
            message_id=message_id, id=uuid.UUID(row["instruction_id"]), actuator_id=uuid.UUID(row["actuator_id"]),
            operation_mode=uuid.UUID(row["operation_mode_id"]), operation_mode_factor=row["operation_mode_factor"],
            execution_time=row["execution_time"],
            abnormal_condition=False))

    def _retry_unanswered(self, now: datetime) -> None:
        assert self.resource_id is not None and self.description is not None and self.device is not None
        overdue = now - timedelta(seconds=self.settings.answer_timeout_seconds)
        for row in state.instructions(self.engine, self.resource_id, ["sent"]):
            if row["sent_at"] is None or row["sent_at"] > overdue:
                continue
            state.transition(self.engine, row["id"], "unanswered", now,
                             f"no ReceptionStatus within {self.settings.answer_timeout_seconds:g} s")
            if row["attempts"] >= self.settings.max_attempts:
                continue
            try:
                point = setpoint_for(self.device, self.description, self.fill_level, row["execution_time"],
                                     row["power_kw"])
            except OutsideRangesError as error:
                log.warning("S2 resource %s: no retry: %s", self.resource_id, error)
                continue
            state.retry_from_plan(self.engine, row, point, now)


class CemServer:
    """The websocket endpoint; `start()` binds it, `close()` ends every connection."""

    def __init__(self, store: TimeSeriesStore, devices: Mapping[str, S2Device], settings: CemSettings,
                 clock: Clock = _utc_now) -> None:
        self.store = store
        self.devices = devices
        self.settings = settings
        self.clock = clock
        self.sessions: dict[str, CemSession] = {}
        self._server: Server | None = None

    async def _on_connect(self, websocket: ServerConnection) -> None:
        await CemSession(websocket, self.store, self.devices, self.settings, self.clock, self.sessions).run()

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> int:
        """Bind and listen; the port bound (the configured one, or the one the OS chose for port 0)."""
        self.store.register_sensors(soc_sensors(self.devices.values()),
                                    owners={device.soc_sensor_id: device.site_id for device in self.devices.values()})
        self._server = await serve(self._on_connect, self.settings.host, self.settings.port, ssl=ssl_context,
                                   max_size=2**20)
        return self._server.sockets[0].getsockname()[1]

    async def terminate_sessions(self, reason: str) -> None:
        """Tell every RM the session ends (SessionRequest TERMINATE) before the endpoint goes away."""
        for session in list(self.sessions.values()):
            with contextlib.suppress(ConnectionClosed):
                await session.send(SessionRequest(message_id=uuid.uuid4(), request=SessionRequestType.TERMINATE,
                                                  diagnostic_label=reason))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
