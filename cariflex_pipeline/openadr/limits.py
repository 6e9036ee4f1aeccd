"""What a VTN may send, checked before anything reaches the database or the arithmetic.

Both parsers note what breaks these limits as problems of the event (which normalization then rejects, naming
the field); `identity_problems` is checked again by ingestion for events built elsewhere (the sample feed,
tests). The lengths are those of the `openadr_events` columns; PostgreSQL refuses NUL characters and strings that
are not valid UTF-8 (lone surrogates), SQLite and PostgreSQL both refuse integers beyond 64 bits.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from cariflex_pipeline.openadr.errors import MalformedMessageError

if TYPE_CHECKING:
    from cariflex_pipeline.openadr.model import OpenAdrEvent

MAX_ID = 200  # openadr_events.vtn_id, .event_id
MAX_SOURCE_NAME = 200  # data_sources.name, which holds source_name(vtn id, event id)
MAX_PROGRAM = 400  # openadr_events.program
MAX_STATUS = 40  # openadr_events.status
# A 3.0.1 event is 5 levels deep; far deeper is an attack, not an event. The bound is orjson's own (it writes
# the event's canonical text and refuses deeper nesting), so that only what it refuses needs a walk of its own.
MAX_JSON_DEPTH = 254
# 20 digits in a row: an integer that may not fit 64 bits (19 digits always do), or a long fraction. Found by
# mapping every ASCII digit to "0" and everything else to " " and looking for 20 zeros: a substring search in C,
# ten times faster than the regular expression \d{20} over a listing of megabytes.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_RUN = b"0" * 20
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
    ValueError for an integer of thousands of digits (read as +-inf instead, refused by the checks later).

    orjson reads it (twice as fast as json); json reads what orjson refuses whole (a number beyond a double,
    NaN, a lone surrogate, nesting past 1,024 levels), so that one such value rejects its event, not the
    listing, and any text with a run of 20 digits or more: orjson reads integers beyond 64 bits as floats, and a
    message naming such a field should show what the VTN sent."""
    with gc_paused():
        if not _has_long_number(data):
            try:
                return orjson.loads(data)
            except orjson.JSONDecodeError:
                pass
        try:
            return json.loads(data, parse_int=_bounded_int)
        except (ValueError, RecursionError) as error:
            raise MalformedMessageError(f"{what}: malformed JSON ({type(error).__name__}: "
                                        f"{shown(str(error), 120)})") from None


def _has_long_number(data: bytes | str) -> bool:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return _LONG_RUN in raw.translate(_DIGITS_AS_ZEROS)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a large message is read: building its hundreds of thousands of
    objects otherwise sets off collection after collection over the whole heap (three quarters of the time of a
    `json.loads` of a 5,000-event listing). What JSON and the parsers build holds no cycles, so nothing waits
    for the collector that would otherwise have been freed; it runs again, as before, when this ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def canonical_json(item: Any) -> str | None:
    """The text an event's payload is stored as: keys sorted, so the same content always gives the same text (a
    sequenced 3.0.1 event's version changes when its text does); None when `item` nests deeper than
    `MAX_JSON_DEPTH`. orjson writes it ten times faster than json, which matters in a listing of thousands; what
    orjson refuses (nesting past its limit, integers beyond 64 bits, lone surrogates) is written by json once its
    depth is known to be safe. orjson writes non-finite numbers, which JSON cannot hold, as null."""
    try:
        return orjson.dumps(item, option=orjson.OPT_SORT_KEYS).decode()
    except (orjson.JSONEncodeError, UnicodeDecodeError):
        if depth(item) > MAX_JSON_DEPTH:
            return None
        return json.dumps(item, sort_keys=True, default=str)


def _bounded_int(text: str) -> int | float:
    if len(text.lstrip("-")) <= MAX_INT_DIGITS:
        return int(text)
    return float("-inf") if text.startswith("-") else float("inf")


def depth(value: Any) -> int:
    """How deeply lists and objects nest in `value`, counted up to just past `MAX_JSON_DEPTH`: level by level
    (no recursion on hostile input), visiting only containers of JSON's own types (dict, list), which is what
    keeps it cheap next to the parse of a large listing."""
    level = [value] if type(value) is dict or type(value) is list else []
    deepest = 0
    while level and deepest <= MAX_JSON_DEPTH:
        deepest += 1
        below = []
        for item in level:
            for child in item.values() if type(item) is dict else item:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level = below
    return deepest
