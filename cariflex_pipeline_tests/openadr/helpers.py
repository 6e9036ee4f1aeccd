"""Small helpers shared by the OpenADR tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from cariflex_pipeline.openadr.tables import openadr_events
from cariflex_pipeline.store import TimeSeriesStore

Q = timedelta(minutes=15)
SITE_ID = "cariflex-martinique"  # the site id of the bundled site file as a one-site portfolio


def next_day_start() -> datetime:
    """A whole UTC hour one day ahead: events there are 'far' for the VTN."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)


def series(store: TimeSeriesStore, sensor_id: int, start: datetime | None = None,
           end: datetime | None = None) -> list[tuple[datetime, float]]:
    frame = store.read_latest([sensor_id], start, end)
    return [(row.event_start.to_pydatetime(), row.value) for row in frame.itertuples()]


def slots(start: datetime, values: list[float], per_value: int) -> list[tuple[datetime, float]]:
    """Expected 15-minute series: each value repeated `per_value` slots from `start`."""
    expected = []
    for index, value in enumerate(values):
        for offset in range(per_value):
            expected.append((start + (index * per_value + offset) * Q, value))
    return expected


def audit_rows(store: TimeSeriesStore) -> int:
    with store.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(openadr_events))


def belief_count(store: TimeSeriesStore) -> int:
    return len(store.read_latest([84, 85, 86, 87]))
