"""The Dagster shell of the OpenADR stage: partitioned assets on the bundled feed, and the VTN sensor."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from cariflex_pipeline.defs.openadr import defs as openadr_defs
from cariflex_pipeline.defs.openadr.assets import SIGNAL_ASSETS, openadr_events
from cariflex_pipeline.defs.openadr.partitions import daily_partitions
from cariflex_pipeline.defs.openadr.resources import VtnResource, vtn_resource_from_env
from cariflex_pipeline.defs.openadr.sensors import openadr_ingest_job, openadr_vtn_sensor
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.openadr import source
from cariflex_pipeline.openadr.source import VtnConfig
from cariflex_pipeline.openadr.ven20b import Ven20b
from cariflex_pipeline_tests.openadr.messages import event_301
from cariflex_pipeline_tests.openadr.vtn20b import DR_CONTEXT, PRICE_CONTEXT, VTN_ID, InProcessVtn
from cariflex_pipeline_tests.openadr.vtn301 import Vtn301Server

ASSETS = [openadr_events, *SIGNAL_ASSETS]


@pytest.fixture
def database_url(store) -> str:
    """The store of each test, on SQLite and on the real PostgreSQL (the Dagster-level runs, on both)."""
    return store.engine.url.render_as_string(hide_password=False)


def _resources(database_url: str, vtn: VtnResource | None = None) -> dict:
    return {"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=database_url),
            "vtn": vtn or VtnResource()}


def _metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    [event] = [m for m in result.asset_materializations_for_node(key)][:1]
    return {name: value.value for name, value in event.metadata.items()}


def test_one_day_of_the_bundled_feed(database_url):
    # a day in the past: a run for today would also ingest tomorrow (day-ahead)
    result = dg.materialize(ASSETS, partition_key="2026-11-10", resources=_resources(database_url))
    assert result.success
    events = _metadata(result, "openadr_events")
    assert events["events_seen"] == 3.0 and events["events_new"] == 3.0 and events["events_rejected"] == 0.0
    assert events["values_written"] == 3 * 96.0
    assert (events["price_min"], events["price_max"]) == (138.0, 334.0)
    assert events["price_mean"] == pytest.approx(207.125)
    day_end = datetime(2026, 11, 11, 4, tzinfo=UTC)  # local midnight, UTC-4
    assert events["latest_interval_covered"] == day_end.timestamp()
    price = _metadata(result, "consumption_price")
    assert price["values"] == 96.0 and price["coverage_pct"] == 100.0 and price["unit"] == "EUR/MWh"
    assert _metadata(result, "load_control_signal")["load_control_min"] == 60.0
    assert _metadata(result, "demand_response_signal")["level_max"] == 2.0
    again = dg.materialize(ASSETS, partition_key="2026-11-10", resources=_resources(database_url))
    assert _metadata(again, "openadr_events")["values_written"] == 0.0  # idempotent


def _by_partition(result: dg.ExecuteInProcessResult, key: str) -> dict[str, dict]:
    return {event.partition: {name: value.value for name, value in event.metadata.items()}
            for event in result.asset_materializations_for_node(key)}


def test_three_day_range_in_one_run_gets_figures_per_day(database_url):
    # the middle day was ingested before: the backfill writes nothing new there
    dg.materialize(ASSETS, partition_key="2026-11-08", resources=_resources(database_url))
    result = dg.materialize(
        ASSETS, resources=_resources(database_url),
        tags={"dagster/asset_partition_range_start": "2026-11-07", "dagster/asset_partition_range_end": "2026-11-09"},
    )
    assert result.success
    events = _by_partition(result, "openadr_events")
    assert sorted(events) == ["2026-11-07", "2026-11-08", "2026-11-09"]
    assert [events[day]["events_new"] for day in sorted(events)] == [3.0, 0.0, 3.0]
    assert [events[day]["events_unchanged"] for day in sorted(events)] == [0.0, 3.0, 0.0]
    assert [events[day]["events_seen"] for day in sorted(events)] == [3.0, 3.0, 3.0]
    assert [events[day]["values_written"] for day in sorted(events)] == [3 * 96.0, 0.0, 3 * 96.0]
    for day, figures in events.items():
        local_midnight_after = datetime.combine(date.fromisoformat(day) + timedelta(days=1), datetime.min.time(),
                                                ZoneInfo("America/Martinique"))
        assert figures["latest_interval_covered"] == local_midnight_after.timestamp()
        assert (figures["price_min"], figures["price_max"]) == (138.0, 334.0)
        assert isinstance(figures["price_mean"], float) and figures["partitions"].startswith("2026-11-07 .. 2026-11-09")
        assert figures["sync_events_seen"] == 9.0  # the whole run, named as such
    price = _by_partition(result, "consumption_price")
    assert [price[day]["values"] for day in sorted(price)] == [96.0, 96.0, 96.0]
    assert all(figures["coverage_pct"] == 100.0 for figures in price.values())
    assert all(figures["day_chart"].startswith("![consumption_price over the day](data:image/png;base64,")
               for figures in price.values())  # each day's curve, drawn
    # the bundled feed's days say so, in every asset it feeds, before anything else
    sample = "SAMPLE: bundled sample data, not the site's"
    assert [events[day]["data"] for day in sorted(events)] == [sample] * 3
    for key in ("consumption_price", "load_control_signal", "demand_response_signal"):
        figures = _by_partition(result, key)
        assert [next(iter(figures[day].items())) for day in sorted(figures)] == [("data", sample)] * 3, key


def test_resource_from_environment(monkeypatch):
    monkeypatch.setenv("CARIFLEX_VTN_URL", "http://vtn.example:8080/openadr3")
    monkeypatch.setenv("CARIFLEX_VTN_PROTOCOL", "3.0.1")
    monkeypatch.setenv("CARIFLEX_VTN_CLIENT_ID", "ven-7")
    monkeypatch.setenv("CARIFLEX_VTN_CLIENT_SECRET", "top-secret")
    monkeypatch.setenv("CARIFLEX_VTN_RUN_RETRIES", "5")
    monkeypatch.setenv("CARIFLEX_VTN_RUN_RETRY_DELAY_SECONDS", "30")
    resource = vtn_resource_from_env()
    assert isinstance(resource.client_secret, dg.EnvVar)  # resolved at run time, not shown in the UI
    retries = resource.process_config_and_initialize().run_retry_policy()
    assert (retries.max_retries, retries.delay(1), retries.delay(3)) == (5, timedelta(seconds=30), timedelta(minutes=2))
    assert VtnResource().run_retry_policy().max_retries == 3
    config = VtnResource(url="http://vtn.example:8080/openadr3", protocol="3.0.1", client_id="ven-7",
                         client_secret="top-secret").config()
    assert config.protocol == "3.0.1" and "top-secret" not in repr(config)
    monkeypatch.delenv("CARIFLEX_VTN_URL")
    assert VtnResource().config().is_sample
    with pytest.raises(ValueError, match=r"2\.0b or 3\.0\.1"):
        VtnResource(protocol="1.0").config()
    with pytest.raises(ValueError, match=r"2\.0b or 3\.0\.1"):
        VtnConfig.from_env({"CARIFLEX_VTN_URL": "http://vtn.example", "CARIFLEX_VTN_PROTOCOL": "2.0a"})
    with pytest.raises(ValueError, match=r"2\.0b or 3\.0\.1"):  # however it is built
        VtnConfig(url="http://vtn.example", protocol="3.0")  # type: ignore[arg-type]


def _tick(resources: dict, cursor: str | None) -> dg.SensorResult:
    definitions = dg.Definitions(assets=ASSETS, jobs=[openadr_ingest_job], sensors=[openadr_vtn_sensor],
                                 resources=resources)
    context = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), cursor=cursor, resources=resources,
                                      definitions=definitions)
    return openadr_vtn_sensor(context)


def _current_quarter() -> datetime:
    """The start of the current 15-minute slot: an event there is on today's local day, the last partition, at any
    hour (a local day starts on a whole UTC hour), and is not over for the VTN."""
    now = datetime.now(UTC)
    return now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)


def test_sensor_against_the_openleadr_vtn(database_url):
    vtn = InProcessVtn(poll_freq=timedelta(0))  # poll every tick
    try:
        resources = _resources(database_url, VtnResource(url=vtn.url, protocol="2.0b"))
        first = _tick(resources, None)  # registers; nothing published yet
        assert first.run_requests == []
        start = _current_quarter()
        event_id = vtn.add_event("ven_1", "ELECTRICITY_PRICE", "price", PRICE_CONTEXT,
                                 [(start, timedelta(minutes=30), 150.0)])

        new = _tick(resources, first.cursor)
        assert len(new.run_requests) == 1
        request = new.run_requests[0]
        local_day = start.astimezone(ZoneInfo("America/Martinique")).date().isoformat()
        assert request.partition_key == local_day
        assert request.run_key == f"openadr:{local_day}:{event_id}@0"
        assert request.tags["cariflex/openadr_changes"] == "new"

        assert _tick(resources, new.cursor).run_requests == []  # the same poll again: nothing

        vtn.modify_event("ven_1", event_id, [175.0])
        modified = _tick(resources, new.cursor)
        assert [r.run_key for r in modified.run_requests] == [f"openadr:{local_day}:{event_id}@1"]
        assert modified.run_requests[0].tags["cariflex/openadr_changes"] == "modified"

        vtn.cancel_event("ven_1", event_id)
        cancelled = _tick(resources, modified.cursor)
        assert [r.tags["cariflex/openadr_changes"] for r in cancelled.run_requests] == ["cancelled"]
        assert cancelled.run_requests[0].run_key == f"openadr:{local_day}:{event_id}@2"
    finally:
        vtn.stop()


def _with_one_301_event(database_url: str, vtn3: Vtn301Server, **settings: int) -> dict:
    """Resources pointing at the 3.0.1 test VTN, which lists one price event for the next hour."""
    vtn3.events = [event_301("price-1", _current_quarter(), [0.2])]
    return _resources(database_url, VtnResource(url=vtn3.url, protocol="3.0.1", client_id=vtn3.client_id,
                                                client_secret=vtn3.client_secret, vtn_id="vtn3", **settings))


def test_sensor_against_a_301_vtn_that_lists_everything_every_time(database_url, vtn3):
    resources = _with_one_301_event(database_url, vtn3)
    new = _tick(resources, None)
    assert len(new.run_requests) == 1 and "price-1@" in new.run_requests[0].run_key
    assert _tick(resources, new.cursor).run_requests == []  # listed again, already requested
    vtn3.events = [event_301("price-1", _current_quarter(), [0.25], modified=datetime(2026, 11, 28, 1, tzinfo=UTC))]
    modified = _tick(resources, new.cursor)
    assert len(modified.run_requests) == 1 and modified.run_requests[0].run_key != new.run_requests[0].run_key
    version = json.loads(modified.cursor)["events"]["price-1"]["version"]
    assert version == int(datetime(2026, 11, 28, 1, tzinfo=UTC).timestamp()) * 1_000_000  # microseconds


def test_sensor_run_request_executes_the_ingestion(database_url):
    vtn = InProcessVtn(poll_freq=timedelta(0))
    try:
        resources = _resources(database_url, VtnResource(url=vtn.url, protocol="2.0b"))
        first = _tick(resources, None)
        start = _current_quarter()
        vtn.add_event("ven_1", "ELECTRICITY_PRICE", "price", PRICE_CONTEXT, [(start, timedelta(minutes=30), 99.0)])
        request = _tick(resources, first.cursor).run_requests[0]
        result = dg.materialize(ASSETS, partition_key=request.partition_key, resources=resources)
        assert result.success
        assert _metadata(result, "openadr_events")["events_new"] == 1.0
        # values from a real VTN are labelled with their source, not as sample
        event_id = request.tags["cariflex/openadr_events"].split("@")[0]
        assert _metadata(result, "consumption_price")["data"] == f"from openadr:{VTN_ID}/{event_id}"
        store = resources["store"].open(resources["site"].portfolio())
        frame = store.read_latest([84])
        assert list(frame["value"]) == [99.0, 99.0] and frame["event_start"].iloc[0].to_pydatetime() == start
    finally:
        vtn.stop()


def test_days_are_valid_partitions():
    keys = daily_partitions.get_partition_keys()
    # the last partition is today in Martinique (date.today() is the machine's UTC day, 4 h ahead after 20:00)
    today = datetime.now(ZoneInfo("America/Martinique")).date()
    assert keys[0] == "2026-11-01" and date.fromisoformat(keys[-1]) == today
    assert daily_partitions.timezone == "America/Martinique"
    assert openadr_defs.sensors[0].name == "openadr_vtn_sensor"


def test_sensor_sees_a_deleted_301_event_as_cancelled(database_url, vtn3):
    resources = _with_one_301_event(database_url, vtn3, delete_after_seconds=0)  # deleted once unlisted
    new = _tick(resources, None)
    assert dg.materialize(ASSETS, partition_key=new.run_requests[0].partition_key, resources=resources).success
    vtn3.events = []  # the VTN operator deletes the event
    cancelled = _tick(resources, new.cursor)
    assert [r.tags["cariflex/openadr_changes"] for r in cancelled.run_requests] == ["cancelled"]
    result = dg.materialize(ASSETS, partition_key=cancelled.run_requests[0].partition_key, resources=resources)
    assert _metadata(result, "openadr_events")["events_cancelled"] == 1.0
    assert resources["store"].open(resources["site"].portfolio()).read_latest([84]).empty


def test_the_vtn_hears_optin_only_once_the_values_are_committed(database_url, monkeypatch):
    vtn = InProcessVtn(poll_freq=timedelta(0))
    try:
        resources = _resources(database_url, VtnResource(url=vtn.url, protocol="2.0b"))
        store = resources["store"].open(resources["site"].portfolio())
        stored_when_answered: list[int] = []
        respond = Ven20b.respond

        def watched(self, distribution, opt, now=None, answers=None):  # what the store held when each answer went
            stored_when_answered.append(len(store.read_latest([84, 87])))
            return respond(self, distribution, opt, now, answers)

        monkeypatch.setattr(Ven20b, "respond", watched)
        first = _tick(resources, None)
        start = _current_quarter()
        good = vtn.add_event("ven_1", "ELECTRICITY_PRICE", "price", PRICE_CONTEXT, [(start, timedelta(hours=1), 150.0)])
        bad = vtn.add_event("ven_1", "simple", "level", DR_CONTEXT, [(start, timedelta(hours=1), 7)])  # levels 0..3

        new = _tick(resources, first.cursor)
        assert vtn.opt_answers == [] and stored_when_answered == []  # the sensor promises nothing
        assert dg.materialize(ASSETS, partition_key=new.run_requests[0].partition_key, resources=resources).success
        assert sorted(vtn.opt_answers) == sorted([("ven_1", good, "optIn"), ("ven_1", bad, "optOut")])
        assert stored_when_answered == [4]  # answered after the price's 4 values were committed

        vtn.cancel_event("ven_1", good)
        cancelled = _tick(resources, new.cursor)
        result = dg.materialize(ASSETS, partition_key=cancelled.run_requests[0].partition_key, resources=resources)
        assert result.success and store.read_latest([84]).empty
        assert vtn.event_status("ven_1", good) is None  # answered by the run, so the VTN let it go
    finally:
        vtn.stop()


def test_a_tick_that_dies_after_the_poll_costs_one_tick_not_the_change(database_url, monkeypatch):
    vtn = InProcessVtn(poll_freq=timedelta(0))
    try:
        resources = _resources(database_url, VtnResource(url=vtn.url, protocol="2.0b"))
        first = _tick(resources, None)
        start = _current_quarter()
        event_id = vtn.add_event("ven_1", "ELECTRICITY_PRICE", "price", PRICE_CONTEXT,
                                 [(start, timedelta(minutes=30), 99.0)])
        changes_of = source.changes_of

        def daemon_killed(*args, **kwargs):
            raise KeyboardInterrupt("daemon killed after the poll")

        monkeypatch.setattr(source, "changes_of", daemon_killed)
        with pytest.raises(KeyboardInterrupt):
            _tick(resources, first.cursor)  # the VTN handed the event over; the tick's result is lost
        monkeypatch.setattr(source, "changes_of", changes_of)

        [request] = _tick(resources, first.cursor).run_requests  # the next tick, from the last committed cursor
        assert request.run_key.endswith(f":{event_id}@0")
        assert dg.materialize(ASSETS, partition_key=request.partition_key, resources=resources).success
        assert list(resources["store"].open(resources["site"].portfolio()).read_latest([84])["value"]) == [99.0, 99.0]
    finally:
        vtn.stop()


def test_sensor_runs_an_event_published_days_ahead_as_the_last_partition(database_url):
    vtn = InProcessVtn(poll_freq=timedelta(0))
    try:
        resources = _resources(database_url, VtnResource(url=vtn.url, protocol="2.0b"))
        first = _tick(resources, None)
        start = _current_quarter() + timedelta(days=3)  # beyond tomorrow, the last day partition
        vtn.add_event("ven_1", "ELECTRICITY_PRICE", "price", PRICE_CONTEXT, [(start, timedelta(hours=1), 120.0)])
        requests = _tick(resources, first.cursor).run_requests
        last_partition = daily_partitions.get_partition_keys()[-1]
        assert [request.partition_key for request in requests] == [last_partition]
        assert dg.materialize(ASSETS, partition_key=last_partition, resources=resources).success
        frame = resources["store"].open(resources["site"].portfolio()).read_latest([84])
        assert list(frame["value"]) == [120.0] * 4 and frame["event_start"].iloc[0].to_pydatetime() == start
    finally:
        vtn.stop()


def test_sensor_ticks_reuse_the_301_token(database_url, vtn3):
    resources = _with_one_301_event(database_url, vtn3)
    cursor = None
    for _tick_number in range(3):
        cursor = _tick(resources, cursor).cursor
    assert len(vtn3.event_requests) >= 3  # every tick asked for the events
    assert vtn3.token_requests == 1  # with one token, valid for an hour


def test_sensor_cursor_forgets_what_the_store_holds(database_url):
    resources = _resources(database_url)  # the bundled feed: today's and tomorrow's events
    first = _tick(resources, None)
    assert [request.partition_key for request in first.run_requests] == [daily_partitions.get_partition_keys()[-1]]
    assert len(json.loads(first.cursor)["events"]) == 6  # requested, not ingested yet
    assert _tick(resources, first.cursor).run_requests == []  # still pending: not requested twice
    assert dg.materialize(ASSETS, partition_key=first.run_requests[0].partition_key, resources=resources).success
    after = _tick(resources, first.cursor)
    assert after.run_requests == [] and json.loads(after.cursor)["events"] == {}


def test_a_vtn_url_with_a_password_is_refused_without_showing_it(monkeypatch):
    url = "https://cariflex:pa55word@vtn.example/OpenADR2/Simple/2.0b"
    with pytest.raises(ValueError) as from_resource:
        VtnResource(url=url).config()
    monkeypatch.setenv("CARIFLEX_VTN_URL", url)
    with pytest.raises(ValueError) as from_env:
        VtnConfig.from_env()
    for error in (from_resource.value, from_env.value):
        assert "'vtn.example'" in str(error) and "pa55word" not in str(error)
