"""From the bus to the charge points through the Dagster graph, in one process.

TransactionEvents on the (real) RabbitMQ -> `ev_session_sensor` requests a run -> the job
`ev_schedule_and_dispatch` (schedule -> profiles -> dispatch, in_process_executor) -> the CitrineOS-shaped
router -> ten simulated `ocpp` stations. The limits each station receives equal the schedule written to the
store, and stations with a live transaction get a TxProfile carrying its id.
(Prices here are the scheduler's documented fallback: the OpenADR stage is not part of this job.)"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pika

from cariflex_pipeline.defs.dispatch import BrokerResource
from cariflex_pipeline.defs.dispatch.assets import ocpp_charging_profiles, ocpp_dispatch
from cariflex_pipeline.defs.dispatch.sensors import ev_session_sensor
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.scheduling.assets import ev_charging_schedule
from cariflex_pipeline.defs.scheduling.schedules import ev_schedule_and_dispatch_job
from cariflex_pipeline.dispatch import station_message
from cariflex_pipeline_tests.dispatch.conftest import assert_stations_follow_the_schedule


def test_sessions_on_the_bus_to_profiles_at_the_stations(amqp_url, exchange, names, make_router, tmp_path,
                                                          site) -> None:
    router = make_router("1.8")
    stations = {cp.id: router.connect(cp.id) for cp in site.charge_points}
    store_url = f"sqlite:///{tmp_path / 'e2e.sqlite'}"
    resources = {
        "site": SiteResource(), "store": TimeSeriesStoreResource(database_url=store_url),
        "dispatch_broker": BrokerResource(transport="amqp", amqp_url=amqp_url, exchange=exchange,
                                          answer_queue=names["answers"], session_queue=names["sessions"]),
    }
    defs = dg.Definitions(assets=[ev_charging_schedule, ocpp_charging_profiles, ocpp_dispatch],
                          jobs=[ev_schedule_and_dispatch_job], sensors=[ev_session_sensor], resources=resources)
    instance = dg.DagsterInstance.ephemeral()

    def tick():
        with dg.build_sensor_context(instance=instance, resources=resources, definitions=defs) as context:
            return ev_session_sensor(context)

    assert tick().run_requests == []  # binds our session queue
    now = datetime.now(UTC).replace(microsecond=0)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    for n, (station, tx) in enumerate([("CP001", "tx-e2e-1"), ("CP006", "tx-e2e-6")]):
        headers, body = station_message(station_id=station, tenant_id="1", action="TransactionEvent", state=1,
                                        correlation_id=f"e2e-{n}", payload={
                                            "eventType": "Started", "timestamp": now.isoformat(),
                                            "triggerReason": "CablePluggedIn", "seqNo": 0,
                                            "transactionInfo": {"transactionId": tx}, "evse": {"id": 1}})
        connection.channel().basic_publish(exchange, "", body, pika.BasicProperties(headers=headers))
    connection.close()
    [request] = tick().run_requests

    job = defs.resolve_job_def("ev_schedule_and_dispatch")
    assert job.executor_def is dg.in_process_executor
    result = job.execute_in_process(instance=instance, tags=request.tags,
                                    run_config={"ops": {"ocpp_dispatch": {"config": {"answer_timeout_seconds": 10}}}})
    assert result.success
    dispatch_md = result.asset_materializations_for_node("ocpp_dispatch")[0].metadata

    # the schedule as written to the store, per station, from the current slot on, as W limits merged
    received, planned_kw = assert_stations_follow_the_schedule(store_url, site, stations, dispatch_md)
    for cp in site.charge_points:
        purpose = received[cp.id].charging_profile["charging_profile_purpose"]
        if cp.id in ("CP001", "CP006"):
            assert (purpose, received[cp.id].charging_profile["transaction_id"]) == (
                "TxProfile", {"CP001": "tx-e2e-1", "CP006": "tx-e2e-6"}[cp.id])
        else:
            assert purpose == "TxDefaultProfile"
    assert planned_kw > 0  # the schedule does charge somewhere, so the comparison is not all zeros
