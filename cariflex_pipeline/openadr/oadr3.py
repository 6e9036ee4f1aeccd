"""OpenADR 3.0.1 events (JSON) -> OpenAdrEvent, as `oadr20b` does for 2.0b; the VEN itself is `ven301`.

- intervals inherit the event's `intervalPeriod`: an interval without its own period starts where the
  previous one ended (the first at the event's start) and lasts the event's duration; its own period overrides;
- units and currency come from the event's `payloadDescriptors`;
- problems found (no id, naive or unreadable date-times, odd fields) are kept on the event, which normalization
  then rejects with its id named.

Modification number: 3.0.1 has none, so the version of an event is its `modificationDateTime` (epoch
seconds), or a CRC32 of its canonical JSON when the VTN sends no modification time.
"""

from __future__ import annotations

import json
import zlib
from datetime import datetime, timedelta
from typing import Any

from cariflex_pipeline.openadr.durations import parse_duration, parse_moment
from cariflex_pipeline.openadr.errors import MalformedMessageError
from cariflex_pipeline.openadr.model import EventSignal, OpenAdrEvent, SignalInterval

_UNIT_NAMES = {"KWH": "kWh", "MWH": "MWh", "PERCENT": "%", "KW": "kW", "MW": "MW"}


def parse_events_json(data: bytes | str, vtn_id: str) -> list[OpenAdrEvent]:
    """Parse a JSON array of 3.0.1 events (e.g. a saved GET /events answer)."""
    try:
        items = json.loads(data)
    except ValueError as error:
        raise MalformedMessageError(f"OpenADR 3.0.1 events of VTN {vtn_id!r}: malformed JSON ({error})") from None
    if not isinstance(items, list):
        raise MalformedMessageError(f"OpenADR 3.0.1 events of VTN {vtn_id!r}: expected a JSON array, "
                                    f"got {type(items).__name__}")
    return [parse_event(item, vtn_id, index) for index, item in enumerate(items)]


def parse_event(item: Any, vtn_id: str, index: int = 0) -> OpenAdrEvent:
    """One 3.0.1 event object; problems found are kept on the event, which normalization then rejects."""
    problems: list[str] = []
    if not isinstance(item, dict):
        return OpenAdrEvent(protocol="3.0.1", vtn_id=vtn_id, event_id=f"#{index}", modification_number=0,
                            status="active", program=None, response_required=False, signals=(),
                            raw_payload=json.dumps(item, default=str),
                            problems=(f"event #{index} is not a JSON object",))
    raw = json.dumps(item, sort_keys=True, default=str)
    event_id = str(item.get("id") or f"#{index}")
    if item.get("id") is None:
        problems.append("event has no id")
    program = item.get("programID")
    if not program:
        problems.append("event has no programID")
    created = parse_moment(item.get("createdDateTime"), "createdDateTime", problems)
    modified = parse_moment(item.get("modificationDateTime"), "modificationDateTime", problems)
    modification = int(modified.timestamp()) if modified and modified.tzinfo else zlib.crc32(raw.encode())
    descriptors = {}
    for descriptor in item.get("payloadDescriptors") or []:
        if isinstance(descriptor, dict) and descriptor.get("payloadType"):
            descriptors[descriptor["payloadType"]] = descriptor
    event_period = item.get("intervalPeriod")
    default_start, default_duration = _period(event_period, None, None, "event intervalPeriod", problems)
    intervals = item.get("intervals")
    by_type: dict[str, list[SignalInterval]] = {}
    if not isinstance(intervals, list):
        problems.append("intervals is not a list")
        intervals = []
    cursor = default_start
    for position, interval in enumerate(intervals):
        if not isinstance(interval, dict):
            problems.append(f"interval #{position} is not an object")
            continue
        uid = str(interval.get("id", position))
        start, duration = _period(interval.get("intervalPeriod"), cursor, default_duration,
                                  f"interval {uid} intervalPeriod", problems)
        if start is None:
            problems.append(f"interval {uid} has no start (neither its own nor the event's intervalPeriod)")
        if duration is None:
            duration = timedelta(0)
        cursor = start + duration if isinstance(start, datetime) else None
        payloads = interval.get("payloads")
        if not isinstance(payloads, list):
            problems.append(f"interval {uid}: payloads is not a list")
            continue
        for payload in payloads:
            if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
                problems.append(f"interval {uid}: payload without a type")
                continue
            values = payload.get("values")
            if not isinstance(values, list) or len(values) != 1:
                problems.append(f"interval {uid}: payload {payload['type']} needs exactly one value, got {values!r}")
                continue
            by_type.setdefault(payload["type"], []).append(
                SignalInterval(start=start, duration=duration, value=values[0], uid=uid)
            )
    signals = []
    for payload_type, signal_intervals in by_type.items():
        descriptor = descriptors.get(payload_type, {})
        unit, currency = _unit(descriptor)
        signals.append(EventSignal(intervals=tuple(signal_intervals), payload_type=payload_type, unit=unit,
                                   currency=currency))
    return OpenAdrEvent(
        protocol="3.0.1", vtn_id=vtn_id, event_id=event_id, modification_number=modification, status="active",
        program=program, response_required=False, signals=tuple(signals), raw_payload=raw, created=created,
        modified=modified, problems=tuple(problems),
    )


def _unit(descriptor: dict[str, Any]) -> tuple[str | None, str | None]:
    """(unit, currency) from a payloadDescriptor: KWH + EUR -> EUR/kWh; a bare KWH price -> `/kWh`
    (normalization supplies the program's currency); PERCENT -> %; unknown units verbatim."""
    units = descriptor.get("units")
    currency = descriptor.get("currency")
    if units is None:
        return (None, currency)
    name = _UNIT_NAMES.get(str(units).upper(), str(units))
    if name in ("kWh", "MWh"):
        return f"{currency or ''}/{name}", currency
    return name, currency


def _period(period: Any, default_start: datetime | None, default_duration: timedelta | None, what: str,
            problems: list[str]) -> tuple[datetime | None, timedelta | None]:
    if period is None:
        return default_start, default_duration
    if not isinstance(period, dict):
        problems.append(f"{what} is not an object")
        return default_start, default_duration
    start = parse_moment(period.get("start"), f"{what}.start", problems) if "start" in period else default_start
    duration = default_duration
    if "duration" in period:
        try:
            duration = parse_duration(period["duration"])
        except ValueError as error:
            problems.append(f"{what}.duration: {error}")
    elif default_duration is None:
        duration = timedelta(0)  # the spec's default PT0S
    return start, duration
