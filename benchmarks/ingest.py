"""How fast the store writes beliefs into PostgreSQL, against a plain COPY of the same rows, in one run.

    python benchmarks/ingest.py [--rows 500000] [--repeats 3] [--admin-url postgresql://postgres@127.0.0.1/test]

Creates a scratch database, writes the rows through TimeSeriesStore.write_beliefs (validation, COPY into a
staging table, INSERT ... ON CONFLICT into the keyed table) and, as references, COPYs the same rows, already
formatted, into (a) an identical table with the same primary key and (b) a bare heap without any index.
Prints rows/s for each and the ratios; best of --repeats, each on an emptied table.
"""

import argparse
import io
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from scratch_database import scratch_database
from sqlalchemy import text

from cariflex_pipeline.site_model import load_site
from cariflex_pipeline.store import TimeSeriesStore

COLUMNS = "sensor_id, event_start, source_id, belief_time, event_resolution_seconds, value"


def belief_rows(count: int) -> pd.DataFrame:
    sensor_ids = np.arange(61, 71)
    per_sensor = count // len(sensor_ids)
    starts = pd.Timestamp("2024-01-01", tz="America/Martinique") + pd.to_timedelta(
        np.arange(per_sensor) * 15, unit="min"
    )
    return pd.DataFrame(
        {
            "sensor_id": np.repeat(sensor_ids, per_sensor),
            "event_start": pd.DatetimeIndex(np.tile(starts.tz_convert("UTC").to_numpy(), len(sensor_ids)), tz="UTC"),
            "value": np.random.default_rng(1).uniform(0, 22, per_sensor * len(sensor_ids)).round(3),
            "belief_time": pd.Timestamp("2026-11-28", tz="UTC"),
        }
    )


def copy_text(frame: pd.DataFrame, source_id: int) -> str:
    buffer = io.StringIO()
    pd.DataFrame(
        {
            "sensor_id": frame["sensor_id"],
            "event_start": frame["event_start"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d %H:%M:%S+00"),
            "source_id": source_id,
            "belief_time": frame["belief_time"].dt.strftime("%Y-%m-%d %H:%M:%S+00"),
            "event_resolution_seconds": 900,
            "value": frame["value"],
        }
    ).to_csv(buffer, index=False, header=False)
    return buffer.getvalue()


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    with scratch_database(args.admin_url) as database_url:
        run(database_url, args.rows, args.repeats)


def run(url: str, row_count: int, repeats: int) -> None:
    store = TimeSeriesStore(url)
    store.migrate()
    store.register_sensors(load_site().sensors)
    frame = belief_rows(row_count)
    rows = len(frame)
    store.write_beliefs(frame.head(10), source="benchmark")  # creates the source, warms the connection
    with store.engine.begin() as connection:
        source_id = connection.scalar(text("SELECT id FROM data_sources WHERE name = 'benchmark'"))
        connection.execute(text("CREATE TABLE beliefs_same_key (LIKE beliefs INCLUDING DEFAULTS INCLUDING INDEXES)"))
        connection.execute(text("CREATE TABLE beliefs_bare (LIKE beliefs INCLUDING DEFAULTS)"))
        connection.execute(text("ALTER TABLE beliefs_bare DROP CONSTRAINT IF EXISTS beliefs_bare_pkey"))
    formatted = copy_text(frame, source_id)

    def empty(table: str) -> None:
        with store.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {table}"))
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"VACUUM ANALYZE {table}"))

    def plain_copy(table: str) -> None:
        with store.engine.begin() as connection:
            cursor = connection.connection.dbapi_connection.cursor()
            cursor.copy_expert(f"COPY {table} ({COLUMNS}) FROM STDIN WITH (FORMAT csv)", io.StringIO(formatted))
            cursor.close()

    best = {"store": [], "store_rewrite": [], "copy_same_key": [], "copy_bare": []}
    for _ in range(repeats):
        empty("beliefs")
        best["store"].append(timed(lambda: store.write_beliefs(frame, source="benchmark")))
        best["store_rewrite"].append(timed(lambda: store.write_beliefs(frame, source="benchmark")))
        empty("beliefs_same_key")
        best["copy_same_key"].append(timed(lambda: plain_copy("beliefs_same_key")))
        empty("beliefs_bare")
        best["copy_bare"].append(timed(lambda: plain_copy("beliefs_bare")))
    with store.engine.connect() as connection:
        stored = connection.scalar(text("SELECT count(*) FROM beliefs"))
    assert stored == rows, f"store holds {stored} rows, expected {rows}"

    rate = {label: rows / min(times) for label, times in best.items()}
    print(f"rows per write: {rows:,} (best of {repeats}); PostgreSQL at {store.describe()}")
    print(f"  store.write_beliefs, new rows        {rate['store']:>12,.0f} rows/s")
    print(f"  store.write_beliefs, same rows again {rate['store_rewrite']:>12,.0f} rows/s  (idempotent rewrite)")
    print(f"  plain COPY, identical keyed table    {rate['copy_same_key']:>12,.0f} rows/s")
    print(f"  plain COPY, bare table (no index)    {rate['copy_bare']:>12,.0f} rows/s")
    print(f"ratio store / COPY identical table: {rate['store'] / rate['copy_same_key']:.2f}x")
    print(f"ratio store / COPY bare table:      {rate['store'] / rate['copy_bare']:.2f}x   (aim >= 0.5x)")


if __name__ == "__main__":
    main()
