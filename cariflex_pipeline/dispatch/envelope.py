"""The CitrineOS message-bus envelope: AMQP headers (all strings) and the JSON body.

Release 1.8.x names the station `stationId`; later releases (the `packages/` layout, after 1.9) name it
`ocppConnectionName`, in the headers and in `context` alike. The version is configuration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ENVELOPE_VERSIONS: tuple[str, ...] = ("1.8", "1.9")


class EnvelopeError(ValueError):
    """A bus message that does not have the CitrineOS shape; the message says what is wrong."""


def station_key(version: str) -> str:
    """The name of the station field in headers and context for an envelope version."""
    if version not in ENVELOPE_VERSIONS:
        raise ValueError(f"envelope version {version!r}: expected one of {ENVELOPE_VERSIONS}")
    return "stationId" if version == "1.8" else "ocppConnectionName"


@dataclass(frozen=True)
class BusMessage:
    """A decoded CitrineOS bus message."""

    station_id: str
    tenant_id: str
    action: str
    state: int
    origin: str
    correlation_id: str | None
    payload: dict[str, Any]
    timestamp: str | None = None


def csms_request(
    *,
    station_id: str,
    tenant_id: str | int,
    action: str,
    payload: dict[str, Any],
    correlation_id: str,
    event_group: str = "smartcharging",
    version: str = "1.8",
    now: datetime | None = None,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a CSMS -> station request (origin csms, state 1), as CitrineOS's sender builds them."""
    return _message("csms", event_group, action, 1, station_id=station_id, tenant_id=tenant_id, payload=payload,
                    correlation_id=correlation_id, version=version, now=now)


def station_message(
    *,
    station_id: str,
    tenant_id: str | int,
    action: str,
    state: int,
    payload: dict[str, Any],
    correlation_id: str,
    version: str = "1.8",
    event_group: str = "router",
    now: datetime | None = None,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a station -> CSMS message (origin cs): a request (state 1) or an answer (state 2)."""
    return _message("cs", event_group, action, state, station_id=station_id, tenant_id=tenant_id, payload=payload,
                    correlation_id=correlation_id, version=version, now=now)


def _message(origin: str, event_group: str, action: str, state: int, *, station_id: str, tenant_id: str | int,
             payload: dict[str, Any], correlation_id: str, version: str,
             now: datetime | None) -> tuple[dict[str, str], bytes]:
    """One envelope for both directions: AMQP headers are all strings; in the body `state` and `tenantId` are
    integers (a string state there is dropped by CitrineOS as "Unknown message state")."""
    key = station_key(version)
    timestamp = (now or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    headers = {
        "origin": origin,
        "eventGroup": event_group,
        "action": action,
        "state": str(state),
        key: station_id,
        "correlationId": correlation_id,
        "tenantId": str(tenant_id),
        "timestamp": timestamp,
    }
    body = {
        "origin": origin,
        "eventGroup": event_group,
        "action": action,
        "state": state,
        "context": {key: station_id, "tenantId": _tenant_int(tenant_id), "correlationId": correlation_id,
                    "timestamp": timestamp},
        "payload": payload,
        "protocol": "ocpp2.0.1",
    }
    return headers, json.dumps(body, separators=(",", ":")).encode("utf-8")


def decode(headers: dict[str, Any] | None, body: bytes) -> BusMessage:
    """Decode a bus message of either envelope version; raise EnvelopeError naming what is wrong."""
    headers = headers or {}
    where = (f"{headers.get('action', 'message')} from station "
             f"{headers.get('stationId') or headers.get('ocppConnectionName') or '(unnamed)'}")
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EnvelopeError(f"{where}: body is not JSON ({error})") from None
    if not isinstance(document, dict):
        raise EnvelopeError(f"{where}: body is a JSON {type(document).__name__}, not an object: "
                            f"{body[:80]!r}")
    context = document.get("context") if isinstance(document.get("context"), dict) else {}
    station = (context.get("stationId") or context.get("ocppConnectionName")
               or headers.get("stationId") or headers.get("ocppConnectionName"))
    if not isinstance(station, str) or not station:
        raise EnvelopeError("no stationId/ocppConnectionName in context or headers")
    action = document.get("action") or headers.get("action")
    if not isinstance(action, str) or not action:
        raise EnvelopeError(f"station {station}: no action")
    state = document.get("state", headers.get("state"))
    try:
        state = int(state)
    except (TypeError, ValueError):
        raise EnvelopeError(f"station {station}: state {state!r} is not 1, 2 or 3") from None
    payload = document.get("payload")
    if not isinstance(payload, dict):
        raise EnvelopeError(f"station {station}: {action} payload is not a JSON object")
    correlation = context.get("correlationId") or headers.get("correlationId")
    tenant = context.get("tenantId", headers.get("tenantId", ""))
    origin = document.get("origin") or headers.get("origin") or ""
    return BusMessage(
        station_id=station,
        tenant_id=str(tenant),
        action=action,
        state=state,
        origin=str(origin),
        correlation_id=str(correlation) if correlation else None,
        payload=payload,
        timestamp=context.get("timestamp") or headers.get("timestamp"),
    )


def _tenant_int(tenant_id: str | int) -> int | str:
    try:
        return int(tenant_id)
    except (TypeError, ValueError):
        return str(tenant_id)
