"""Battery and V2G resource managers built on s2-python's own RM side: `ResourceManagerHandler` does the
Handshake, ResourceManagerDetails and SelectControlType; `FRBCControlType` receives the instructions;
`WebsocketClientMedium` is the websocket. Each runs its own event loop in a thread, on loopback.

The device declares FRBC with three operation modes (charge, discharge, idle) on one actuator, follows the
instruction in effect at the time it is advanced to (the latest whose execution_time has come), integrates its
fill level (kWh) and reports StorageStatus and ActuatorStatus. Time is the test's, through `advance`: nothing here
reads the wall clock to decide what the device does.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from s2python.common import (
    Commodity,
    CommodityQuantity,
    Duration,
    InstructionStatus,
    InstructionStatusUpdate,
    NumberRange,
    PowerRange,
    RevokeObject,
    Role,
    RoleType,
    SessionRequest,
)
from s2python.connection.asset_details import AssetDetails
from s2python.connection.async_ import S2AsyncConnection
from s2python.connection.async_.control_type.class_based import (
    FRBCControlType,
    NoControlControlType,
    PEBCControlType,
    ResourceManagerHandler,
)
from s2python.connection.async_.medium.websocket import WebsocketClientMedium
from s2python.frbc import (
    FRBCActuatorDescription,
    FRBCActuatorStatus,
    FRBCFillLevelTargetProfile,
    FRBCFillLevelTargetProfileElement,
    FRBCInstruction,
    FRBCOperationMode,
    FRBCOperationModeElement,
    FRBCStorageDescription,
    FRBCStorageStatus,
    FRBCSystemDescription,
    FRBCUsageForecast,
    FRBCUsageForecastElement,
)

POWER = CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC
TIMEOUT = 20.0


@dataclass
class Storage:
    """The simulated device: what it holds and what it may do."""

    capacity_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    fill_kwh: float
    target_kwh: float | None = None  # V2G: what the driver wants by `departure`
    departure: datetime | None = None


@dataclass
class Followed:
    """What the device did over one advance."""

    at: datetime
    power_kw: float
    fill_kwh: float


class StorageControl(FRBCControlType):
    """FRBC for a battery or a V2G car: declares, follows, integrates, reports."""

    def __init__(self, storage: Storage, valid_from: datetime) -> None:
        self.storage = storage
        self.valid_from = valid_from
        self.actuator_id = uuid.uuid4()
        self.modes = {"charge": uuid.uuid4(), "discharge": uuid.uuid4(), "idle": uuid.uuid4()}
        self.instructions: dict[uuid.UUID, FRBCInstruction] = {}
        self.received: list[FRBCInstruction] = []
        self.revoked: list[uuid.UUID] = []
        self.started: set[uuid.UUID] = set()
        self.history: list[Followed] = []
        self.answer = InstructionStatus.ACCEPTED
        self.connection: S2AsyncConnection | None = None
        self.active = threading.Event()

    def _mode(self, label: str, low_kw: float, high_kw: float) -> FRBCOperationMode:
        capacity = self.storage.capacity_kwh
        return FRBCOperationMode(
            id=self.modes[label], diagnostic_label=label, abnormal_condition_only=False,
            elements=[FRBCOperationModeElement(
                fill_level_range=NumberRange(start_of_range=0, end_of_range=capacity),
                fill_rate=NumberRange(start_of_range=low_kw / 3600, end_of_range=high_kw / 3600),
                power_ranges=[PowerRange(start_of_range=low_kw * 1000, end_of_range=high_kw * 1000,
                                         commodity_quantity=POWER)])])

    def system_description(self) -> FRBCSystemDescription:
        storage = self.storage
        return FRBCSystemDescription(
            message_id=uuid.uuid4(), valid_from=self.valid_from,
            actuators=[FRBCActuatorDescription(
                id=self.actuator_id, diagnostic_label="inverter", supported_commodities=[Commodity.ELECTRICITY],
                operation_modes=[self._mode("charge", 0, storage.max_charge_kw),
                                 self._mode("discharge", -storage.max_discharge_kw, 0), self._mode("idle", 0, 0)],
                transitions=[], timers=[])],
            storage=FRBCStorageDescription(
                diagnostic_label="state of charge", fill_level_label="kWh", provides_leakage_behaviour=False,
                provides_fill_level_target_profile=storage.target_kwh is not None,
                provides_usage_forecast=storage.departure is not None,
                fill_level_range=NumberRange(start_of_range=0, end_of_range=storage.capacity_kwh)))

    async def activate(self, connection: S2AsyncConnection) -> None:
        self.connection = connection
        connection.register_handler(RevokeObject, self._on_revoke)
        connection.register_handler(SessionRequest, self._on_session_request)
        await connection.send_msg_and_await_reception_status(self.system_description())
        await self.report(connection)
        if self.storage.target_kwh is not None and self.storage.departure is not None:
            until_departure = Duration.from_timedelta(self.storage.departure - self.valid_from)
            await connection.send_msg_and_await_reception_status(FRBCFillLevelTargetProfile(
                message_id=uuid.uuid4(), start_time=self.valid_from,
                elements=[FRBCFillLevelTargetProfileElement(
                    duration=until_departure, fill_level_range=NumberRange(
                        start_of_range=self.storage.target_kwh, end_of_range=self.storage.capacity_kwh))]))
            await connection.send_msg_and_await_reception_status(FRBCUsageForecast(
                message_id=uuid.uuid4(), start_time=self.valid_from,
                elements=[FRBCUsageForecastElement(duration=until_departure, usage_rate_expected=0.0)]))
        self.active.set()

    async def deactivate(self, connection: S2AsyncConnection) -> None:
        self.active.clear()

    async def report(self, connection: S2AsyncConnection, mode: str = "idle", factor: float = 0.0) -> None:
        await connection.send_msg_and_await_reception_status(FRBCStorageStatus(
            message_id=uuid.uuid4(), present_fill_level=round(self.storage.fill_kwh, 9)))
        await connection.send_msg_and_await_reception_status(FRBCActuatorStatus(
            message_id=uuid.uuid4(), actuator_id=self.actuator_id, active_operation_mode_id=self.modes[mode],
            operation_mode_factor=factor))

    async def handle_instruction(self, connection: S2AsyncConnection, msg: Any, send_okay: Any) -> None:
        assert isinstance(msg, FRBCInstruction)
        self.received.append(msg)
        await send_okay()
        status = self.answer
        if msg.actuator_id != self.actuator_id or msg.operation_mode not in self.modes.values():
            status = InstructionStatus.REJECTED
        if status == InstructionStatus.ACCEPTED:
            self.instructions[msg.id] = msg
        await self._status(connection, msg.id, status)

    async def _status(self, connection: S2AsyncConnection, instruction_id: uuid.UUID,
                      status: InstructionStatus) -> None:
        await connection.send_msg_and_await_reception_status(InstructionStatusUpdate(
            message_id=uuid.uuid4(), instruction_id=instruction_id, status_type=status,
            timestamp=datetime.now(UTC)))

    async def _on_revoke(self, connection: S2AsyncConnection, msg: Any, send_okay: Any) -> None:
        assert isinstance(msg, RevokeObject)
        self.instructions.pop(msg.object_id, None)
        self.revoked.append(msg.object_id)
        await send_okay()

    async def _on_session_request(self, connection: S2AsyncConnection, msg: Any, send_okay: Any) -> None:
        await send_okay()
        await connection.stop()

    def power_at(self, moment: datetime) -> tuple[float, str, float, uuid.UUID | None]:
        """kW, mode label and factor of the instruction in effect at `moment` (idle when none)."""
        due = [i for i in self.instructions.values() if i.execution_time <= moment]
        if not due:
            return 0.0, "idle", 0.0, None
        current = max(due, key=lambda i: i.execution_time)
        label = next(name for name, mode_id in self.modes.items() if mode_id == current.operation_mode)
        low, high = {"charge": (0.0, self.storage.max_charge_kw),
                     "discharge": (-self.storage.max_discharge_kw, 0.0), "idle": (0.0, 0.0)}[label]
        return low + current.operation_mode_factor * (high - low), label, current.operation_mode_factor, current.id

    async def advance(self, moment: datetime, seconds: float) -> Followed:
        """Run from `moment` for `seconds` with the instruction in effect, then report the new fill level."""
        assert self.connection is not None
        power, label, factor, instruction_id = self.power_at(moment)
        if instruction_id is not None and instruction_id not in self.started:
            self.started.add(instruction_id)
            await self._status(self.connection, instruction_id, InstructionStatus.STARTED)
        storage = self.storage
        storage.fill_kwh = min(storage.capacity_kwh, max(0.0, storage.fill_kwh + power * seconds / 3600))
        await self.report(self.connection, label, factor)
        followed = Followed(moment + timedelta(seconds=seconds), power, storage.fill_kwh)
        self.history.append(followed)
        return followed


class _OtherControl(PEBCControlType):
    """A device that offers power-envelope control only: the CEM must leave it uncontrolled."""

    async def handle_instruction(self, connection: S2AsyncConnection, msg: Any, send_okay: Any) -> None:
        await send_okay()

    async def activate(self, connection: S2AsyncConnection) -> None: ...

    async def deactivate(self, connection: S2AsyncConnection) -> None: ...


class _NotControlled(NoControlControlType):
    def __init__(self) -> None:
        self.selected = threading.Event()

    async def activate(self, connection: S2AsyncConnection) -> None:
        self.selected.set()

    async def deactivate(self, connection: S2AsyncConnection) -> None: ...


@dataclass
class SimulatedRm:
    """One RM process: its thread and loop, its connection to the CEM, its device."""

    name: str
    storage: Storage
    url: str
    valid_from: datetime
    frbc: bool = True
    resource_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        self.control = StorageControl(self.storage, self.valid_from)
        self.uncontrolled = _NotControlled()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name=f"rm-{self.name}")
        self._thread.start()
        self._medium: WebsocketClientMedium | None = None
        self._connection: S2AsyncConnection | None = None
        self._running: Any = None

    def _run(self, coroutine: Any, timeout: float = TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def details(self) -> AssetDetails:
        return AssetDetails(
            resource_id=self.resource_id, name=self.name, provides_forecast=self.storage.departure is not None,
            provides_power_measurements=[POWER], instruction_processing_delay=Duration.from_milliseconds(0),
            roles=[Role(role=RoleType.ENERGY_STORAGE, commodity=Commodity.ELECTRICITY)], manufacturer="cariflex-sim")

    async def _connect(self) -> None:
        self._medium = WebsocketClientMedium(url=self.url, verify_certificate=False)
        await self._medium.connect()
        self._connection = S2AsyncConnection(self._medium, self._loop)
        controls = [self.control] if self.frbc else [_OtherControl(), self.uncontrolled]
        ResourceManagerHandler(controls, self.details()).register_handlers(self._connection)
        self._running = self._loop.create_task(self._connection.run())

    def connect(self) -> SimulatedRm:
        """Open the websocket; the library does the rest of the session (wait with `wait_controlled`)."""
        self.control.active.clear()
        self._run(self._connect())
        return self

    def wait_controlled(self) -> None:
        if not self.control.active.wait(TIMEOUT):
            raise TimeoutError(f"RM {self.name}: FRBC not activated within {TIMEOUT} s")

    def disconnect(self) -> None:
        """Drop the websocket, as a device losing its network would."""
        async def close() -> None:
            assert self._medium is not None and self._connection is not None
            await self._connection.stop()
            await self._medium.disconnect()
            await asyncio.wait_for(self._running, TIMEOUT)
        self._run(close())

    def advance(self, moment: datetime, seconds: float) -> Followed:
        return self._run(self.control.advance(moment, seconds))

    @property
    def running(self) -> bool:
        return self._running is not None and not self._running.done()

    def close(self) -> None:
        if self.running:
            self.disconnect()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT)

    # what the CEM must never make an RM do is checked on what it received
    def instructions_received(self) -> list[FRBCInstruction]:
        return list(self.control.received)

