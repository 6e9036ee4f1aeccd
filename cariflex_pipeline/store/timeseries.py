"""The time-series store: sensors, data sources and beliefs behind one small API, on SQLite or PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cached_property

import pandas as pd
from sqlalchemy import Connection, Engine, and_, delete, func, or_, select

from cariflex_pipeline.site_model import Portfolio, Sensor
from cariflex_pipeline.store import bulk
from cariflex_pipeline.store.engine import check_connection, create_store_engine, describe_url
from cariflex_pipeline.store.migrate import upgrade_to_head
from cariflex_pipeline.store.schema import NO_SITE, beliefs, data_sources, sensors
from cariflex_pipeline.store.times import to_db_time
from cariflex_pipeline.store.validation import normalize_beliefs

log = logging.getLogger(__name__)

_LOOKUP_CHUNK = 500  # names per IN (...) lookup: well within SQLite's and PostgreSQL's parameter limits
BELIEF_COLUMNS = ["sensor_id", "event_start", "event_resolution", "belief_time", "source", "value"]


class TimeSeriesStore:
    """Beliefs about sensor events. Writes are idempotent upserts; reads give the latest belief per event."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    @cached_property
    def engine(self) -> Engine:
        return create_store_engine(self.database_url)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def describe(self) -> str:
        """Where the store lives, safe for logs and metadata (no credentials)."""
        return describe_url(self.engine.url)

    def check(self) -> None:
        """Raise StoreUnavailableError (naming the host) when the database cannot be reached."""
        check_connection(self.engine)

    def migrate(self) -> None:
        """Bring the schema to the latest Alembic revision."""
        self.check()
        upgrade_to_head(self.engine)

    def register_sensors(self, site_sensors: Iterable[Sensor],
                         owners: Mapping[int, str | None] | None = None) -> int:
        """Insert or update sensors. With `owners` (sensor id -> its portfolio site, None for a shared sensor) each
        sensor's `site_id` is set from it (NO_SITE for one it does not name); without, a sensor keeps the site it
        was registered with and a new one gets NO_SITE ("": placed in no site), so code that registers a site's
        sensors never undoes what `register_portfolio` recorded."""
        rows = [
            {
                "id": sensor.id,
                "name": sensor.name,
                "unit": sensor.unit,
                "resolution_seconds": int(sensor.resolution.total_seconds()),
                "description": sensor.description,
                "site_id": owners.get(sensor.id, NO_SITE) if owners is not None else NO_SITE,
            }
            for sensor in site_sensors
        ]
        if not rows:
            return 0
        updated = [column for column in rows[0] if column != "id" and (column != "site_id" or owners is not None)]
        with self.engine.begin() as connection:
            statement = bulk.dialect_insert(connection.dialect.name, sensors)
            statement = statement.on_conflict_do_update(
                index_elements=["id"], set_={column: statement.excluded[column] for column in updated},
            )
            connection.execute(statement, rows)
        return len(rows)

    def register_portfolio(self, portfolio: Portfolio) -> int:
        """Register every sensor of the portfolio with the site that owns it (NULL: shared by all sites)."""
        return self.register_sensors(portfolio.all_sensors(), owners=portfolio.sensor_sites())

    def site_sensor_ids(self, site_id: str) -> list[int]:
        """The ids of the sensors a site reads: its own and the shared ones, sorted (select a site's series by
        passing them to `read_latest`)."""
        query = (select(sensors.c.id).where(or_(sensors.c.site_id == site_id, sensors.c.site_id.is_(None)))
                 .order_by(sensors.c.id))
        with self.engine.connect() as connection:
            return [int(sensor_id) for sensor_id in connection.scalars(query)]

    def sensor_table(self) -> pd.DataFrame:
        with self.engine.connect() as connection:
            result = connection.execute(select(sensors).order_by(sensors.c.id))
            return pd.DataFrame(result.mappings().all(), columns=list(result.keys()))

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction for several writes (pass it as `connection=`): all of them land, or none."""
        with self.engine.begin() as connection:
            yield connection

    def write_beliefs(
        self, frame: pd.DataFrame, source: str, source_type: str = "other", connection: Connection | None = None
    ) -> int:
        """Upsert beliefs of one source; all rows or none. Returns the number of distinct beliefs written.

        `frame` has columns sensor_id, event_start, value, belief_time (times with a time zone) and optionally
        event_resolution (default: the sensor's). Raises BeliefValidationError before touching the database.
        Inside `transaction()`, pass its connection so the write commits or rolls back with the rest.
        """
        rows = normalize_beliefs(frame, self._sensor_resolutions())
        if rows.empty:
            return 0
        with self._writing(connection) as connection:
            rows["source_id"] = self._source_ids(connection, [source], source_type)[source]
            self._upsert(connection, rows)
        log.debug("wrote %d beliefs from %s into %s", len(rows), source, self.describe())
        return len(rows)

    def write_beliefs_of_sources(
        self, frame: pd.DataFrame, source_type: str = "other", connection: Connection | None = None
    ) -> int:
        """`write_beliefs` for the values of many sources at once, named by the frame's `source` column: one
        validation, one round of source lookups and one bulk upsert instead of one each per source (an OpenADR
        listing of thousands of events, each its own source). All rows or none."""
        rows = normalize_beliefs(frame, self._sensor_resolutions(), source_column="source")
        if rows.empty:
            return 0
        with self._writing(connection) as connection:
            names = rows.pop("source").astype("category")
            ids = self._source_ids(connection, [str(name) for name in names.cat.categories], source_type)
            rows["source_id"] = names.cat.rename_categories(ids).astype("int64")
            self._upsert(connection, rows)
        log.debug("wrote %d beliefs from %d sources into %s", len(rows), len(ids), self.describe())
        return len(rows)

    def _upsert(self, connection: Connection, rows: pd.DataFrame) -> None:
        if connection.dialect.name == "postgresql":
            bulk.upsert_postgres(connection, rows)
        else:
            bulk.upsert_sqlite(connection, rows)

    def read_latest(
        self,
        sensor_ids: Sequence[int],
        start: datetime | None = None,
        end: datetime | None = None,
        sources: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """The latest belief per (sensor, event start) in [start, end), as a frame with UTC times."""
        ranked = (
            select(
                beliefs.c.sensor_id,
                beliefs.c.event_start,
                beliefs.c.event_resolution_seconds,
                beliefs.c.belief_time,
                data_sources.c.name.label("source"),
                beliefs.c.value,
                func.row_number()
                .over(
                    partition_by=(beliefs.c.sensor_id, beliefs.c.event_start),
                    order_by=(beliefs.c.belief_time.desc(), beliefs.c.source_id.desc()),
                )
                .label("rank"),
            )
            .join(data_sources, data_sources.c.id == beliefs.c.source_id)
            .where(*self._event_filter(sensor_ids, start, end, sources))
            .subquery()
        )
        query = (
            select(*(column for column in ranked.c if column.name != "rank"))
            .where(ranked.c.rank == 1)
            .order_by(ranked.c.sensor_id, ranked.c.event_start)
        )
        with self.engine.connect() as connection:
            records = connection.execute(query).all()
        return _belief_frame(records)

    def delete_beliefs(
        self,
        sensor_ids: Sequence[int],
        start: datetime,
        end: datetime,
        source: str,
        connection: Connection | None = None,
    ) -> int:
        """Withdraw what `source` said about events in [start, end) of these sensors."""
        with self._writing(connection) as connection:
            source_id = connection.scalar(select(data_sources.c.id).where(data_sources.c.name == source))
            if source_id is None:
                return 0
            result = connection.execute(
                delete(beliefs).where(
                    beliefs.c.source_id == source_id, *self._event_filter(sensor_ids, start, end, None)
                )
            )
        return result.rowcount

    @contextmanager
    def _writing(self, connection: Connection | None) -> Iterator[Connection]:
        if connection is not None:
            yield connection
        else:
            with self.engine.begin() as own:
                yield own

    def _event_filter(
        self,
        sensor_ids: Sequence[int],
        start: datetime | None,
        end: datetime | None,
        sources: Sequence[str] | None,
    ) -> list:
        conditions = [beliefs.c.sensor_id.in_([int(sensor_id) for sensor_id in sensor_ids])]
        if start is not None:
            conditions.append(beliefs.c.event_start >= to_db_time(self.engine, start))
        if end is not None:
            conditions.append(beliefs.c.event_start < to_db_time(self.engine, end))
        if sources is not None:
            source_ids = select(data_sources.c.id).where(data_sources.c.name.in_(list(sources)))
            conditions.append(beliefs.c.source_id.in_(source_ids))
        return [and_(*conditions)]

    def _sensor_resolutions(self) -> dict[int, timedelta]:
        with self.engine.connect() as connection:
            result = connection.execute(select(sensors.c.id, sensors.c.resolution_seconds))
            return {sensor_id: timedelta(seconds=seconds) for sensor_id, seconds in result}

    def _source_ids(self, connection: Connection, names: list[str], source_type: str) -> dict[str, int]:
        """The id of each data source, registering those that are new (a source keeps its first type).

        Looked up first, and only the missing ones inserted, RETURNING their ids, which SQLAlchemy sends as
        batches of rows per statement: an OpenADR listing names thousands of sources, and the plain executemany
        (one INSERT per row) took longer than writing all their values. A name a concurrent writer registered
        first is skipped (ON CONFLICT DO NOTHING), then read."""
        ids = self._known_source_ids(connection, names)
        missing = [name for name in dict.fromkeys(names) if name not in ids]
        if missing:
            registered = connection.execute(
                bulk.dialect_insert(connection.dialect.name, data_sources)
                .on_conflict_do_nothing(index_elements=["name"]).returning(data_sources.c.name, data_sources.c.id),
                [{"name": name, "type": source_type} for name in missing])
            ids.update((name, source_id) for name, source_id in registered)
        ids.update(self._known_source_ids(connection, [name for name in missing if name not in ids]))
        return ids

    @staticmethod
    def _known_source_ids(connection: Connection, names: list[str]) -> dict[str, int]:
        ids: dict[str, int] = {}
        for first in range(0, len(names), _LOOKUP_CHUNK):
            chunk = names[first:first + _LOOKUP_CHUNK]
            rows = connection.execute(
                select(data_sources.c.name, data_sources.c.id).where(data_sources.c.name.in_(chunk)))
            ids.update((name, source_id) for name, source_id in rows)
        return ids



def _belief_frame(records: Sequence) -> pd.DataFrame:
    frame = pd.DataFrame(
        records,
        columns=["sensor_id", "event_start", "event_resolution_seconds", "belief_time", "source", "value"],
    )
    frame["sensor_id"] = frame["sensor_id"].astype("int64")
    for column in ("event_start", "belief_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
    # in microseconds, as the times are, whether the read found rows or not (an empty one came out in seconds)
    frame["event_resolution"] = pd.to_timedelta(frame.pop("event_resolution_seconds"), unit="s").astype(
        "timedelta64[us]")
    frame["value"] = frame["value"].astype("float64")
    frame["source"] = frame["source"].astype(object)
    return frame[BELIEF_COLUMNS]
