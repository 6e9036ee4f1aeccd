"""Sensors of the dispatch stage.

`ev_session_sensor` drains our session queue on the CitrineOS bus (TransactionEvent, MeterValues,
StatusNotification, NotifyEVChargingNeeds and CitrineOS's answer to it) into the sessions table and the measured
power of sensors 61-70, and requests a rerun of scheduling and dispatch, in one process, when a session starts,
ends or changes its needs. EV needs change a session only once CitrineOS accepted them; needs it rejected are
logged here and listed in the schedule's metadata. Its run key is made of the changes themselves, so the same
change never reruns twice.

`ocpp_answer_sensor` collects station answers (Accepted/Rejected) into the outbox and shows them in the UI as
observations of `ocpp_dispatch`.

With no AMQP URL configured (the embedded default) both skip with a reason.
"""

import hashlib

import dagster as dg

from cariflex_pipeline.defs.dispatch.resources import BrokerResource
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.scheduling.schedules import ev_schedule_and_dispatch_job
from cariflex_pipeline.dispatch import (
    METER_SOURCE,
    Outbox,
    SessionBook,
    SessionDefaults,
    record_answers,
    stations_from_portfolio,
)


@dg.sensor(
    job=ev_schedule_and_dispatch_job,
    # An EV that plugs in waits for this plus the run: as often as the sensor daemon looks (every 5 s). A tick that
    # finds the queue empty costs one passive queue drain.
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Drains EV session messages from the CitrineOS bus; reruns scheduling and dispatch when a "
                "session starts, ends or changes its needs.",
)
def ev_session_sensor(
    context: dg.SensorEvaluationContext, site: SiteResource, store: TimeSeriesStoreResource,
    dispatch_broker: BrokerResource,
) -> dg.SensorResult | dg.SkipReason:
    if not dispatch_broker.has_bus():
        return dg.SkipReason("no CARIFLEX_AMQP_URL configured: no session bus to follow")
    site_model = site.load()
    series = store.open(site_model)
    book = SessionBook(series.engine, stations_from_portfolio(site.portfolio()), SessionDefaults())
    consumer = dispatch_broker.session_consumer(
        book, lambda frame: series.write_beliefs(frame, source=METER_SOURCE, source_type="meter"),
        lambda ids, start, end: series.read_latest(ids, start, end, sources=[METER_SOURCE]))
    report = consumer.drain()
    context.log.info("sessions: %d processed (%d CitrineOS answers to EV needs), %d dead-lettered, %d unknown "
                     "station, %d changes, %d power beliefs", report.processed, report.needs_answers,
                     report.dead_lettered, report.unknown_station, len(report.changes), report.beliefs_written)
    for rejected in report.needs_rejected:
        context.log.warning("EV needs rejected by CitrineOS, not applied: %s", rejected)
    if not report.changes:
        return dg.SensorResult(run_requests=[])
    keys = sorted(change.key for change in report.changes)
    digest = hashlib.sha256("|".join(keys).encode()).hexdigest()[:16]
    kinds = ",".join(sorted({change.kind for change in report.changes}))
    stations = ",".join(sorted({change.station_id for change in report.changes}))
    return dg.SensorResult(run_requests=[dg.RunRequest(
        run_key=f"ev-sessions:{digest}",
        tags={"cariflex/session_changes": kinds, "cariflex/stations": stations[:200]},
    )])


@dg.sensor(
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Collects station answers to SetChargingProfile into the outbox (visible as observations).",
)
def ocpp_answer_sensor(
    context: dg.SensorEvaluationContext, site: SiteResource, store: TimeSeriesStoreResource,
    dispatch_broker: BrokerResource,
) -> dg.SensorResult | dg.SkipReason:
    if not dispatch_broker.has_bus() or dispatch_broker.settings().transport != "amqp":
        return dg.SkipReason("answers are read from the bus only with the amqp transport")
    series = store.open(site.load())
    outbox = Outbox(series.engine)
    transport = dispatch_broker.make_transport()
    answers = record_answers(outbox, transport)
    if not answers:
        return dg.SensorResult(run_requests=[])
    events = []
    for answer in answers:
        entry = outbox.get(answer.correlation_id)
        events.append(dg.AssetObservation(
            asset_key="ocpp_dispatch",
            metadata={"station": answer.station_id, "answer": answer.status, "reason": answer.reason,
                      "correlation_id": answer.correlation_id,
                      "profile_id": entry.profile_id if entry else -1}))
    context.log.info("recorded %d station answer(s)", len(answers))
    return dg.SensorResult(run_requests=[], asset_events=events)
