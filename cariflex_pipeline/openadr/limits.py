"""What a VTN may send, checked before anything reaches the database or the arithmetic.

Both parsers note what breaks these limits as problems of the event (which normalization then rejects, naming
the field); `identity_problems` is checked again by ingestion for events built elsewhere (the sample feed,
tests). The lengths are those of the `openadr_events` columns; PostgreSQL refuses NUL characters and strings that
are not valid UTF-8 (lone surrogates), SQLite and PostgreSQL both refuse integers beyond 64 bits.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cariflex_pipeline.openadr.errors import MalformedMessageError

if TYPE_CHECKING:
    from cariflex_pipeline.openadr.model import OpenAdrEvent

MAX_ID = 200  # openadr_events.vtn_id, .event_id
MAX_SOURCE_NAME = 200  # data_sources.name, which holds source_name(vtn id, event id)
MAX_PROGRAM = 400  # openadr_events.program
MAX_STATUS = 40  # openadr_events.status
MAX_JSON_DEPTH = 32  # a 3.0.1 event is 5 levels deep; far deeper is an attack, not an event
MAX_INT_DIGITS = 40  # JSON integers longer than this are read as +-inf, which every check refuses
INT64 = (-(2**63), 2**63 - 1)
# Times and durations an event may state: inside these bounds no sum of a start and a duration overflows, and a
# modification time in microseconds fits a 64-bit column.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_DURATION = timedelta(days=3660)


def shown(value: Any, limit: int = 60) -> str:
    """A short repr for messages: a hostile value may be megabytes long."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # ints beyond Python's digit limit, deep nesting
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


def text_problem(value: Any, field: str, max_length: int, min_length: int = 1) -> str | None:
    """Why `value` cannot be stored as the text of `field` (None: it can)."""
    if not isinstance(value, str):
        return f"{field} {shown(value)} is not a string"
    if not min_length <= len(value) <= max_length:
        return f"{field} has {len(value)} characters ({min_length}..{max_length} allowed)"
    if "\x00" in value:
        return f"{field} {shown(value)} contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{field} {shown(value)} is not valid UTF-8 text"
    return None


def source_name(vtn_id: str, event_id: str) -> str:
    """The data source of one event's values in the store."""
    return f"openadr:{vtn_id}/{event_id}"


def identity_problems(event: OpenAdrEvent) -> list[str]:
    """What keeps `event` from being looked up and logged: its VTN, id, program, status, version."""
    problems = [text_problem(event.vtn_id, "VTN id", MAX_ID), text_problem(event.event_id, "event id", MAX_ID),
                None if event.program is None else text_problem(event.program, "program", MAX_PROGRAM),
                text_problem(event.status, "status", MAX_STATUS, min_length=0)]
    if isinstance(event.vtn_id, str) and isinstance(event.event_id, str) and len(
            source_name(event.vtn_id, event.event_id)) > MAX_SOURCE_NAME:
        # each id fits its own column, yet together they name the event's data source
        problems.append(f"VTN id and event id are {len(event.vtn_id) + len(event.event_id)} characters together; "
                        f"at most {MAX_SOURCE_NAME - len(source_name('', ''))} fit the event's data source name")
    number = event.modification_number
    if isinstance(number, bool) or not isinstance(number, int) or not INT64[0] <= number <= INT64[1]:
        problems.append(f"modification number {shown(number)} is not a 64-bit integer")
    return [problem for problem in problems if problem is not None]


def moment_problem(moment: datetime, field: str) -> str | None:
    """Why an aware `moment` is out of bounds (None: it is within them)."""
    try:
        inside = EARLIEST <= moment.astimezone(UTC) < LATEST
    except OverflowError:  # year 1 with a negative offset, year 9999 with a positive one
        inside = False
    return None if inside else f"{field} {moment.isoformat()} is not between {EARLIEST.year} and {LATEST.year}"


def duration_problem(duration: timedelta, field: str) -> str | None:
    if abs(duration) > MAX_DURATION:
        return f"{field} {duration} is longer than {MAX_DURATION.days} days"
    return None


def load_json(data: bytes | str, what: str) -> Any:
    """JSON from a VTN, or MalformedMessageError naming `what`: never RecursionError (deep nesting), never
    ValueError for an integer of thousands of digits (read as +-inf instead, refused by the checks later)."""
    try:
        return json.loads(data, parse_int=_bounded_int)
    except (ValueError, RecursionError) as error:
        raise MalformedMessageError(f"{what}: malformed JSON ({type(error).__name__}: {shown(str(error), 120)})"
                                    ) from None


def _bounded_int(text: str) -> int | float:
    if len(text.lstrip("-")) <= MAX_INT_DIGITS:
        return int(text)
    return float("-inf") if text.startswith("-") else float("inf")


def depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (iteratively: no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_JSON_DEPTH:
                stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest
