"""The CEM on loopback for tests: its own event loop in a thread, a clock the test sets, polling waits."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from datetime import datetime
from typing import Any, TypeVar

from websockets.sync.client import ClientConnection, connect

from cariflex_pipeline.s2.config import CemSettings
from cariflex_pipeline.s2.devices import S2Device, site_devices
from cariflex_pipeline.s2.server import CemServer
from cariflex_pipeline.site_model import load_site
from cariflex_pipeline.store import TimeSeriesStore

TIMEOUT = 20.0
T = TypeVar("T")
SITE_ID = "cariflex-martinique"  # the bundled site file's one site
DEVICES = {name: device for name, device in site_devices(load_site(), SITE_ID).items()
           if name in ("battery_01", "battery_02", "v2g_01")}


def wait_for(check: Callable[[], T], what: str, timeout: float = TIMEOUT) -> T:
    """Poll until `check()` is truthy; its value, or a failure naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


class Clock:
    """The CEM's notion of now, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class RunningCem:
    def __init__(self, store: TimeSeriesStore, clock: Clock, devices: Mapping[str, S2Device] | None = None,
                 **settings: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="cem")
        self.thread.start()
        config = CemSettings(host="127.0.0.1", port=0, poll_seconds=0.05, **settings)
        self.server = CemServer(store, DEVICES if devices is None else devices, config, clock)
        self.port = self.run(self.server.start())
        self.url = f"ws://127.0.0.1:{self.port}/"

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(TIMEOUT)

    def close(self) -> None:
        self.run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)


class RawRm:
    """An RM speaking S2 by hand over a plain websocket: for what the library's RM would never send."""

    def __init__(self, url: str) -> None:
        self._stack = ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(connect(url, open_timeout=TIMEOUT))

    def send(self, message: dict[str, Any] | str) -> None:
        self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def receive(self) -> dict[str, Any]:
        return json.loads(self.ws.recv(timeout=TIMEOUT))

    def reception_status(self) -> dict[str, Any]:
        """The next ReceptionStatus, skipping what else the CEM sends meanwhile."""
        while True:
            message = self.receive()
            if message["message_type"] == "ReceptionStatus":
                return message

    def ask(self, message: dict[str, Any] | str) -> dict[str, Any]:
        self.send(message)
        return self.reception_status()

    def answer(self, message: dict[str, Any]) -> None:
        self.send({"message_type": "ReceptionStatus", "subject_message_id": message["message_id"], "status": "OK"})

    def handshake(self, name: str, control_types: tuple[str, ...] = ("FILL_RATE_BASED_CONTROL",),
                  resource_id: str | None = None) -> dict[str, Any]:
        """Handshake and ResourceManagerDetails; the SelectControlType the CEM answered with."""
        assert self.ask(message("Handshake", role="RM", supported_protocol_versions=["0.0.2-beta"]))["status"] == "OK"
        response = self.receive()
        assert response["message_type"] == "HandshakeResponse", response
        self.answer(response)
        details = message("ResourceManagerDetails", resource_id=resource_id or str(uuid.uuid4()), name=name,
                          roles=[{"role": "ENERGY_STORAGE", "commodity": "ELECTRICITY"}],
                          instruction_processing_delay=0, available_control_types=list(control_types),
                          provides_forecast=False,
                          provides_power_measurement_types=["ELECTRIC.POWER.3_PHASE_SYMMETRIC"])
        assert self.ask(details)["status"] == "OK"
        selected = self.receive()
        assert selected["message_type"] == "SelectControlType", selected
        self.answer(selected)
        return selected

    def close(self) -> None:
        self._stack.close()


def message(message_type: str, **fields: Any) -> dict[str, Any]:
    return {"message_type": message_type, "message_id": str(uuid.uuid4()), **fields}
