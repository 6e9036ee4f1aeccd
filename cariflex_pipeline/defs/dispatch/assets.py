"""OCPP dispatch assets: the schedule's planned power -> validated profiles -> sent through the outbox.

`ocpp_charging_profiles` reads the latest planned power of the charge-point sensors (source
"cariflex-scheduler") over the horizon, builds one SetChargingProfileRequest per station (TxProfile when the
bus told us of an active transaction) and validates it; a station with nothing planned whose last profile still
allows charging gets a limit-0 profile under the same id, so it stops following a stale plan; a profile that
breaks the OCPP schema or CitrineOS's rules is never sent and its violations are named in the metadata and in
the `profiles_valid` check.
`ocpp_dispatch` stores them in the outbox and sends them with the configured transport; the metadata shows first
a table per station (status, answer, first limits in kW at site time, valid until, read-back), then the counts,
the limits and profile ids in detail and the payloads as sent; for a station left alone it says why (e.g. the
same limits as the profile it accepted, which stays in force longer than `min_validity_ahead_hours`). Its checks
say whether every station holds a confirmed profile (`stations_confirmed`: a warning while one is unconfirmed, an
error past `unconfirmed_error_after_minutes`) and whether the stations' composite schedules, read back after Accepted,
equal the plan (`stations_follow_plan`).
"""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import dagster as dg
from pydantic import Field

from cariflex_pipeline.defs.dispatch.checks import CONFIRMED_CHECK, FOLLOW_CHECK, confirmed_check, follow_plan_check
from cariflex_pipeline.defs.dispatch.resources import BrokerResource
from cariflex_pipeline.defs.dispatch.station_table import raw_payloads, station_rows, station_table
from cariflex_pipeline.defs.partitions import plan_partitions
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.dispatch import (
    DEFAULT_MIN_VALIDITY_AHEAD,
    BuiltProfile,
    DeliveryPolicy,
    Outbox,
    ProfileConfig,
    active_transactions,
    dispatch_profiles,
    profiles_from_plan,
)
from cariflex_pipeline.dispatch.profiles import floor_to_grid
from cariflex_pipeline.scheduling.signals import SCHEDULER_SOURCE

PROFILES_CHECK = "profiles_valid"
# A plan materialized on its own (the UI's Materialize on ev_charging_schedule, a CLI run) reaches the stations:
# profiles and dispatch follow it, unless a blocking check of what they depend on failed. Runs that already hold
# them (the sensors' chains, the 15-minute tick, the main job) do not trigger them again.
FOLLOW_THE_PLAN = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


class ProfileBuildConfig(dg.Config):
    horizon_hours: float = Field(default=24.0, gt=0, le=72, description="Planned power read from now on.")
    purpose_policy: Literal["auto", "tx_default_only", "tx_only"] = Field(
        default="auto", description="auto: TxProfile with a known transaction, else TxDefaultProfile.")
    rate_unit: Literal["W", "A"] = "W"
    number_phases: int | None = Field(default=None, description="Needed with rate_unit A.")
    voltage: float | None = Field(default=None, description="Line-to-neutral volts, needed with rate_unit A.")
    stack_level: int = Field(default=1, ge=0)
    now: str | None = Field(default=None, description="ISO time to build from (replays, tests); default: now.")


class DispatchConfig(dg.Config):
    force: bool = Field(default=False, description="Resend profiles identical to the last accepted ones.")
    min_validity_ahead_hours: float = Field(
        default=DEFAULT_MIN_VALIDITY_AHEAD.total_seconds() / 3600, ge=0,
        description="A profile with the same limits as the station's last accepted (or rejected) one is not "
                    "resent while that one stays valid at least this many hours ahead; once its validTo is "
                    "nearer, the new one is sent to extend it. Keep it below the plan's horizon.")
    answer_timeout_seconds: float = Field(default=5.0, ge=0, description="Wait this long for station answers.")
    uncertain_grace_seconds: float = Field(default=3.0, ge=0)
    answer_deadline_seconds: float = Field(
        default=120.0, gt=0, description="A profile sent this long ago without an answer is unanswered and is "
                                         "re-sent, rebuilt from the current plan, under the same profile id.")
    retry_base_seconds: float = Field(default=30.0, gt=0, description="Wait after the first undelivered attempt; "
                                                                      "doubles with each further one.")
    retry_max_seconds: float = Field(default=900.0, gt=0, description="Longest wait between attempts.")
    max_attempts: int = Field(default=8, ge=1, description="Attempts for the same effect before giving up.")
    unconfirmed_error_after_minutes: float = Field(
        default=30.0, gt=0, description="stations_confirmed fails with an error (not a warning) once a station's "
                                        "wanted profile has gone unconfirmed this long.")
    read_back: bool = Field(default=True, description="Ask each station that accepted for its composite "
                                                       "schedule and compare it with the plan.")

    def policy(self) -> DeliveryPolicy:
        return DeliveryPolicy(answer_deadline=timedelta(seconds=self.answer_deadline_seconds),
                              retry_base=timedelta(seconds=self.retry_base_seconds),
                              retry_max=timedelta(seconds=max(self.retry_max_seconds, self.retry_base_seconds)),
                              max_attempts=self.max_attempts,
                              unconfirmed_error_after=timedelta(minutes=self.unconfirmed_error_after_minutes))


def _limits_text(profile_limits: Sequence[tuple[int, float]]) -> str:
    return ", ".join(f"{start // 60}min:{limit:g}" for start, limit in profile_limits)


@dg.asset(
    group_name="dispatch",
    partitions_def=plan_partitions,
    deps=[dg.AssetKey("ev_charging_schedule")],
    kinds={"ocpp"},
    automation_condition=FOLLOW_THE_PLAN,
    check_specs=[dg.AssetCheckSpec(PROFILES_CHECK, asset="ocpp_charging_profiles",
                                   description="Every station's profile passes the OCPP 2.0.1 schema and "
                                               "CitrineOS's rules (invalid ones are never sent).")],
)
def ocpp_charging_profiles(
    context: dg.AssetExecutionContext, config: ProfileBuildConfig, site: SiteResource,
    store: TimeSeriesStoreResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """One validated OCPP 2.0.1 SetChargingProfileRequest per charge point, from the schedule's planned power."""
    run_site = site.for_run(context)
    site_model = run_site.model
    series = store.open(run_site.portfolio)
    now = datetime.fromisoformat(config.now) if config.now else datetime.now(UTC)
    start = floor_to_grid(now, site_model.resolution)
    end = start + timedelta(hours=config.horizon_hours)
    sensor_ids = [cp.sensor_id for cp in site_model.charge_points]
    planned = series.read_latest(sensor_ids, start, end, sources=[SCHEDULER_SOURCE])
    transactions = active_transactions(series.engine)
    profile_config = ProfileConfig(purpose_policy=config.purpose_policy, rate_unit=config.rate_unit,
                                   number_phases=config.number_phases, voltage=config.voltage,
                                   stack_level=config.stack_level)
    outbox = Outbox(series.engine)
    built = profiles_from_plan(site_model, planned, now=now, transactions=transactions, config=profile_config,
                               in_force=outbox.last_in_force(now), outlast=outbox.valid_to_to_outlast(now))
    for station, violations in built.invalid.items():
        context.log.error("station %s: profile not sent: %s", station, "; ".join(violations))
    rows = [f"| {p.station_id} | {p.purpose} | {p.profile_id} | {len(p.limits)} | {p.rate_unit} | "
            f"{_limits_text(p.limits[:8])}{' …' if len(p.limits) > 8 else ''} | {'; '.join(p.notes)} |"
            for p in built.profiles]
    rows += [f"| {station} | INVALID | - | - | - | - | {'; '.join(v)[:300]} |"
             for station, v in built.invalid.items()]
    metadata = {
        "profiles": len(built.profiles),
        "invalid_profiles": len(built.invalid),
        "tx_profiles": sum(p.purpose == "TxProfile" for p in built.profiles),
        "cleared_profiles": len(built.cleared),
        "planned_rows": len(planned),
        "horizon_start": start.isoformat(),
        "profiles_table": dg.MetadataValue.md("\n".join(
            ["| station | purpose | profile id | periods | unit | limits (start:limit) | notes |",
             "|---|---|---|---|---|---|---|", *rows])),
    }
    check = dg.AssetCheckResult(
        check_name=PROFILES_CHECK, passed=not built.invalid, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"invalid": len(built.invalid), "violations": dg.MetadataValue.md("\n".join(
            f"- {station}: {v}" for station, vs in built.invalid.items() for v in vs) or "none")})
    yield dg.Output(built.profiles, metadata=metadata)
    yield check


@dg.asset(
    group_name="dispatch",
    partitions_def=plan_partitions,
    kinds={"ocpp", "rabbitmq"},
    automation_condition=FOLLOW_THE_PLAN,
    check_specs=[
        dg.AssetCheckSpec(CONFIRMED_CHECK, asset="ocpp_dispatch",
                          description="Every station that should follow a profile holds one it confirmed (Accepted); "
                                      "a warning while one is unconfirmed, an error past the configured bound."),
        dg.AssetCheckSpec(FOLLOW_CHECK, asset="ocpp_dispatch",
                          description="The composite schedule each station reports (GetCompositeSchedule after "
                                      "Accepted) equals the plan; names the station, the period and both limits."),
    ],
)
def ocpp_dispatch(
    context: dg.AssetExecutionContext, config: DispatchConfig, store: TimeSeriesStoreResource,
    site: SiteResource, dispatch_broker: BrokerResource, ocpp_charging_profiles: list[BuiltProfile],
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Profiles stored in the outbox and sent to CitrineOS; per station what was sent and what it answered."""
    run_site = site.for_run(context)
    site_model = run_site.model
    series = store.open(run_site.portfolio)
    outbox = Outbox(series.engine)
    transport = dispatch_broker.make_transport(answer_book=outbox, tenant_id=run_site.entry.citrineos_tenant)
    policy = config.policy()
    try:
        report = dispatch_profiles(outbox, transport, ocpp_charging_profiles, site_id=run_site.id,
                                   run_id=context.run.run_id,
                                   force=config.force, answer_timeout=config.answer_timeout_seconds,
                                   uncertain_grace=config.uncertain_grace_seconds,
                                   min_validity_ahead=timedelta(hours=config.min_validity_ahead_hours),
                                   policy=policy, read_back=config.read_back)
    finally:
        transport.close()
    planned = {p.station_id: p for p in ocpp_charging_profiles}
    station_ids = [cp.id for cp in site_model.charge_points]
    # First what an operator reads: a row per station; the counts for the UI's plots; the details last.
    metadata: dict[str, object] = {
        "stations": station_table(station_rows(station_ids, report, planned, site_model.tz)),
        "transport": report.transport,
    }
    for status, count in sorted(report.counts().items()):
        metadata[f"count_{status}"] = count
    rows = []
    for station, entry in sorted(report.entries.items()):
        limits = _limits_text(entry.limits[:8]) + (" …" if len(entry.limits) > 8 else "")
        rows.append(f"| {station} | {entry.status} | {entry.profile_id} | {entry.purpose} | {limits} | "
                    f"{entry.status_reason[:200]} | {entry.correlation_id} |")
    for station, reason in sorted(report.skipped.items()):
        # the profile this run built and did not send (a station only retried has none)
        profile = planned.get(station)
        built = (f"{profile.profile_id} | {profile.purpose} | {_limits_text(profile.limits[:8])}"
                 f"{' …' if len(profile.limits) > 8 else ''}") if profile else "- | - | -"
        rows.append(f"| {station} | skipped | {built} | {reason[:300]} | - |")
    metadata["dispatch_table"] = dg.MetadataValue.md("\n".join(
        ["| station | status | profile id | purpose | limits (start:limit) | reason | correlation id |",
         "|---|---|---|---|---|---|---|", *rows]))
    metadata["payloads_sent"] = raw_payloads(report)
    context.log.info("dispatch via %s: %s", report.transport, report.counts())
    now = datetime.now(UTC)
    delivery = outbox.delivery(station_ids, now)
    yield dg.Output(None, metadata=metadata)
    yield confirmed_check(delivery, now, policy, site_model.tz, report.transport)
    yield follow_plan_check(delivery)
