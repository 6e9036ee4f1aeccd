"""Times in and out of the database: aware UTC on PostgreSQL (timestamptz), naive UTC text on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine


def to_db_time(engine: Engine, moment: datetime | None) -> datetime | None:
    """A bind value for a `DateTime(timezone=True)` column; refuses naive times instead of guessing a zone."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError(f"time {moment.isoformat()} has no time zone")
    utc = moment.astimezone(UTC)
    return utc if engine.dialect.name == "postgresql" else utc.replace(tzinfo=None)


def from_db_time(moment: datetime | None) -> datetime | None:
    """An aware UTC time from what either backend returns."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
