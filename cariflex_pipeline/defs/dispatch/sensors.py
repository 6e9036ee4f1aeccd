"""Sensors of the dispatch stage.

`ev_session_sensor` drains our session queue on the CitrineOS bus (TransactionEvent, MeterValues,
StatusNotification, NotifyEVChargingNeeds and CitrineOS's answer to it) into the sessions table and the measured
power of sensors 61-70, and requests a rerun of scheduling and dispatch, in one process, when a session starts,
ends or changes its needs. EV needs change a session only once CitrineOS accepted them; needs it rejected are
logged here and listed in the schedule's metadata. Its run key is made of the changes themselves, so the same
change never reruns twice. In a fleet the one queue carries every site's stations (charge point ids are unique across
the portfolio): the changes are grouped by the site of their station, one run per site with changes, for that
site's partition of its today, keyed `ev-sessions:<site>:<digest of its changes>` (one site: `ev-sessions:<digest>`).
Draining the queue is one step for the fleet, so its failure fails the tick (the messages stay queued for the next
one); a site whose run request cannot be made is logged and skipped while the others' runs go ahead. A change at a
site not yet in the dynamic partition `sites` is recorded in the sessions table but requests no run (skipped with
the reason): its first 15-minute tick after `portfolio_sites_sensor` added it plans with it.

`ocpp_answer_sensor` collects station answers (Accepted/Rejected) into the outbox and shows them in the UI as
observations of `ocpp_dispatch`; in a fleet each on the partition of its station's site for that site's today.

With no AMQP URL configured (the embedded default) both skip with a reason.
"""

import logging
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

import dagster as dg

from cariflex_pipeline.defs.dispatch.resources import BrokerResource
from cariflex_pipeline.defs.partitions import IS_FLEET, partition_key_for
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.scheduling.schedules import ev_schedule_and_dispatch_job
from cariflex_pipeline.defs.sites import (
    SiteRequests,
    changes_digest,
    partitioned_site_ids,
    requests_per_site,
    site_run_key,
    site_run_request,
    site_today,
)
from cariflex_pipeline.dispatch import (
    METER_SOURCE,
    Outbox,
    SessionBook,
    SessionDefaults,
    record_answers,
    stations_from_portfolio,
)
from cariflex_pipeline.dispatch.sessions import SessionChange
from cariflex_pipeline.site_model import Portfolio

SESSION_RUN_KEY = "ev-sessions"


def session_run_requests(portfolio: Portfolio, changes: Sequence[SessionChange], partitioned: Collection[str] | None,
                         log: logging.Logger, now: datetime) -> SiteRequests:
    """One run request per site whose stations changed, keyed by that site's changes."""
    site_of = portfolio.station_sites()
    by_site: dict[str, list[SessionChange]] = {}
    for change in changes:
        by_site.setdefault(site_of[change.station_id], []).append(change)

    def request(site_id: str) -> list[dg.RunRequest]:
        site_changes = by_site[site_id]
        digest = changes_digest([change.key for change in site_changes])
        kinds = ",".join(sorted({change.kind for change in site_changes}))
        stations = ",".join(sorted({change.station_id for change in site_changes}))
        return [site_run_request(site_id, portfolio.site(site_id), now,
                                 run_key=site_run_key(SESSION_RUN_KEY, site_id, digest),
                                 tags={"cariflex/session_changes": kinds, "cariflex/stations": stations[:200]},
                                 one_site_day_partitioned=False)]

    return requests_per_site([site_id for site_id in portfolio.site_ids if site_id in by_site], partitioned,
                             request, log)


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
    portfolio = site.portfolio()
    series = store.open(portfolio)
    book = SessionBook(series.engine, stations_from_portfolio(portfolio), SessionDefaults())
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
    requests = session_run_requests(portfolio, report.changes, partitioned_site_ids(context), context.log,
                                    datetime.now(UTC))
    return dg.SensorResult(run_requests=requests.run_requests, skip_reason=requests.skip_reason())


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
    portfolio = site.portfolio()
    outbox = Outbox(store.open(portfolio).engine)
    transport = dispatch_broker.make_transport()
    answers = record_answers(outbox, transport)
    if not answers:
        return dg.SensorResult(run_requests=[])
    site_of = portfolio.station_sites() if IS_FLEET else {}
    partitioned = partitioned_site_ids(context) or set()
    now = datetime.now(UTC)
    events = []
    for answer in answers:
        entry = outbox.get(answer.correlation_id)
        metadata = {"station": answer.station_id, "answer": answer.status, "reason": answer.reason,
                    "correlation_id": answer.correlation_id, "profile_id": entry.profile_id if entry else -1}
        partition = None
        if IS_FLEET:
            # The answer concerns the dispatch of its station's site: on that site's partition of its today when
            # it exists (a station no site lists, or a site not yet partitioned, is still shown, unpartitioned).
            site_id = site_of.get(answer.station_id)
            metadata["site"] = site_id or "unknown"
            if site_id in partitioned:
                partition = partition_key_for(site_id, site_today(portfolio.site(site_id), now))
        events.append(dg.AssetObservation(asset_key="ocpp_dispatch", partition=partition, metadata=metadata))
    context.log.info("recorded %d station answer(s)", len(answers))
    return dg.SensorResult(run_requests=[], asset_events=events)
