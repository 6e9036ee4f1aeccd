"""The closed loop, from a VTN event to the charge points, in one process per run.

A price event on the in-process OpenLEADR VTN (the real `openleadr` server) -> `openadr_vtn_sensor` -> the
OpenADR ingestion writes sensor 84; TransactionEvents on the real RabbitMQ -> `ev_session_sensor` -> the job
`ev_schedule_and_dispatch` (in_process_executor) plans with that price and dispatches -> the CitrineOS-shaped
router -> simulated `ocpp` stations, whose limits equal the schedule in the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pika

from cariflex_pipeline.defs.dispatch import BrokerResource
from cariflex_pipeline.defs.dispatch.assets import ocpp_charging_profiles, ocpp_dispatch
from cariflex_pipeline.defs.dispatch.sensors import ev_session_sensor
from cariflex_pipeline.defs.openadr.assets import SIGNAL_ASSETS, openadr_events
from cariflex_pipeline.defs.openadr.resources import VtnResource
from cariflex_pipeline.defs.openadr.sensors import openadr_ingest_job, openadr_vtn_sensor
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.scheduling.assets import ev_charging_schedule
from cariflex_pipeline.defs.scheduling.schedules import ev_schedule_and_dispatch_job
from cariflex_pipeline.dispatch import station_message
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.dispatch.conftest import assert_stations_follow_the_schedule
from cariflex_pipeline_tests.openadr.vtn20b import PRICE_CONTEXT, InProcessVtn


def test_vtn_price_event_and_bus_sessions_reach_the_stations(amqp_url, exchange, names, make_router, tmp_path,
                                                              site) -> None:
    router = make_router("1.8")
    stations = {cp.id: router.connect(cp.id) for cp in site.charge_points}
    vtn = InProcessVtn(poll_freq=timedelta(0))
    try:
        store_url = f"sqlite:///{tmp_path / 'loop.sqlite'}"
        resources = {
            "site": SiteResource(), "store": TimeSeriesStoreResource(database_url=store_url),
            "vtn": VtnResource(url=vtn.url, protocol="2.0b"),
            "dispatch_broker": BrokerResource(transport="amqp", amqp_url=amqp_url, exchange=exchange,
                                              answer_queue=names["answers"], session_queue=names["sessions"]),
        }
        defs = dg.Definitions(
            assets=[openadr_events, *SIGNAL_ASSETS, ev_charging_schedule, ocpp_charging_profiles, ocpp_dispatch],
            jobs=[openadr_ingest_job, ev_schedule_and_dispatch_job], sensors=[openadr_vtn_sensor, ev_session_sensor],
            resources=resources)
        instance = dg.DagsterInstance.ephemeral()

        def tick(sensor, cursor=None):
            with dg.build_sensor_context(instance=instance, resources=resources, definitions=defs,
                                         cursor=cursor) as context:
                return sensor(context)

        # 1. a price event on the VTN: cheap for the next hour, dear for the three after
        first = tick(openadr_vtn_sensor)
        assert first.run_requests == []
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        vtn.add_event("ven_1", "ELECTRICITY_PRICE", "price", PRICE_CONTEXT,
                      [(start, timedelta(hours=1), 20.0), (start + timedelta(hours=1), timedelta(hours=3), 300.0)])
        [price_request] = tick(openadr_vtn_sensor, first.cursor).run_requests
        ingested = dg.materialize([openadr_events, *SIGNAL_ASSETS], partition_key=price_request.partition_key,
                                  resources=resources, instance=instance)
        assert ingested.success
        assert sorted(TimeSeriesStore(store_url).read_latest([84])["value"].unique()) == [20.0, 300.0]

        # 2. two EVs start charging: the session sensor asks for a rerun of scheduling and dispatch
        assert tick(ev_session_sensor).run_requests == []
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        for n, station in enumerate(["CP002", "CP009"]):
            headers, body = station_message(
                station_id=station, tenant_id="1", action="TransactionEvent", state=1, correlation_id=f"loop-{n}",
                payload={"eventType": "Started", "timestamp": datetime.now(UTC).isoformat(),
                         "triggerReason": "CablePluggedIn", "seqNo": 0,
                         "transactionInfo": {"transactionId": f"loop-tx-{station}"}, "evse": {"id": 1}})
            connection.channel().basic_publish(exchange, "", body, pika.BasicProperties(headers=headers))
        connection.close()
        [session_request] = tick(ev_session_sensor).run_requests

        # 3. the latency-critical chain, in one process
        job = defs.resolve_job_def("ev_schedule_and_dispatch")
        result = job.execute_in_process(instance=instance, tags=session_request.tags, run_config={
            "ops": {"ocpp_dispatch": {"config": {"answer_timeout_seconds": 10}}}})
        assert result.success
        schedule_md = result.asset_materializations_for_node("ev_charging_schedule")[0].metadata
        assert schedule_md["price_slots_filled"].value < 96  # the VTN's prices were used
    finally:
        vtn.stop()

    # 4. every station got exactly the schedule (W, merged, from the profile's start slot), and was accepted
    dispatch_md = result.asset_materializations_for_node("ocpp_dispatch")[0].metadata
    received, planned_kw_total = assert_stations_follow_the_schedule(store_url, site, stations, dispatch_md)
    for station in ("CP002", "CP009"):
        assert received[station].charging_profile["transaction_id"] == f"loop-tx-{station}"
    assert planned_kw_total > 0  # the 24 h horizon always holds sessions of the bundled day: not all zeros
