"""`openadr_vtn_sensor` retries an ingestion run that failed, with a growing delay and a bound.

A 2.0b VTN (the real OpenLEADR server) hands an event over once; the run requested for it fails for real (its
store is a PostgreSQL nobody listens on) in a real Dagster instance. The sensor's clock (`sensors.utc_now`) is set
relative to the failed run's end time, so the delays are checked without sleeping.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from cariflex_pipeline.defs.openadr import sensors
from cariflex_pipeline.defs.openadr.assets import SIGNAL_ASSETS, openadr_events
from cariflex_pipeline.defs.openadr.resources import VtnResource
from cariflex_pipeline.defs.openadr.sensors import openadr_ingest_job, openadr_vtn_sensor
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline_tests.openadr.vtn20b import PRICE_CONTEXT, InProcessVtn

ASSETS = [openadr_events, *SIGNAL_ASSETS]
UNREACHABLE_STORE = "postgresql+psycopg2://cariflex@127.0.0.1:9/cariflex"  # nothing listens on port 9


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int) -> list[str]:
        return [record.getMessage() for record in self.records if record.levelno >= level]


@dataclass
class Loop:
    """The sensor and the runs it requests, on one Dagster instance, as the daemon would run them."""

    instance: dg.DagsterInstance
    resources: dict
    monkeypatch: pytest.MonkeyPatch
    log: Records = field(default_factory=Records)  # what the sensor logged on its ticks

    def tick(self, cursor: str | None, at: datetime | None = None) -> dg.SensorResult:
        self.monkeypatch.setattr(sensors, "utc_now", lambda: at or datetime.now(UTC))
        definitions = dg.Definitions(assets=ASSETS, jobs=[openadr_ingest_job], sensors=[openadr_vtn_sensor],
                                     resources=self.resources)
        with dg.build_sensor_context(instance=self.instance, cursor=cursor, resources=self.resources,
                                     definitions=definitions) as context:
            context.log.addHandler(self.log)
            return openadr_vtn_sensor(context)

    def launch(self, request: dg.RunRequest, store_url: str | None = None) -> dg.RunRecord:
        """Runs the request as the daemon would (its tags and run key); `store_url` overrides the run's store."""
        resources = dict(self.resources)
        if store_url is not None:
            resources["store"] = TimeSeriesStoreResource(database_url=store_url)
        job = dg.Definitions(assets=ASSETS, jobs=[openadr_ingest_job], resources=resources).resolve_job_def(
            "openadr_ingest")
        result = job.execute_in_process(
            instance=self.instance, partition_key=request.partition_key, raise_on_error=False,
            tags={**request.tags, "dagster/run_key": request.run_key, "dagster/sensor_name": "openadr_vtn_sensor"})
        record = self.instance.get_run_record_by_id(result.run_id)
        assert record is not None and record.end_time is not None
        return record

    def fail(self, request: dg.RunRequest) -> datetime:
        """Runs the request against an unreachable store; returns when the failed run ended."""
        record = self.launch(request, UNREACHABLE_STORE)
        assert record.dagster_run.status == dg.DagsterRunStatus.FAILURE
        return datetime.fromtimestamp(record.end_time, UTC)


@pytest.fixture
def vtn() -> Iterator[InProcessVtn]:
    server = InProcessVtn(poll_freq=timedelta(0))  # poll every tick
    yield server
    server.stop()


def _loop(tmp_path, vtn: InProcessVtn, monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance,
          **retries: int) -> Loop:
    resources = {"site": SiteResource(),
                 "store": TimeSeriesStoreResource(database_url=f"sqlite:///{tmp_path / 'store.sqlite'}"),
                 "vtn": VtnResource(url=vtn.url, protocol="2.0b", **retries)}
    return Loop(instance, resources, monkeypatch)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _price_event(loop: Loop, vtn: InProcessVtn) -> tuple[str, dg.RunRequest, str]:
    """A price event on the VTN from now on: (its id, the sensor's first run request for it, the cursor)."""
    first = loop.tick(None)  # registers; nothing published yet
    now = datetime.now(UTC)
    start = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    event_id = vtn.add_event("ven_1", "ELECTRICITY_PRICE", "price", PRICE_CONTEXT,
                             [(start, timedelta(minutes=30), 150.0)])
    result = loop.tick(first.cursor)
    [request] = result.run_requests
    assert request.run_key.endswith(f":{event_id}@0")
    return event_id, request, result.cursor


def test_a_failed_run_is_retried_after_the_delay_under_a_suffixed_key(tmp_path, vtn, monkeypatch, instance):
    loop = _loop(tmp_path, vtn, monkeypatch, instance)
    event_id, request, cursor = _price_event(loop, vtn)
    ended = loop.fail(request)
    assert loop.tick(cursor).run_requests == []  # the VTN does not send the event again: only a retry helps

    retry = loop.tick(cursor, at=ended + timedelta(seconds=60))  # the first delay: 60 s by default
    [again] = retry.run_requests
    assert again.run_key == f"{request.run_key}#retry1"
    assert again.partition_key == request.partition_key
    assert again.tags["cariflex/openadr_attempt"] == "1" and again.tags["cariflex/openadr_run"] == again.run_key
    assert again.tags["cariflex/openadr_events"] == f"{event_id}@0"
    # requested once: while the retry has not run yet, the next ticks wait for it
    assert loop.tick(retry.cursor, at=ended + timedelta(hours=1)).run_requests == []

    assert loop.launch(again).dagster_run.status == dg.DagsterRunStatus.SUCCESS  # the store is back
    after = loop.tick(retry.cursor, at=ended + timedelta(hours=1))
    assert after.run_requests == [] and json.loads(after.cursor)["events"] == {}


def test_no_retry_before_the_delay_which_doubles_with_each_attempt(tmp_path, vtn, monkeypatch, instance):
    loop = _loop(tmp_path, vtn, monkeypatch, instance)
    event_id, request, cursor = _price_event(loop, vtn)
    ended = loop.fail(request)
    early = loop.tick(cursor, at=ended + timedelta(seconds=59))
    assert early.run_requests == []
    due = (ended + timedelta(seconds=60)).isoformat()
    assert any(event_id in message and f"retry 1 of 3 at {due}" in message
               for message in loop.log.messages(logging.INFO))
    assert json.loads(early.cursor)["events"][event_id] == {"version": 0, "kind": "new", "runs": [request.run_key],
                                                  "attempt": 0}

    retried = loop.tick(early.cursor, at=ended + timedelta(seconds=60))
    [first_retry], cursor = retried.run_requests, retried.cursor
    ended = loop.fail(first_retry)
    assert loop.tick(cursor, at=ended + timedelta(seconds=60)).run_requests == []
    assert loop.tick(cursor, at=ended + timedelta(seconds=119)).run_requests == []
    [second_retry] = loop.tick(cursor, at=ended + timedelta(seconds=120)).run_requests
    assert second_retry.run_key == f"{request.run_key}#retry2"


def test_after_the_last_retry_no_more_runs_and_an_error_names_the_event(tmp_path, vtn, monkeypatch, instance):
    loop = _loop(tmp_path, vtn, monkeypatch, instance, run_retries=2, run_retry_delay_seconds=10)
    event_id, request, cursor = _price_event(loop, vtn)
    ended = loop.fail(request)
    for attempt, delay in ((1, 10), (2, 20)):
        result = loop.tick(cursor, at=ended + timedelta(seconds=delay))
        [retry] = result.run_requests
        assert retry.run_key == f"{request.run_key}#retry{attempt}"
        cursor = result.cursor
        ended = loop.fail(retry)

    last = loop.tick(cursor, at=ended + timedelta(days=1))
    assert last.run_requests == []
    [error] = loop.log.messages(logging.ERROR)
    assert event_id in error and "no more retries" in error and "3 ingestion run(s)" in error
    assert json.loads(last.cursor)["events"][event_id]["gave_up"] is True  # still visible in the cursor
    assert loop.tick(last.cursor, at=ended + timedelta(days=2)).run_requests == []
    assert len(loop.log.messages(logging.ERROR)) == 1  # said once

    # an operator ingests it by hand: the cursor lets it go
    assert dg.materialize(ASSETS, partition_key=request.partition_key, resources=loop.resources).success
    assert json.loads(loop.tick(last.cursor).cursor)["events"] == {}


def test_the_cursor_forgets_a_failed_event_once_another_run_stored_it(tmp_path, vtn, monkeypatch, instance):
    loop = _loop(tmp_path, vtn, monkeypatch, instance)
    event_id, request, cursor = _price_event(loop, vtn)
    ended = loop.fail(request)
    waiting = loop.tick(cursor)
    assert json.loads(waiting.cursor)["events"][event_id]["runs"] == [request.run_key]  # waiting for its retry

    # the main job (no run key, no tag of the sensor) ingests the event before the retry is due
    main = dg.materialize(ASSETS, partition_key=request.partition_key, resources=loop.resources, instance=instance)
    assert main.success
    after = loop.tick(waiting.cursor, at=ended + timedelta(hours=1))
    assert after.run_requests == [] and json.loads(after.cursor)["events"] == {}


def test_a_run_canceled_before_it_started_is_retried_too(tmp_path, vtn, monkeypatch, instance):
    loop = _loop(tmp_path, vtn, monkeypatch, instance)
    event_id, request, cursor = _price_event(loop, vtn)
    job = dg.Definitions(assets=ASSETS, jobs=[openadr_ingest_job], resources=loop.resources).resolve_job_def(
        "openadr_ingest")
    run = instance.create_run_for_job(job, tags={**request.tags, "dagster/partition": request.partition_key})
    instance.report_run_canceled(run)  # an operator cancels it in the queue
    record = instance.get_run_record_by_id(run.run_id)
    assert record is not None and record.dagster_run.status == dg.DagsterRunStatus.CANCELED
    ended = datetime.fromtimestamp(record.end_time or record.update_timestamp.timestamp(), UTC)
    [retry] = loop.tick(cursor, at=ended + timedelta(seconds=60)).run_requests
    assert retry.run_key == f"{request.run_key}#retry1" and retry.tags["cariflex/openadr_events"] == f"{event_id}@0"
