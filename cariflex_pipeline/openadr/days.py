"""Local days (the site's time zone): which days an event or a time range touches, and ranges cut at midnight.

The Dagster partitions are these days; ingestion counts its figures per day with the same rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cariflex_pipeline.openadr.model import EventSignal, OpenAdrEvent, RegularIntervals


def days_between(start: date, end: date) -> list[date]:
    """Days in [start, end)."""
    return [start + timedelta(days=offset) for offset in range((end - start).days)]


def local_days(start: datetime, end: datetime, tz: ZoneInfo) -> tuple[date, ...]:
    """The local days that [start, end) touches (none when the range is empty)."""
    if end <= start:
        return ()
    first = start.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    return tuple(days_between(first, last + timedelta(days=1)))


def event_days(event: OpenAdrEvent, tz: ZoneInfo) -> tuple[date, ...]:
    """The local days the intervals of `event` touch (intervals without an aware start are skipped).

    Back-to-back intervals are merged into spans first: a day of 96 quarter hours is one span, not 96."""
    spans = sorted(span for signal in event.signals for span in _spans(signal))
    days: set[date] = set()
    merged: list[list[datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in merged:
        days.update(local_days(start, end, tz))
    return tuple(sorted(days))


def _spans(signal: EventSignal) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) of each interval with an aware start; one span for a back-to-back signal."""
    intervals = signal.intervals
    if isinstance(intervals, RegularIntervals):
        if intervals.start.utcoffset() is not None:
            yield intervals.start, intervals.end()
        return
    for interval in intervals:
        if isinstance(interval.start, datetime) and interval.start.utcoffset() is not None:
            yield interval.start, interval.start + interval.duration


def split_at_midnight(start: datetime, end: datetime, tz: ZoneInfo) -> Iterator[tuple[date, datetime, datetime]]:
    """[start, end) cut at local midnights: (local day, piece start, piece end) in order."""
    for day in local_days(start, end, tz):
        day_start = datetime.combine(day, time(), tz)
        day_end = datetime.combine(day + timedelta(days=1), time(), tz)
        yield day, max(start, day_start), min(end, day_end)
