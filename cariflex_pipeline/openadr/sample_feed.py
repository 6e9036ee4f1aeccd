"""The bundled sample feed: a day-ahead day for Martinique in OpenADR 2.0b form, for when no VTN is configured.

`data/sample_day_ahead.xml` is an oadrDistributeEvent for a template day (2026-01-01 local). It goes through the
same safe parser as a VTN's answer; `sample_events(day)` shifts it onto `day` (local midnight to local
midnight) under day-specific event ids (`sample-price-20261128`), so that any day, and a backfill over a range
of days, gets values.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from cariflex_pipeline.openadr.model import OpenAdrEvent
from cariflex_pipeline.openadr.oadr20b import events_from_distribute, parse_vtn_message

SAMPLE_FILE = Path(__file__).with_name("data") / "sample_day_ahead.xml"
TEMPLATE_DAY = date(2026, 1, 1)
SAMPLE_VTN_ID = "CARIFLEX_SAMPLE_VTN"


@lru_cache(maxsize=4)
def template_events(path: Path = SAMPLE_FILE) -> tuple[OpenAdrEvent, ...]:
    message_type, payload, tree = parse_vtn_message(path.read_bytes(), f"sample feed {path.name}")
    if message_type != "oadrDistributeEvent":
        raise ValueError(f"sample feed {path}: expected an oadrDistributeEvent, got {message_type}")
    return tuple(events_from_distribute(payload, tree))


def sample_events(day: date, timezone: str = "America/Martinique", path: Path = SAMPLE_FILE) -> list[OpenAdrEvent]:
    """The template day's events moved onto `day` in `timezone`."""
    zone = ZoneInfo(timezone)
    delta = datetime.combine(day, time(), zone) - datetime.combine(TEMPLATE_DAY, time(), zone)
    stamp = day.strftime("%Y%m%d")
    return [
        replace(event.shifted(delta, f"{event.event_id}-{stamp}"), status="far", response_required=False)
        for event in template_events(path)
    ]
