"""The dispatch stage in Dagster: planned power in the store -> profiles -> dispatch to simulated stations,
the EV-session sensor's run requests and the answer sensor's observations (real RabbitMQ, SQLite store)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pika
import pytest
from sqlalchemy import insert
from sqlalchemy.exc import DataError

from cariflex_pipeline.defs.dispatch import BrokerResource
from cariflex_pipeline.defs.dispatch.assets import ocpp_charging_profiles, ocpp_dispatch
from cariflex_pipeline.defs.dispatch.sensors import ev_session_sensor, ocpp_answer_sensor
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.dispatch import Outbox, station_message
from cariflex_pipeline.dispatch.profiles import floor_to_grid
from cariflex_pipeline.dispatch.tables import ev_sessions
from cariflex_pipeline.scheduling.signals import SCHEDULER_SOURCE
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline.store.times import to_db_time
from cariflex_pipeline_tests.dispatch.conftest import local_hhmm, station_row


@pytest.fixture
def store_url(store) -> str:
    """The store of each test, migrated with the site's sensors, on SQLite and on the real PostgreSQL."""
    return store.engine.url.render_as_string(hide_password=False)


def _write_plan(url: str, site, per_station: dict[str, list[float]], start: datetime | None = None) -> datetime:
    start = start or floor_to_grid(datetime.now(UTC), site.resolution)
    rows = [{"sensor_id": site.charge_point(cp).sensor_id, "event_start": start + timedelta(minutes=15 * i),
             "value": kw, "belief_time": datetime.now(UTC)}
            for cp, values in per_station.items() for i, kw in enumerate(values)]
    frame = pd.DataFrame(rows)
    for column in ("event_start", "belief_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    TimeSeriesStore(url).write_beliefs(frame, source=SCHEDULER_SOURCE, source_type="scheduler")
    return start


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _resources(store_url: str, broker: BrokerResource) -> dict:
    return {"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=store_url),
            "dispatch_broker": broker}


def _checks(result) -> dict:
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


def _amqp_broker(amqp_url, exchange, names) -> BrokerResource:
    return BrokerResource(transport="amqp", amqp_url=amqp_url, exchange=exchange, answer_queue=names["answers"],
                          session_queue=names["sessions"])


def test_profiles_and_dispatch_reach_the_stations_with_the_schedules_limits(
        amqp_url, exchange, names, make_router, store_url, site) -> None:
    router = make_router("1.8")
    stations = {"CP001": router.connect("CP001"), "CP002": router.connect("CP002", answer="Rejected")}
    plan = {"CP001": [11.0] * 8 + [4.2] * 88, "CP002": [0.0] * 4 + [22.0] * 92, "CP003": [7.0] * 96}
    _write_plan(store_url, site, plan)
    result = dg.materialize([ocpp_charging_profiles, ocpp_dispatch],
                            resources=_resources(store_url, _amqp_broker(amqp_url, exchange, names)),
                            run_config={"ops": {"ocpp_dispatch": {"config": {"answer_timeout_seconds": 10}}}})
    assert result.success
    checks = _checks(result)
    assert checks["profiles_valid"].passed
    # CP002 refused, CP003 is offline: a warning naming both (an error only once it lasts past the bound)
    confirmed = checks["stations_confirmed"]
    assert (confirmed.passed, confirmed.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert confirmed.metadata["unconfirmed_stations"].value == "CP002, CP003"
    # CP001 accepted, and the composite schedule it reports equals the plan; CP002 and CP003 hold none of ours
    follows = checks["stations_follow_plan"]
    assert (follows.passed, follows.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert (follows.metadata["matches"].value, follows.metadata["not_read_back"].value) == (1, 2)
    assert follows.metadata["stations"].value == ("- CP002: no confirmed profile to read back\n"
                                                  "- CP003: no confirmed profile to read back")
    dispatch_md = result.asset_materializations_for_node("ocpp_dispatch")[0].metadata
    assert next(iter(dispatch_md)) == "stations"  # what an operator reads first
    assert [row.data["station"] for row in dispatch_md["stations"].value.records] == [cp.id for cp in
                                                                                     site.charge_points]
    status = {cp: station_row(dispatch_md, cp)["status"] for cp in plan}
    assert status == {"CP001": "accepted", "CP002": "rejected", "CP003": "unroutable"}
    start = stations["CP001"].received[0].charging_profile["charging_schedule"][0]["start_schedule"]
    cp001 = station_row(dispatch_md, "CP001")
    assert cp001["first limits"] == f"{local_hhmm(start, site)} 11.0 kW · " \
                                    f"{local_hhmm(start, site, timedelta(hours=2))} 4.2 kW"
    assert (cp001["read back"], cp001["answer"]) == ("matches", "Accepted")
    valid_to = stations["CP001"].received[0].charging_profile["valid_to"]
    assert cp001["valid until"].endswith(local_hhmm(valid_to, site))
    assert station_row(dispatch_md, "CP004")["status"] == "no profile"
    assert '"stationId"' not in dispatch_md["payloads_sent"].value  # the request payload, not the envelope
    assert '"chargingProfilePurpose": "TxDefaultProfile"' in dispatch_md["payloads_sent"].value
    assert dispatch_md["count_accepted"].value == 1
    # what the stations got equals the schedule
    periods = stations["CP001"].received[0].charging_profile["charging_schedule"][0]["charging_schedule_period"]
    assert [(p["start_period"], p["limit"]) for p in periods] == [(0, 11000.0), (7200, 4200.0)]
    periods = stations["CP002"].received[0].charging_profile["charging_schedule"][0]["charging_schedule_period"]
    assert [(p["start_period"], p["limit"]) for p in periods] == [(0, 0.0), (3600, 22000.0)]


def test_embedded_default_is_outbox_only(store_url, site) -> None:
    _write_plan(store_url, site, {"CP004": [5.0] * 96})
    result = dg.materialize([ocpp_charging_profiles, ocpp_dispatch], resources=_resources(store_url, BrokerResource()))
    assert result.success
    metadata = result.asset_materializations_for_node("ocpp_dispatch")[0].metadata
    assert metadata["transport"].value == "outbox"
    assert station_row(metadata, "CP004")["status"] == "pending"
    assert [e.status for e in Outbox(TimeSeriesStore(store_url).engine).entries()] == ["pending"]
    # nothing left the machine: the check says so instead of staying green
    confirmed = _checks(result)["stations_confirmed"]
    assert (confirmed.passed, confirmed.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert "outbox-only transport" in confirmed.description
    follows = _checks(result)["stations_follow_plan"]  # nothing read back is not a pass either
    assert (follows.passed, follows.metadata["not_read_back"].value) == (False, 1)


def test_schema_breaking_profile_is_never_sent_and_named(store_url, site) -> None:
    _write_plan(store_url, site, {"CP005": [5.0] * 96, "CP006": [3.0] * 96})
    engine = TimeSeriesStore(store_url).engine
    now = datetime.now(UTC)
    too_long = insert(ev_sessions).values(  # a transaction id longer than OCPP's 36 characters
        site_id="cariflex-martinique", station_id="CP005", transaction_id="T" * 40, evse_id=1, status="active",
        arrival=to_db_time(engine, now),
        departure=to_db_time(engine, now + timedelta(hours=4)), departure_is_default=True,
        energy_requested_kwh=20.0, energy_is_default=True, updated_at=to_db_time(engine, now))
    if engine.dialect.name == "postgresql":  # its varchar(36) refuses such a session at the door
        with pytest.raises(DataError, match="too long"), engine.begin() as connection:
            connection.execute(too_long)
        return
    with engine.begin() as connection:  # SQLite keeps any length: the profile check must catch it
        connection.execute(too_long)
    result = dg.materialize([ocpp_charging_profiles, ocpp_dispatch], resources=_resources(store_url, BrokerResource()))
    check = _checks(result)["profiles_valid"]
    assert not check.passed
    assert "CP005" in check.metadata["violations"].value and "transactionId" in check.metadata["violations"].value
    assert [e.station_id for e in Outbox(engine).entries()] == ["CP006"]


def _publish(amqp_url, exchange, station, action, payload, n) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    headers, body = station_message(station_id=station, tenant_id="1", action=action, state=1, payload=payload,
                                    correlation_id=f"s{n}")
    connection.channel().basic_publish(exchange, "", body, pika.BasicProperties(headers=headers))
    connection.close()


def _publish_citrineos_answer(amqp_url, exchange, station, action, payload, n) -> None:
    """CitrineOS's answer to the station request `s{n}` (origin csms, state 2, same correlationId)."""
    headers, body = station_message(station_id=station, tenant_id="1", action=action, state=2, payload=payload,
                                    correlation_id=f"s{n}")
    message = json.loads(body)
    message["origin"] = headers["origin"] = "csms"
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    connection.channel().basic_publish(exchange, "", json.dumps(message).encode(),
                                       pika.BasicProperties(headers=headers))
    connection.close()


def test_session_sensor_requests_a_rerun_on_start_needs_and_end(amqp_url, exchange, names, store_url) -> None:
    broker = _amqp_broker(amqp_url, exchange, names)
    resources = _resources(store_url, broker)
    instance = dg.DagsterInstance.ephemeral()

    def tick():
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            return ev_session_sensor(context)

    first = tick()  # declares and binds our queue; nothing yet
    assert first.run_requests == []
    at = datetime.now(UTC).replace(microsecond=0)
    started = {"eventType": "Started", "timestamp": at.isoformat().replace("+00:00", "Z"),
               "triggerReason": "CablePluggedIn", "seqNo": 0, "transactionInfo": {"transactionId": "tx-77"},
               "evse": {"id": 1}}
    _publish(amqp_url, exchange, "CP007", "TransactionEvent", started, 1)
    second = tick()
    assert len(second.run_requests) == 1
    assert second.run_requests[0].tags["cariflex/session_changes"] == "started"
    assert tick().run_requests == []  # nothing new
    needs = {"evseId": 1, "chargingNeeds": {"requestedEnergyTransfer": "AC_single_phase",
                                            "acChargingParameters": {"energyAmount": 9000, "evMinCurrent": 6,
                                                                     "evMaxCurrent": 16, "evMaxVoltage": 230}}}
    _publish(amqp_url, exchange, "CP007", "NotifyEVChargingNeeds", needs, 2)
    assert tick().run_requests == []  # needs count once CitrineOS accepts them
    _publish_citrineos_answer(amqp_url, exchange, "CP007", "NotifyEVChargingNeeds", {"status": "Accepted"}, 2)
    third = tick()
    assert [r.tags["cariflex/session_changes"] for r in third.run_requests] == ["needs_changed"]
    assert third.run_requests[0].run_key != second.run_requests[0].run_key
    ended = {**started, "eventType": "Ended", "triggerReason": "EVDeparted", "seqNo": 1}
    _publish(amqp_url, exchange, "CP007", "TransactionEvent", ended, 3)
    assert [r.tags["cariflex/session_changes"] for r in tick().run_requests] == ["ended"]


def test_sensors_skip_without_a_bus(store_url) -> None:
    resources = _resources(store_url, BrokerResource())
    with dg.build_sensor_context(resources=resources) as context:
        assert isinstance(ev_session_sensor(context), dg.SkipReason)
    with dg.build_sensor_context(resources=resources) as context:
        assert isinstance(ocpp_answer_sensor(context), dg.SkipReason)


def test_answer_sensor_records_late_answers_as_observations(amqp_url, exchange, names, make_router, store_url,
                                                            site) -> None:
    router = make_router("1.8")
    router.connect("CP008")
    _write_plan(store_url, site, {"CP008": [6.0] * 96})
    resources = _resources(store_url, _amqp_broker(amqp_url, exchange, names))
    result = dg.materialize([ocpp_charging_profiles, ocpp_dispatch], resources=resources, run_config={
        "ops": {"ocpp_dispatch": {"config": {"answer_timeout_seconds": 0}}}})
    assert station_row(result.asset_materializations_for_node("ocpp_dispatch")[0].metadata,
                       "CP008")["status"] in ("sent", "accepted")
    observed = []
    for _ in range(50):  # the station answers within moments; poll the sensor, not the clock
        with dg.build_sensor_context(resources=resources) as context:
            observed += ocpp_answer_sensor(context).asset_events
        if observed:
            break
        router.links["CP008"].stop.wait(0.1)
    assert [(e.metadata["station"].value, e.metadata["answer"].value) for e in observed] == [("CP008", "Accepted")]
    [entry] = Outbox(TimeSeriesStore(store_url).engine).entries()
    assert entry.status == "accepted"


def test_a_rejected_profile_is_not_resent_and_the_metadata_says_so(amqp_url, exchange, names, make_router,
                                                                   store_url, site) -> None:
    router = make_router("1.8")
    rejecting = router.connect("CP002", answer="Rejected")
    _write_plan(store_url, site, {"CP002": [9.0] * 96})
    resources = _resources(store_url, _amqp_broker(amqp_url, exchange, names))
    # both runs build from the same instant, so the second profile is byte-identical to the first
    run_config = {"ops": {"ocpp_charging_profiles": {"config": {"now": datetime.now(UTC).isoformat()}},
                          "ocpp_dispatch": {"config": {"answer_timeout_seconds": 10}}}}
    first = dg.materialize([ocpp_charging_profiles, ocpp_dispatch], resources=resources, run_config=run_config)
    assert station_row(first.asset_materializations_for_node("ocpp_dispatch")[0].metadata,
                       "CP002")["status"] == "rejected"
    second = dg.materialize([ocpp_charging_profiles, ocpp_dispatch], resources=resources, run_config=run_config)
    metadata = second.asset_materializations_for_node("ocpp_dispatch")[0].metadata
    assert metadata["count_skipped_rejected"].value == 1
    assert station_row(metadata, "CP002")["status"] == "skipped"
    assert "rejected by the station" in station_row(metadata, "CP002")["answer"]
    assert "| CP002 | skipped |" in metadata["dispatch_table"].value
    assert "rejected by the station" in metadata["dispatch_table"].value
    assert len(rejecting.received) == 1


def test_an_unchanged_replan_is_skipped_and_the_table_says_why(amqp_url, exchange, names, make_router,
                                                                 store_url, site) -> None:
    """The plan of the previous slot, re-planned now with the same limits: not sent again, and the dispatch
    table names the station, the profile it did not send and why; a margin longer than what the station's
    profile has left sends it to extend it."""
    router = make_router("1.8")
    station = router.connect("CP001")
    now = datetime.now(UTC)
    previous = floor_to_grid(now, site.resolution) - timedelta(minutes=15)
    _write_plan(store_url, site, {"CP001": [11.0] * 9 + [4.2] * 100}, start=previous)
    resources = _resources(store_url, _amqp_broker(amqp_url, exchange, names))

    def run(built_at: datetime, **dispatch_config):
        result = dg.materialize([ocpp_charging_profiles, ocpp_dispatch], resources=resources, run_config={"ops": {
            "ocpp_charging_profiles": {"config": {"now": built_at.isoformat()}},
            "ocpp_dispatch": {"config": {"answer_timeout_seconds": 10, **dispatch_config}}}})
        return result.asset_materializations_for_node("ocpp_dispatch")[0].metadata

    first = run(now - timedelta(minutes=15))
    assert station_row(first, "CP001")["status"] == "accepted"
    second = run(now)
    assert (second["count_skipped"].value, second["count_skipped_unchanged"].value,
            second["count_skipped_rejected"].value) == (1, 1, 0)
    assert station_row(second, "CP001")["status"] == "skipped"
    profile_id = station.received[0].charging_profile["id"]
    assert station_row(first, "CP001")["profile"] == f"TxDefaultProfile #{profile_id}"
    table = second["dispatch_table"].value
    assert (f"| CP001 | skipped | {profile_id} | TxDefaultProfile | 0min:11000, 120min:4200 | identical to last "
            f"accepted profile (outbox #1) in effect: same limits until ") in table
    assert "margin 12 h" in table
    assert len(station.received) == 1
    third = run(now, min_validity_ahead_hours=30)
    assert station_row(third, "CP001")["status"] == "accepted"
    assert len(station.received) == 2


def test_a_station_whose_plan_disappeared_is_told_to_stop_following_it(amqp_url, exchange, names, make_router,
                                                                        store_url, site) -> None:
    router = make_router("1.8")
    station = router.connect("CP001")
    start = _write_plan(store_url, site, {"CP001": [11.0] * 8})
    resources = _resources(store_url, _amqp_broker(amqp_url, exchange, names))
    run_config = {"ops": {"ocpp_dispatch": {"config": {"answer_timeout_seconds": 10}}}}
    first = dg.materialize([ocpp_charging_profiles, ocpp_dispatch], resources=resources, run_config=run_config)
    first_row = station_row(first.asset_materializations_for_node("ocpp_dispatch")[0].metadata, "CP001")
    sent_start = station.received[0].charging_profile["charging_schedule"][0]["start_schedule"]
    assert first_row["first limits"] == f"{local_hhmm(sent_start, site)} 11.0 kW"
    # the plan is withdrawn (nothing planned for CP001 over the horizon)
    TimeSeriesStore(store_url).delete_beliefs([site.charge_point("CP001").sensor_id], start,
                                              start + timedelta(hours=24), SCHEDULER_SOURCE)
    second = dg.materialize([ocpp_charging_profiles, ocpp_dispatch], resources=resources, run_config=run_config)
    profiles_md = second.asset_materializations_for_node("ocpp_charging_profiles")[0].metadata
    assert profiles_md["cleared_profiles"].value == 1
    assert "nothing planned" in profiles_md["profiles_table"].value
    dispatch_md = second.asset_materializations_for_node("ocpp_dispatch")[0].metadata
    zero_start = station.received[1].charging_profile["charging_schedule"][0]["start_schedule"]
    assert (station_row(dispatch_md, "CP001")["status"], station_row(dispatch_md, "CP001")["first limits"]) == (
        "accepted", f"{local_hhmm(zero_start, site)} 0.0 kW")
    assert len(station.received) == 2
    stale, zero = (r.charging_profile for r in station.received)
    assert zero["id"] == stale["id"]  # the same id: the station replaces the stale profile
    assert _utc(zero["valid_to"]) == _utc(stale["valid_to"]) + timedelta(minutes=15)  # outlasts it
    assert [p["limit"] for p in zero["charging_schedule"][0]["charging_schedule_period"]] == [0.0]
    # and only once: a third run has nothing left to clear
    third = dg.materialize([ocpp_charging_profiles, ocpp_dispatch], resources=resources, run_config=run_config)
    assert third.asset_materializations_for_node("ocpp_charging_profiles")[0].metadata[
        "cleared_profiles"].value == 0
    assert len(station.received) == 2


def test_session_sensor_writes_slot_averages_across_ticks(amqp_url, exchange, names, store_url) -> None:
    from cariflex_pipeline.dispatch import METER_SOURCE

    resources = _resources(store_url, _amqp_broker(amqp_url, exchange, names))
    instance = dg.DagsterInstance.ephemeral()

    def tick():
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            return ev_session_sensor(context)

    def meter(minute: int, watts: float) -> dict:
        return {"evseId": 1, "meterValue": [{"timestamp": f"2026-11-28T13:{minute:02d}:00Z", "sampledValue": [
            {"value": watts, "measurand": "Power.Active.Import"}]}]}

    tick()  # binds our queue
    _publish(amqp_url, exchange, "CP003", "MeterValues", meter(5, 10000), 1)
    tick()
    _publish(amqp_url, exchange, "CP003", "MeterValues", meter(10, 0), 2)
    tick()
    # 13:00-13:05 at 10 kW, 13:05-13:10 at 0 kW
    [value] = TimeSeriesStore(store_url).read_latest([63], sources=[METER_SOURCE])["value"]
    assert value == pytest.approx(5.0)
