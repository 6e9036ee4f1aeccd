"""ISO 8601 as OpenADR uses it: durations (PT15M, PT1H, P1D, P1W, PT0S, fractional seconds) and date-times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from cariflex_pipeline.openadr.limits import duration_problem, moment_problem, shown

_DURATION = re.compile(
    r"^(?P<sign>[+-])?P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """Parse an ISO 8601 duration; calendar units (years, months) are refused: their length is not fixed, and so
    is anything longer than `limits.MAX_DURATION` (ValueError, never OverflowError)."""
    if not isinstance(text, str):
        raise ValueError(f"duration {shown(text)} is not a string")
    match = _DURATION.match(text.strip())
    if match is None or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        raise ValueError(f"invalid or unsupported ISO 8601 duration {shown(text)} (years/months are not supported)")
    parts = {name: float(value) for name, value in match.groupdict().items() if value and name != "sign"}
    try:
        duration = timedelta(**parts)
    except OverflowError:
        raise ValueError(f"duration {shown(text)} is out of range") from None
    problem = duration_problem(duration, "duration")
    if problem is not None:
        raise ValueError(problem)
    return -duration if match.group("sign") == "-" else duration


def parse_moment(value: Any, what: str, problems: list[str]) -> datetime | None:
    """An ISO 8601 date-time (or a datetime a parser already made) for the field `what`; None when absent.

    An unreadable, naive (no time zone) or out-of-bounds (`limits.EARLIEST`..`LATEST`) value is noted in
    `problems`, which gets the event rejected; an out-of-bounds one is returned as None, so that no later sum of
    a start and a duration can overflow.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            problems.append(f"{what} {shown(value)} is not an ISO 8601 date-time")
            return None
    else:
        problems.append(f"{what} {shown(value)} is not a date-time string")
        return None
    naive = moment.tzinfo is None or moment.utcoffset() is None
    if naive:
        problems.append(f"{what}: naive datetime {shown(str(value))} (no time zone)")
    problem = moment_problem(moment.replace(tzinfo=UTC) if naive else moment, what)
    if problem is not None:
        problems.append(problem)
        return None
    return moment
