"""What every transport shares: the outcome of a send, a station's answer, the protocol, and the default.

Transports carry outbox entries to CitrineOS, chosen by configuration (`DispatchSettings.make_transport`):
- `AmqpTransport` (`amqp_transport.py`): the CitrineOS envelope on its headers exchange, mandatory publishing and
  publisher confirms so an offline station shows as unroutable; answers from our own durable queue;
- `RestTransport` (`rest_transport.py`): CitrineOS's REST API over httpx;
- `OutboxOnlyTransport` (here): the embedded default; nothing leaves the machine, entries stay pending.

URLs and credentials come from configuration (environment); amqps:// and https:// use TLS. Secrets are never
logged: errors name host and port only (`connections.safe_url`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the outbox imports Answer from here
    from cariflex_pipeline.dispatch.outbox import OutboxEntry


@dataclass(frozen=True)
class SendResult:
    correlation_id: str
    station_id: str
    status: str  # sent | unroutable | failed | pending
    reason: str = ""
    uncertain: bool = False  # published but never confirmed: the station may have received it


@dataclass(frozen=True)
class Answer:
    """A station's answer to one of our calls, correlated by the id we sent it under."""

    correlation_id: str
    station_id: str
    status: str  # Accepted | Rejected | ...
    reason: str = ""
    action: str = "SetChargingProfile"  # or ClearChargingProfile, GetCompositeSchedule
    payload: dict[str, Any] = field(default_factory=dict, compare=False)  # the whole response payload


@dataclass(frozen=True)
class Call:
    """One CSMS -> station request other than the profile itself (GetCompositeSchedule, ClearChargingProfile)."""

    correlation_id: str
    station_id: str
    action: str
    payload: dict[str, Any]


# the station answers the dispatch stage reads back, by action
ANSWERED_ACTIONS = ("SetChargingProfile", "ClearChargingProfile", "GetCompositeSchedule")


class Transport(Protocol):
    name: str

    def send(self, entries: Sequence[OutboxEntry]) -> list[SendResult]: ...

    def send_calls(self, calls: Sequence[Call]) -> list[SendResult]: ...

    def collect_answers(self, record: Callable[[Answer], bool], *, expected: set[str] | None = None,
                        timeout: float = 0.0) -> list[Answer]: ...

    def close(self) -> None: ...


class OutboxOnlyTransport:
    """The embedded default: profiles are stored (status pending) and nothing is sent."""

    name = "outbox"

    def send(self, entries: Sequence[OutboxEntry]) -> list[SendResult]:
        return [SendResult(e.correlation_id, e.station_id, "pending", "outbox-only transport: not sent")
                for e in entries]

    def send_calls(self, calls: Sequence[Call]) -> list[SendResult]:
        return [SendResult(c.correlation_id, c.station_id, "failed", "outbox-only transport: not sent")
                for c in calls]

    def collect_answers(self, record: Callable[[Answer], bool], *, expected: set[str] | None = None,
                        timeout: float = 0.0) -> list[Answer]:
        return []

    def close(self) -> None:
        return None
