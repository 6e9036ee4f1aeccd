"""sessions_between: the sessions of a past or current day, for the derived series (on both stores)."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from cariflex_pipeline.dispatch.sessions import sessions_between
from cariflex_pipeline.dispatch.tables import ev_sessions
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline.store.times import to_db_time

DAY = datetime(2026, 11, 28, 4, tzinfo=UTC)  # midnight in Martinique


def _row(store: TimeSeriesStore, transaction: str, arrival_h: float, departure_h: float,
         ended_h: float | None) -> dict:
    def at(hours: float | None) -> datetime | None:
        return None if hours is None else to_db_time(store.engine, DAY + timedelta(hours=hours))

    return {"site_id": "cariflex-martinique", "station_id": "CP001", "transaction_id": transaction, "evse_id": 1,
            "status": "active" if ended_h is None else "ended", "arrival": at(arrival_h),
            "departure": at(departure_h), "departure_is_default": False, "energy_requested_kwh": 20.0,
            "energy_is_default": False, "ended_at": at(ended_h), "updated_at": at(0)}


def test_the_sessions_plugged_in_during_the_window_with_the_real_departure_of_ended_ones(
        store: TimeSeriesStore) -> None:
    rows = [_row(store, "left-the-day-before", -10, -2, -3),
            _row(store, "left-this-morning", -6, 8, 6.5),   # expected till 08:00, left at 06:30
            _row(store, "still-here", 18, 31, None),
            _row(store, "stayed-past-its-departure", -20, -1, None),  # not ended: still plugged in
            _row(store, "left-on-time-yesterday", -20, -1, -1),
            _row(store, "arrives-tomorrow", 25, 30, None)]
    with store.engine.begin() as connection:
        connection.execute(insert(ev_sessions), rows)
    now = DAY + timedelta(hours=20)
    found = sessions_between(store.engine, DAY, DAY + timedelta(days=1), now=now)
    assert [(s["transaction_id"], s["arrival"], s["departure"]) for s in found] == [
        ("stayed-past-its-departure", DAY - timedelta(hours=20), now),
        ("left-this-morning", DAY - timedelta(hours=6), DAY + timedelta(hours=6.5)),
        ("still-here", DAY + timedelta(hours=18), DAY + timedelta(hours=31)),
    ]
    assert sessions_between(store.engine, DAY, DAY + timedelta(days=1), station_ids=["CP002"], now=now) == []
