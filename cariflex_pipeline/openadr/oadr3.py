"""OpenADR 3.0.1 events (JSON) -> OpenAdrEvent, as `oadr20b` does for 2.0b; the VEN itself is `ven301`.

- intervals inherit the event's `intervalPeriod`: an interval without its own period starts where the
  previous one ended (the first at the event's start) and lasts the event's duration; its own period overrides;
- units and currency come from the event's `payloadDescriptors`;
- problems found (no id, naive or unreadable date-times, fields of the wrong type or length, values out of
  `limits`) are kept on the event, which normalization then rejects with its id and the field named. Nothing a
  VTN sends raises anything but the project's errors here.

Version of an event: its `modificationDateTime` in microseconds since the epoch (full precision, so a change a
fraction of a second later is newer). Without one the event is `sequenced`: ingestion numbers its versions in
the order it sees their contents change (`versions.resolve`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cariflex_pipeline.openadr.durations import parse_duration, parse_moment
from cariflex_pipeline.openadr.errors import MalformedMessageError
from cariflex_pipeline.openadr.limits import (
    MAX_ID,
    MAX_JSON_DEPTH,
    MAX_PROGRAM,
    canonical_json,
    gc_paused,
    load_json,
    shown,
    text_problem,
)
from cariflex_pipeline.openadr.model import (
    EventSignal,
    Intervals,
    OpenAdrEvent,
    RegularIntervals,
    SignalInterval,
    interval_uid,
)

_UNIT_NAMES = {"KWH": "kWh", "MWH": "MWh", "PERCENT": "%", "KW": "kW", "MW": "MW"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_events_json(data: bytes | str, vtn_id: str) -> list[OpenAdrEvent]:
    """Parse a JSON array of 3.0.1 events (e.g. a saved GET /events answer); read and parsed in one pause of
    the garbage collector (see `parse_items`)."""
    with gc_paused():
        items = load_json(data, f"OpenADR 3.0.1 events of VTN {vtn_id!r}")
        if not isinstance(items, list):
            raise MalformedMessageError(f"OpenADR 3.0.1 events of VTN {vtn_id!r}: expected a JSON array, "
                                        f"got {type(items).__name__}")
        return parse_items(items, vtn_id)


def parse_items(items: list[Any], vtn_id: str) -> list[OpenAdrEvent]:
    """The events of a listing's items, which are emptied (`items` is left an empty list): parsed in one pause of
    the garbage collector and the JSON let go before it resumes, so that the collection after the pause walks
    the events only, not the millions of objects a large listing is read into (that walk took half as long as
    the parse)."""
    with gc_paused():
        events = [parse_event(item, vtn_id, index) for index, item in enumerate(items)]
        items.clear()
    return events


def parse_event(item: Any, vtn_id: str, index: int = 0) -> OpenAdrEvent:
    """One 3.0.1 event object; problems found are kept on the event, which normalization then rejects."""
    if not isinstance(item, dict):
        return _refused(vtn_id, index, f"event #{index} is not a JSON object", item)
    raw = canonical_json(item)
    if raw is None:
        return _refused(vtn_id, index, f"event #{index} nests deeper than {MAX_JSON_DEPTH} levels", item)
    problems: list[str] = []
    id_problem = text_problem(item.get("id"), "id", MAX_ID)
    event_id = f"#{index}" if id_problem else item["id"]
    if id_problem:
        problems.append(id_problem)
    program = item.get("programID")
    program_problem = text_problem(program, "programID", MAX_PROGRAM)
    if program_problem:
        problems.append(program_problem)
        program = None
    created = parse_moment(item.get("createdDateTime"), "createdDateTime", problems)
    modified = parse_moment(item.get("modificationDateTime"), "modificationDateTime", problems)
    aware = modified is not None and modified.utcoffset() is not None
    signals = _signals(item, _descriptors(item.get("payloadDescriptors"), problems), problems)
    return OpenAdrEvent(
        protocol="3.0.1", vtn_id=vtn_id, event_id=event_id,
        modification_number=(modified - _EPOCH) // timedelta(microseconds=1) if aware else 0,
        status="active", program=program, response_required=False, signals=signals, raw_payload=raw,
        created=created, modified=modified, problems=tuple(problems), sequenced=not aware,
    )


def _refused(vtn_id: str, index: int, problem: str, item: Any) -> OpenAdrEvent:
    """An item that cannot be read as an event at all: kept (so it is reported as rejected), never stored."""
    own_id = item.get("id") if isinstance(item, dict) else None
    event_id = f"#{index}" if text_problem(own_id, "id", MAX_ID) else own_id
    return OpenAdrEvent(protocol="3.0.1", vtn_id=vtn_id, event_id=event_id, modification_number=0,
                        status="active", program=None, response_required=False, signals=(),
                        raw_payload=shown(item, 200), problems=(problem,))


def _descriptors(descriptors: Any, problems: list[str]) -> dict[str, dict[str, Any]]:
    """payloadDescriptors by payload type."""
    if descriptors is None:
        return {}
    if not isinstance(descriptors, list):
        problems.append(f"payloadDescriptors {shown(descriptors)} is not a list")
        return {}
    by_type = {}
    for position, descriptor in enumerate(descriptors):
        if not isinstance(descriptor, dict) or not isinstance(descriptor.get("payloadType"), str):
            problems.append(f"payloadDescriptors #{position} {shown(descriptor)} is not an object with a payloadType")
            continue
        for field in ("units", "currency"):
            if descriptor.get(field) is not None and not isinstance(descriptor[field], str):
                problems.append(f"payloadDescriptors #{position}.{field} {shown(descriptor[field])} is not a string")
        by_type[descriptor["payloadType"]] = descriptor
    return by_type


def _signals(item: dict[str, Any], descriptors: dict[str, dict[str, Any]],
             problems: list[str]) -> tuple[EventSignal, ...]:
    default_start, default_duration = _period(item.get("intervalPeriod"), None, None, "event intervalPeriod",
                                              problems)
    intervals = item.get("intervals")
    if not isinstance(intervals, list):
        problems.append("intervals is not a list")
        intervals = []
    columns = _regular_columns(intervals, default_start, default_duration)
    if columns is not None:
        by_type: dict[str, Intervals] = columns
    else:
        by_type = _each_interval(intervals, default_start, default_duration, problems)
    signals = []
    for payload_type, signal_intervals in by_type.items():
        unit, currency = _unit(descriptors.get(payload_type, {}))
        signals.append(EventSignal(intervals=signal_intervals, payload_type=payload_type, unit=unit,
                                   currency=currency))
    return tuple(signals)


def _regular_columns(intervals: list[Any], start: datetime | None,
                     duration: timedelta | None) -> dict[str, RegularIntervals] | None:
    """The common shape, read as columns: every interval an object without a period of its own, holding one
    payload, of the first one's type, with exactly one value. None when any interval differs (several payload
    types too: rarer, and the loop for them took twice as long), or the intervals would run past the year
    9999: `_each_interval` then reads them one by one and names what is wrong."""
    if not isinstance(start, datetime) or not intervals or type(intervals[0]) is not dict:
        return None
    duration = timedelta(0) if duration is None else duration
    first = intervals[0].get("payloads")
    if type(first) is not list or len(first) != 1 or type(first[0]) is not dict or type(
            first[0].get("type")) is not str:
        return None
    kind = first[0]["type"]
    values: list[Any] = []
    ids: list[Any] = []
    add_value, add_id = values.append, ids.append  # bound once: this loop runs for every interval of a listing
    for position, interval in enumerate(intervals):
        if type(interval) is not dict or interval.get("intervalPeriod") is not None:
            return None
        payloads = interval.get("payloads")
        if type(payloads) is not list or len(payloads) != 1:
            return None
        payload = payloads[0]
        value = payload.get("values") if type(payload) is dict and payload.get("type") == kind else None
        if type(value) is not list or len(value) != 1:
            return None
        add_value(value[0])
        add_id(interval.get("id", position))
    try:
        start + duration * len(intervals)
    except OverflowError:
        return None
    return {kind: RegularIntervals(start, duration, tuple(values), tuple(ids))}


def _each_interval(intervals: list[Any], default_start: datetime | None, default_duration: timedelta | None,
                   problems: list[str]) -> dict[str, tuple[SignalInterval, ...]]:
    """The intervals of each payload type, read one by one: any shape, every problem named."""
    by_type: dict[str, list[SignalInterval]] = {}
    cursor = default_start
    for position, interval in enumerate(intervals):
        if not isinstance(interval, dict):
            problems.append(f"interval #{position} is not an object")
            continue
        uid = interval_uid(interval.get("id", position))
        period = interval.get("intervalPeriod")
        if period is None:  # intervals without a period of their own follow each other from the event's
            start, duration = cursor, default_duration
        else:
            start, duration = _period(period, cursor, default_duration, f"interval {uid} intervalPeriod", problems)
        if start is None:
            problems.append(f"interval {uid} has no start (neither its own nor the event's intervalPeriod)")
        if duration is None:
            duration = timedelta(0)
        try:
            cursor = start + duration if isinstance(start, datetime) else None
        except OverflowError:  # thousands of long intervals run past the year 9999
            problems.append(f"interval {uid} ends after the year {datetime.max.year}")
            cursor = None
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
                problems.append(f"interval {uid}: payload {shown(payload['type'])} needs exactly one value, "
                                f"got {shown(values)}")
                continue
            by_type.setdefault(payload["type"], []).append(SignalInterval(start, duration, values[0], uid))
    return {kind: tuple(signal_intervals) for kind, signal_intervals in by_type.items()}


def _unit(descriptor: dict[str, Any]) -> tuple[str | None, str | None]:
    """(unit, currency) from a payloadDescriptor: KWH + EUR -> EUR/kWh; a bare KWH price -> `/kWh`
    (normalization supplies the program's currency); PERCENT -> %; unknown units verbatim."""
    units = descriptor.get("units")
    currency = descriptor.get("currency") if isinstance(descriptor.get("currency"), str) else None
    if not isinstance(units, str):  # absent, or noted as a problem by `_descriptors`
        return (None, currency)
    name = _UNIT_NAMES.get(units.upper(), units)
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
