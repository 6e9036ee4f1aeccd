"""OpenADR 2.0b messages: safe parsing of VTN answers into OpenAdrEvent, and the VEN's requests.

openleadr's `create_message` renders the VEN's messages and its `parse_message` turns a VTN message into a
dict, but only after `xml_safety.safe_tree` has refused DTDs/entities and the schema has been checked.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from lxml import etree
from openleadr import messaging, utils

from cariflex_pipeline.openadr.durations import parse_moment
from cariflex_pipeline.openadr.errors import MalformedMessageError
from cariflex_pipeline.openadr.model import EventSignal, OpenAdrEvent, SignalInterval
from cariflex_pipeline.openadr.xml_safety import safe_tree, validate_20b_schema

OADR_NS = "http://openadr.org/oadr-2.0b/2012/07"
EI_NS = "http://docs.oasis-open.org/ns/energyinterop/201110"
XCAL_NS = "urn:ietf:params:xml:ns:icalendar-2.0"

_AWARE = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


def parse_vtn_message(data: bytes | str, what: str = "VTN message") -> tuple[str, dict[str, Any], etree._Element]:
    """Safely parse a 2.0b message: (message type, openleadr payload dict, lxml tree)."""
    tree = safe_tree(data, what)
    validate_20b_schema(tree, what)
    try:
        message_type, payload = messaging.parse_message(etree.tostring(tree))
    except Exception as error:  # openleadr raises KeyError/TypeError/ValueError on odd shapes
        raise MalformedMessageError(f"{what}: cannot be interpreted ({type(error).__name__}: {error})") from None
    return message_type, payload, tree


def create_message(message_type: str, **payload: Any) -> str:
    """Render a VEN message (unsigned: simpleHttp without XML signature)."""
    return messaging.create_message(message_type, disable_signature=True, **payload)


def events_from_distribute(payload: dict[str, Any], tree: etree._Element) -> list[OpenAdrEvent]:
    """Turn an oadrDistributeEvent into events; problems (naive times, odd fields) are kept on each event."""
    vtn_id = str(payload.get("vtn_id") or "")
    raw_by_id = {}
    for element in tree.iter(f"{{{OADR_NS}}}oadrEvent"):
        event_id = element.findtext(f".//{{{EI_NS}}}eventDescriptor/{{{EI_NS}}}eventID")
        raw_by_id[event_id] = element
    events = []
    for index, raw_event in enumerate(payload.get("events") or []):
        events.append(_event(raw_event, vtn_id, raw_by_id, index))
    return events


def _event(raw: dict[str, Any], vtn_id: str, raw_by_id: dict[str, etree._Element], index: int) -> OpenAdrEvent:
    descriptor = raw.get("event_descriptor") or {}
    event_id = str(descriptor.get("event_id") or f"#{index}")
    problems: list[str] = []
    element = raw_by_id.get(event_id)
    raw_xml = etree.tostring(element, encoding="unicode") if element is not None else ""
    if element is not None:
        for tag in (f"{{{XCAL_NS}}}date-time", f"{{{EI_NS}}}createdDateTime", f"{{{EI_NS}}}modificationDateTime"):
            for node in element.iter(tag):
                text = (node.text or "").strip()
                if text and not _AWARE.search(text):
                    problems.append(f"naive datetime {text!r} (no time zone)")
    modification = descriptor.get("modification_number", 0)
    if not isinstance(modification, int):
        problems.append(f"modification number {modification!r} is not an integer")
        modification = -1
    active = raw.get("active_period") or {}
    period_start = parse_moment(active.get("dtstart"), "activePeriod dtstart", problems)
    signals = []
    for raw_signal in _as_list(raw.get("event_signals")):
        signals.append(_signal(raw_signal, period_start, problems))
    status = str(descriptor.get("event_status") or "").lower()
    return OpenAdrEvent(
        protocol="2.0b",
        vtn_id=vtn_id,
        event_id=event_id,
        modification_number=modification,
        status=status,
        program=descriptor.get("market_context"),
        response_required=raw.get("response_required", "always") == "always",
        signals=tuple(signals),
        raw_payload=raw_xml,
        created=parse_moment(descriptor.get("created_date_time"), "createdDateTime", []),
        modified=parse_moment(descriptor.get("modification_date_time"), "modificationDateTime", []),
        problems=tuple(dict.fromkeys(problems)),
    )


def _signal(raw: dict[str, Any], period_start: datetime | None, problems: list[str]) -> EventSignal:
    measurement = raw.get("measurement") or {}
    unit, currency = _unit_of(measurement)
    intervals = []
    cursor = period_start
    for position, raw_interval in enumerate(_as_list(raw.get("intervals"))):
        where = f"signal {raw.get('signal_name')}: interval {position}"
        duration = raw_interval.get("duration")
        if not isinstance(duration, timedelta):
            problems.append(f"{where} has no valid duration")
            duration = timedelta(0)
        start = cursor
        if "dtstart" in raw_interval:
            start = parse_moment(raw_interval["dtstart"], f"{where} dtstart", problems)
        if start is None:
            problems.append(f"{where} has no start")
        intervals.append(
            SignalInterval(
                start=start,
                duration=duration,
                value=raw_interval.get("signal_payload"),
                uid=str(raw_interval.get("uid", position)),
            )
        )
        cursor = start + duration if isinstance(start, datetime) else None
    return EventSignal(
        intervals=tuple(intervals),
        signal_name=raw.get("signal_name"),
        signal_type=raw.get("signal_type"),
        unit=unit,
        currency=currency,
    )


def _unit_of(measurement: dict[str, Any]) -> tuple[str | None, str | None]:
    """The unit and currency an itemBase states, as `EUR/MWh`-style strings (None where it states none).

    currencyPerKWh (itemUnits = ISO 4217 code, siScaleCode none) -> CUR/kWh; a customUnit whose itemUnits reads
    like `EUR/MWh` or `%` is taken literally. Anything else is returned verbatim and rejected by normalization.
    """
    if not measurement:
        return None, None
    name = measurement.get("name")
    units = str(measurement.get("unit") or "")
    scale = str(measurement.get("scale") or "none")
    if name == "currencyPerKWh":
        if scale != "none":
            return f"{units}/kWh (siScaleCode {scale})", units
        return f"{units}/kWh", units
    if name == "customUnit":
        if "/" in units:
            return units, units.split("/", 1)[0]
        return units, None
    return f"{name}:{units}", None


def _as_list(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    return [item for item in value if isinstance(item, dict)]


def new_request_id() -> str:
    return utils.generate_id()
