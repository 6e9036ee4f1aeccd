"""How fast OpenADR 3.0.1 events are parsed and ingested into PostgreSQL, against the store's bulk write of the
same values, in one run.

    python benchmarks/openadr_ingest.py [--events 5000] [--intervals 96] [--rounds 3] [--admin-url postgresql://...]

Creates a scratch database; builds one GET /events answer of `--events` price events of `--intervals` 15-minute
intervals each (one day per event); parses and ingests it (`parse_events_json` + `ingest_events`: checks,
normalization, audit log; the events written together in one transaction); then empties the beliefs and writes the
very values ingestion stored with one `TimeSeriesStore.write_beliefs` call. Both run `--rounds` times, alternated,
each on empty tables, after a warm-up ingestion of a few events (the first call of every code path pays for
imports and statement compilation, which would otherwise fall on ingestion only). Prints the median events/s
of each and their ratio (aim: ingestion >= 0.5x the bulk write).
"""

import argparse
import json
import statistics
import time
from datetime import UTC, datetime, timedelta

from scratch_database import scratch_database
from sqlalchemy import text

from cariflex_pipeline.openadr.ingest import ingest_events
from cariflex_pipeline.openadr.oadr3 import parse_events_json
from cariflex_pipeline.site_model import Site, load_site
from cariflex_pipeline.site_model.portfolio import slug
from cariflex_pipeline.store import TimeSeriesStore

START = datetime(2027, 1, 1, 4, tzinfo=UTC)  # local midnight in Martinique


def answer(events: int, intervals: int) -> str:
    """One GET /events answer: event n covers day n, one price per 15 minutes."""
    return json.dumps([
        {
            "id": f"price-{number:06d}", "objectType": "EVENT", "programID": "martinique-price",
            "createdDateTime": "2026-11-27T16:00:00Z", "modificationDateTime": "2026-11-27T16:00:00.250000Z",
            "payloadDescriptors": [{"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "PRICE",
                                    "units": "KWH", "currency": "EUR"}],
            "intervalPeriod": {"start": (START + timedelta(days=number)).isoformat(), "duration": "PT15M"},
            "intervals": [{"id": slot, "payloads": [{"type": "PRICE", "values": [0.1 + (number + slot) % 97 / 1000]}]}
                          for slot in range(intervals)],
        }
        for number in range(events)
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--intervals", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3, help="ingestion and bulk write, alternated; medians shown")
    parser.add_argument("--admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    with scratch_database(args.admin_url) as database_url:
        run(database_url, args.events, args.intervals, args.rounds)


def run(url: str, events: int, intervals: int, rounds: int) -> None:
    site = load_site()
    store = TimeSeriesStore(url)
    store.migrate()
    store.register_sensors(site.sensors)
    body = answer(events, intervals)
    ingest(store, site, answer(10, intervals))  # warm-up: the first call of each code path imports and compiles
    ingest_times, bulk_times = [], []
    for _ in range(rounds):  # alternated, each on empty tables: neither side gets the other's warm caches only
        empty(store)
        ingest_times.append(ingest(store, site, body, expected=events * intervals))
        values = store.read_latest([84])[["sensor_id", "event_start", "value", "belief_time"]]
        empty(store)
        started = time.perf_counter()
        written = store.write_beliefs(values, source="bulk")
        bulk_times.append(time.perf_counter() - started)
        assert written == events * intervals
    ingest_seconds, bulk_seconds = statistics.median(ingest_times), statistics.median(bulk_times)

    print(f"{events:,} events of {intervals} intervals ({events * intervals:,} values); PostgreSQL at "
          f"{store.describe()}; median of {rounds} rounds")
    print(f"  parse + ingest (checks per event, one batched write) {events / ingest_seconds:>10,.0f} events/s"
          f"  ({ingest_seconds:.2f} s; {spread(ingest_times)})")
    print(f"  store.write_beliefs of the same values, one call      {events / bulk_seconds:>10,.0f} events/s"
          f"  ({bulk_seconds:.2f} s; {spread(bulk_times)})")
    print(f"ratio ingestion / bulk write: {bulk_seconds / ingest_seconds:.2f}x   (aim >= 0.5x)")


def ingest(store: TimeSeriesStore, site: Site, body: str, expected: int | None = None) -> float:
    """Seconds to parse and ingest `body`; every event must be new and every value written."""
    started = time.perf_counter()
    report = ingest_events(parse_events_json(body, "bench-vtn"), site, store, site_id=slug(site.name))
    seconds = time.perf_counter() - started
    assert not report.rejected and (expected is None or report.values_written == expected), report.rejected
    return seconds


def empty(store: TimeSeriesStore) -> None:
    with store.engine.begin() as connection:
        connection.execute(text("TRUNCATE beliefs, data_sources, openadr_events"))


def spread(seconds: list[float]) -> str:
    return f"{min(seconds):.2f}..{max(seconds):.2f} s"


if __name__ == "__main__":
    main()
