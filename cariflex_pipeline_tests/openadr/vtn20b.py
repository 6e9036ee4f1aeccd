"""The real OpenLEADR VTN (openleadr.OpenADRServer), run in-process on 127.0.0.1 in a thread of its own."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any

from openleadr import OpenADRServer, enums, utils
from openleadr.service import VTNService

VTN_ID = "MARTINIQUE_VTN"
PRICE_CONTEXT = "oadr://martinique/price"
LOAD_CONTEXT = "oadr://martinique/load-control"
DR_CONTEXT = "oadr://martinique/demand-response"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class InProcessVtn:
    """OpenADRServer on a background event loop; `call` runs a function on that loop and waits for it."""

    def __init__(self, poll_freq: timedelta = timedelta(seconds=1), track_vens: bool = False) -> None:
        self.port = free_port()
        self.registrations: list[dict[str, Any]] = []
        self.known_vens: dict[str, dict[str, Any]] = {}
        self.track_vens = track_vens
        self.opt_answers: list[tuple[str, str, str]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="openleadr-vtn", daemon=True)
        self.thread.start()
        self.server: OpenADRServer = self.call(lambda: OpenADRServer(
            vtn_id=VTN_ID, http_host="127.0.0.1", http_port=self.port, requested_poll_freq=poll_freq,
        ))
        self.server.add_handler("on_create_party_registration", self._on_registration)
        self.polls: list[datetime] = []  # when each oadrPoll arrived: the VEN's actual poll frequency
        poll_service = self.server.services["poll_service"]
        answer_poll = poll_service.handlers["oadrPoll"]

        async def timed_poll(payload: dict[str, Any]) -> Any:
            self.polls.append(datetime.now(UTC))
            return await answer_poll(payload)

        poll_service.handlers["oadrPoll"] = timed_poll
        if track_vens:
            # openleadr keeps ven_lookup on the VTNService class: installed here, removed again in stop()
            VTNService.ven_lookup = staticmethod(self._ven_lookup)
        self.run(self.server.run_async())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/OpenADR2/Simple/2.0b"

    async def _on_registration(self, payload: dict[str, Any]) -> tuple[str, str]:
        self.registrations.append(payload)
        ven_id = payload.get("ven_id") or f"ven_{len(self.registrations)}"
        registration_id = f"reg_{len(self.registrations)}"
        self.known_vens[ven_id] = {"ven_id": ven_id, "registration_id": registration_id, "fingerprint": None}
        return ven_id, registration_id

    def _ven_lookup(self, ven_id: str) -> dict[str, Any] | None:
        return self.known_vens.get(ven_id)

    def forget_vens(self) -> None:
        """The VTN loses its registrations: it will answer the next poll with oadrRequestReregistration."""
        self.call(self.known_vens.clear)

    def _on_opt(self, ven_id: str, event_id: str, opt_type: str) -> None:
        self.opt_answers.append((ven_id, event_id, opt_type))

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def call(self, function: Callable[[], Any]) -> Any:
        future: Future = Future()

        def target() -> None:
            try:
                future.set_result(function())
            except BaseException as error:  # handed back to the calling thread
                future.set_exception(error)

        self.loop.call_soon_threadsafe(target)
        return future.result(timeout=10)

    def add_event(self, ven_id: str, signal_name: str, signal_type: str, context: str,
                  intervals: list[tuple[datetime, timedelta, float]], event_id: str | None = None,
                  response_required: str = "always") -> str:
        payload = [{"dtstart": start, "duration": duration, "signal_payload": value}
                   for start, duration, value in intervals]
        return self.call(lambda: self.server.add_event(
            ven_id=ven_id, signal_name=signal_name, signal_type=signal_type, intervals=payload,
            callback=self._on_opt, market_context=context, event_id=event_id,
            response_required=response_required,
        ))

    def modify_event(self, ven_id: str, event_id: str, values: list[float]) -> None:
        """Change an event's payloads and bump its modification number, as a VTN operator would."""

        def change() -> None:
            event = utils.find_by(self.server.events[ven_id], "event_descriptor.event_id", event_id)
            for interval, value in zip(event.event_signals[0].intervals, values, strict=True):
                utils.setmember(interval, "signal_payload", value)
            utils.increment_event_modification_number(event)
            event.event_descriptor.modification_date_time = datetime.now(UTC)
            self.server.events_updated[ven_id] = True
            # the VEN must opt again: re-arm the opt callback
            self.server.event_callbacks[event_id] = (event, self._on_opt)

        self.call(change)

    def cancel_event(self, ven_id: str, event_id: str) -> None:
        self.call(lambda: self.server.cancel_event(ven_id, event_id))

    def event_status(self, ven_id: str, event_id: str) -> str | None:
        def find() -> str | None:
            event = utils.find_by(self.server.events.get(ven_id, []), "event_descriptor.event_id", event_id)
            return None if event is None else event.event_descriptor.event_status

        return self.call(find)

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        if self.track_vens and "ven_lookup" in VTNService.__dict__:
            del VTNService.ven_lookup
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


__all__ = ["DR_CONTEXT", "LOAD_CONTEXT", "PRICE_CONTEXT", "VTN_ID", "InProcessVtn", "enums"]
