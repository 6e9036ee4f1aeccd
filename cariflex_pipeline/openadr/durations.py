"""ISO 8601 as OpenADR uses it: durations (PT15M, PT1H, P1D, P1W, PT0S, fractional seconds) and date-times."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

_DURATION = re.compile(
    r"^(?P<sign>[+-])?P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """Parse an ISO 8601 duration; calendar units (years, months) are refused: their length is not fixed."""
    if not isinstance(text, str):
        raise ValueError(f"duration {text!r} is not a string")
    match = _DURATION.match(text.strip())
    if match is None or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        raise ValueError(f"invalid or unsupported ISO 8601 duration {text!r} (years/months are not supported)")
    parts = {name: float(value) for name, value in match.groupdict().items() if value and name != "sign"}
    duration = timedelta(**parts)
    return -duration if match.group("sign") == "-" else duration


def parse_moment(value: Any, what: str, problems: list[str]) -> datetime | None:
    """An ISO 8601 date-time (or a datetime a parser already made) for the field `what`; None when absent.

    An unreadable or naive (no time zone) value is noted in `problems`, which gets the event rejected.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            problems.append(f"{what} {value!r} is not an ISO 8601 date-time")
            return None
    if moment.tzinfo is None:
        problems.append(f"{what}: naive datetime {str(value)!r} (no time zone)")
    return moment
