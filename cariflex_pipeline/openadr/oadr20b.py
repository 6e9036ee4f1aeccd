"""OpenADR 2.0b messages: safe parsing of VTN answers into OpenAdrEvent, and the VEN's requests.

openleadr's `create_message` renders the VEN's messages and its `parse_message` turns a VTN message into a
dict, but only after `xml_safety.safe_tree` has refused DTDs/entities and the schema has been checked. The events
of an oadrDistributeEvent are interpreted one by one: one that openleadr cannot read (a duration beyond any
timedelta) becomes a rejected event of its own instead of refusing the whole message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from lxml import etree
from openleadr import messaging, utils

from cariflex_pipeline.openadr.durations import parse_moment
from cariflex_pipeline.openadr.errors import MalformedMessageError
from cariflex_pipeline.openadr.limits import (
    INT64,
    MAX_ID,
    MAX_PROGRAM,
    MAX_STATUS,
    duration_problem,
    shown,
    text_problem,
)
from cariflex_pipeline.openadr.model import EventSignal, OpenAdrEvent, SignalInterval
from cariflex_pipeline.openadr.xml_safety import safe_tree, validate_20b_schema

OADR_NS = "http://openadr.org/oadr-2.0b/2012/07"
EI_NS = "http://docs.oasis-open.org/ns/energyinterop/201110"
XCAL_NS = "urn:ietf:params:xml:ns:icalendar-2.0"

_AWARE = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


def parse_vtn_message(data: bytes | str, what: str = "VTN message") -> tuple[str, dict[str, Any], etree._Element]:
    """Safely parse a 2.0b message: (message type, openleadr payload dict, lxml tree). The payload of an
    oadrDistributeEvent holds its header only; `events_from_distribute` reads its events from the tree."""
    tree = safe_tree(data, what)
    validate_20b_schema(tree, what)
    with _detached_events(tree):
        message_type, payload = _interpret(tree, what)
    return message_type, payload, tree


def _interpret(tree: etree._Element, what: str) -> tuple[str, dict[str, Any]]:
    try:
        return messaging.parse_message(etree.tostring(tree))
    except Exception as error:  # openleadr raises KeyError/TypeError/ValueError/OverflowError on odd shapes
        raise MalformedMessageError(f"{what}: cannot be interpreted ({type(error).__name__}: "
                                    f"{shown(str(error), 120)})") from None


@contextmanager
def _detached_events(tree: etree._Element) -> Iterator[list[etree._Element]]:
    """The oadrEvent elements, taken out of the tree for the block (so it can be interpreted without them, or
    with one of them at a time) and put back, in order, after it."""
    events = [element for element in tree.iter(f"{{{OADR_NS}}}oadrEvent")]
    parents = [element.getparent() for element in events]
    for element, parent in zip(events, parents, strict=True):
        parent.remove(element)
    try:
        yield events
    finally:
        for element, parent in zip(events, parents, strict=True):
            parent.append(element)


def create_message(message_type: str, **payload: Any) -> str:
    """Render a VEN message (unsigned: simpleHttp without XML signature)."""
    return messaging.create_message(message_type, disable_signature=True, **payload)


def events_from_distribute(payload: dict[str, Any], tree: etree._Element) -> list[OpenAdrEvent]:
    """Turn an oadrDistributeEvent into events, each interpreted on its own; problems (naive times, odd fields,
    an event openleadr cannot read) are kept on each event, which normalization then rejects."""
    vtn_id = payload.get("vtn_id")
    vtn_problem = text_problem(vtn_id, "vtnID", MAX_ID)
    vtn_id = "#invalid-vtn-id" if vtn_problem else vtn_id
    events = []
    with _detached_events(tree) as elements:
        for index, element in enumerate(elements):
            element_id = element.findtext(f".//{{{EI_NS}}}eventDescriptor/{{{EI_NS}}}eventID")
            event_id = f"#{index}" if text_problem(element_id, "eventID", MAX_ID) else element_id
            events.append(_event_of(element, tree, vtn_id, event_id, vtn_problem))
    return events


def _event_of(element: etree._Element, tree: etree._Element, vtn_id: str, event_id: str,
              vtn_problem: str | None) -> OpenAdrEvent:
    raw_xml = etree.tostring(element, encoding="unicode")
    parent = next(tree.iter(f"{{{OADR_NS}}}oadrDistributeEvent"))
    parent.append(element)
    try:
        _, payload = _interpret(tree, f"event {event_id!r}")
        raw_event = (payload.get("events") or [{}])[0]
        problems = [vtn_problem] if vtn_problem else []
    except MalformedMessageError as error:
        raw_event, problems = {}, [str(error)]
    finally:
        parent.remove(element)
    return _event(raw_event, vtn_id, event_id, element, raw_xml, problems)


def _event(raw: dict[str, Any], vtn_id: str, event_id: str, element: etree._Element, raw_xml: str,
           problems: list[str]) -> OpenAdrEvent:
    descriptor = raw.get("event_descriptor") or {}
    if descriptor.get("event_id") != event_id:
        problems.append(f"eventID {shown(descriptor.get('event_id'))} is not a string of 1..{MAX_ID} characters")
    program = descriptor.get("market_context")
    program_problem = text_problem(program, "marketContext", MAX_PROGRAM) if program is not None else None
    if program_problem:
        problems.append(program_problem)
        program = None
    for tag in (f"{{{XCAL_NS}}}date-time", f"{{{EI_NS}}}createdDateTime", f"{{{EI_NS}}}modificationDateTime"):
        for node in element.iter(tag):
            text = (node.text or "").strip()
            if text and not _AWARE.search(text):
                problems.append(f"naive datetime {text!r} (no time zone)")
    modification = descriptor.get("modification_number", 0)
    if isinstance(modification, bool) or not isinstance(modification, int) or not 0 <= modification <= INT64[1]:
        problems.append(f"modification number {shown(modification)} is not an integer in 0..{INT64[1]}")
        modification = -1
    active = raw.get("active_period") or {}
    period_start = parse_moment(active.get("dtstart"), "activePeriod dtstart", problems)
    signals = []
    for raw_signal in _as_list(raw.get("event_signals")):
        signals.append(_signal(raw_signal, period_start, problems))
    status = str(descriptor.get("event_status") or "").lower()[:MAX_STATUS]
    return OpenAdrEvent(
        protocol="2.0b",
        vtn_id=vtn_id,
        event_id=event_id,
        modification_number=modification,
        status=status,
        program=program,
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
        if not isinstance(duration, timedelta) or duration_problem(duration, where):
            problems.append(f"{where} has no valid duration ({shown(duration)})")
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
