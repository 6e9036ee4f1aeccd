"""The EV-charging schedule as an asset: signals from the store in, planned power of sensors 61-70 out.

Rolling horizon from the current 15-minute slot (24 h by default). Prices (84), load control (86), demand
response (87) and, when known, the PV forecast (41-50) are read from the store; sessions from the CitrineOS bus
(the session table the EV-session sensor fills) or a day template. What is done with missing inputs, and where
the sessions come from, is decided in cariflex_pipeline/scheduling/horizon.py and reported in the metadata.

The verifier runs before anything is written: with violations, nothing is written and the blocking check fails.
The metadata splits the solver's objective: ``bill_eur`` is the site's grid bill for the horizon (import of EVs,
storage and inflexible load net of PV, export unpaid: cariflex_pipeline/scheduling/problem.py),
``unserved_penalty_eur`` the penalty on energy the EVs do not get, ``tie_break_eur`` the tie-breaks, and
``objective_total_eur`` their sum. The site's export capacity bounds storage discharge.
"""

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

import dagster as dg
import numpy as np
from pydantic import Field
from sqlalchemy.engine import Engine

from cariflex_pipeline.charts import horizon_chart, markdown_image
from cariflex_pipeline.defs.partitions import plan_partitions, require_plan_day
from cariflex_pipeline.defs.provenance import LABEL_KEY, provenance_label
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.scheduling.checks import (
    Policy,
    default_policy,
    honesty_check_specs,
    honesty_checks,
    refuse_under_block,
)
from cariflex_pipeline.defs.scheduling.connected import connected_rows, connected_table
from cariflex_pipeline.defs.sites import RunSite
from cariflex_pipeline.dispatch import active_sessions, has_session_history
from cariflex_pipeline.dispatch.sessions import unapplied_needs
from cariflex_pipeline.s2.planning import rm_limits
from cariflex_pipeline.scheduling import (
    BatterySpec,
    EvSession,
    ProblemError,
    ResolvedProblem,
    ScheduleResult,
    SchedulingProblem,
    Violation,
    resolve,
    solve,
    verify,
)
from cariflex_pipeline.scheduling.horizon import (
    PriceFallback,
    SessionSource,
    SlotSignals,
    horizon_problem,
    input_gaps,
    price_fallback,
    session_source,
    signal_staleness,
)
from cariflex_pipeline.scheduling.sessions import load_day_template, sessions_for_horizon, sessions_from_live
from cariflex_pipeline.scheduling.signals import SCHEDULER_SOURCE, current_slot, on_slots, schedule_beliefs
from cariflex_pipeline.site_model import Site
from cariflex_pipeline.store import TimeSeriesStore

SIGNAL_ASSETS = [dg.AssetKey("consumption_price"), dg.AssetKey("load_control_signal"),
                 dg.AssetKey("demand_response_signal")]
# PV forecast (sensors 41-50): raises the site limit and is free energy in the bill.
MEASUREMENT_ASSETS = [dg.AssetKey("site_measurements")]
CHECK_NAME = "schedule_passes_verifier"


class ScheduleConfig(dg.Config):
    horizon_hours: float = Field(default=24.0, gt=0, le=72, description="Length of the rolling horizon.")
    session_source: Literal["auto", "live", "template"] = Field(
        default="auto",
        description="'live': sessions from the bus; 'template': the day template; 'auto': live once the bus has "
        "brought any session, else the template.")
    sessions_file: str | None = Field(
        default=None, description="Session day template (JSON); default: the bundled day for CP001-CP010.")
    missing_price_policy: Literal["error", "max_known"] = Field(
        default="max_known", description="'error' fails naming the slots; 'max_known' fills with the dearest.")
    solver: Literal["auto", "highs", "cbc"] = "auto"
    time_limit_seconds: float = Field(default=60.0, gt=0)
    include_batteries: bool | None = Field(
        default=None, description="Plan the site's stationary batteries: true, all of them (with what their S2 RM "
        "declares where one is known, the site file otherwise); false, none; unset, those an S2 RM has spoken for "
        "(a battery under S2 control is planned without further configuration).")
    use_pv_forecast: bool = Field(default=True, description="Raise the site limit by the PV values in the store.")
    inflexible_load_kw: float = Field(default=0.0, ge=0)
    unserved_penalty_eur_per_kwh: float = Field(default=10.0, gt=0)
    now: str | None = Field(default=None, description="ISO time to plan from (replays, tests); default: now.")
    price_hours_wanted: float = Field(default=6.0, ge=0, description="signals_current warns (or fails) when the "
                                      "prices are known for fewer hours ahead than this.")
    on_defaulted_inputs: Policy = Field(
        default_factory=default_policy,
        description="'warn': a plan on defaulted or stale inputs is dispatched with a warning; 'block': the run "
                    "fails before planning, naming them. Default: $CARIFLEX_ON_DEFAULTED_INPUTS, else warn.")


@dataclass(frozen=True)
class _Sessions:
    """The run's sessions and what the metadata says about them."""

    source: SessionSource
    sessions: list[EvSession]
    with_default_needs: int
    superseded: list[str]
    not_applied: list[dict]  # EV needs CitrineOS rejected or has not answered: not in these sessions
    defaulted: frozenset[str] = frozenset()  # ids of the sessions whose departure or energy is a default


@dg.asset(
    group_name="scheduling",
    partitions_def=plan_partitions,
    deps=[*SIGNAL_ASSETS, *MEASUREMENT_ASSETS],
    kinds={"pulp", "highs"},
    check_specs=[dg.AssetCheckSpec(CHECK_NAME, asset="ev_charging_schedule", blocking=True,
                                   description="The independent verifier finds no violation in the schedule."),
                 *honesty_check_specs("ev_charging_schedule")],
)
def ev_charging_schedule(
    context: dg.AssetExecutionContext, config: ScheduleConfig, site: SiteResource, store: TimeSeriesStoreResource
) -> dg.MaterializeResult:
    """Least-cost EV charging plan (PuLP + HiGHS) over a rolling horizon, written as planned power of 61-70."""
    run_site = site.for_run(context)
    site_model = run_site.model
    series = store.open(run_site.portfolio)
    now = datetime.fromisoformat(config.now) if config.now else datetime.now(UTC)
    require_plan_day(context, now, site_model.tz)
    start = current_slot(now, site_model.resolution)
    n = round(config.horizon_hours * 3600 / site_model.resolution.total_seconds())
    signals, signal_sources = _read_signals(series, site_model, start, n, config.use_pv_forecast)
    prices = price_fallback(signals.prices_eur_per_mwh, config.missing_price_policy)
    if prices.filled:
        context.log.warning("price fallback: %s", prices.description)
    sessions = _read_sessions(context, config, series.engine, run_site, now, start, n)
    v2g = _v2g_from_rms(context, site_model, series, sessions.sessions, start, start + n * site_model.resolution)
    sessions = dataclasses.replace(sessions, sessions=v2g.sessions)
    batteries = (_Batteries([], [], []) if config.include_batteries is False
                 else _batteries(context, site_model, series, only_with_rm=config.include_batteries is None))
    gaps = input_gaps(signals, prices, sessions.source, sessions.with_default_needs)
    staleness = signal_staleness(signals, site_model.resolution, config.price_hours_wanted, config.use_pv_forecast)
    refuse_under_block(gaps, staleness, config.on_defaulted_inputs)
    try:
        problem = horizon_problem(start, site_model.resolution, signals, prices, sessions.sessions, batteries.specs,
                                  config.inflexible_load_kw, config.unserved_penalty_eur_per_kwh)
        resolved = resolve(problem, site_model)
    except ProblemError as error:
        raise dg.Failure(description=f"scheduling problem refused: {error}") from error
    result = solve(resolved, solver=config.solver, time_limit_s=config.time_limit_seconds)
    violations = verify(resolved, result)
    for name in batteries.at_zero:  # written as a plan of zero, so no earlier plan for it stays in force
        result.battery_power_kw[name] = [0.0] * result.n_slots
    written = _write_plan(context, series, site_model, result, violations)
    metadata = _metadata(problem, resolved, result, signals, prices, sessions, written, site_model.tz)
    # right after the chart: who is plugged in now
    metadata = {"horizon_chart": metadata.pop("horizon_chart"), "connected_now": connected_table(connected_rows(
        problem.sessions, result, now, site_model.tz, sessions.defaulted, sessions.source == "template")),
        **metadata}
    metadata["schedule_written"] = not violations
    metadata[LABEL_KEY] = f"signals {provenance_label(signal_sources)}; sessions " + (
        "SAMPLE: the bundled day template" if sessions.source == "template" else "from the bus")
    metadata["batteries_from_s2"] = ", ".join(batteries.from_s2) or "none"
    metadata["batteries_planned_at_zero"] = ", ".join(batteries.at_zero) or "none"
    metadata["v2g_from_s2"] = ", ".join(v2g.from_s2) or "none"
    metadata["v2g_unavailable_by_s2"] = ", ".join(v2g.unavailable) or "none"
    return dg.MaterializeResult(metadata=metadata, check_results=[
        _check(violations), *honesty_checks(gaps, staleness, config.on_defaulted_inputs)])


@dataclass(frozen=True)
class _Batteries:
    specs: list[BatterySpec]
    from_s2: list[str]  # planned with what their S2 RM declares
    at_zero: list[str]  # their RM is gone or uncontrollable: planned at zero until it returns


def _batteries(context: dg.AssetExecutionContext, site: Site, series: TimeSeriesStore,
               only_with_rm: bool = False) -> _Batteries:
    """The site's batteries, each with its S2 RM's capacity, power limits and fill level where one is connected
    (the site file's values otherwise; `only_with_rm`: a battery no RM ever spoke for is left out)."""
    limits = rm_limits(series, [battery.name for battery in site.batteries])
    chosen = _Batteries([], [], [])
    for battery in site.batteries:
        spec, rm = BatterySpec.from_site(battery), limits.get(battery.name)
        if rm is None:
            if not only_with_rm:
                chosen.specs.append(spec)
        elif not rm.controllable or rm.max_charge_kw <= 0 or rm.max_discharge_kw <= 0:
            context.log.warning("battery %s planned at zero: %s", battery.name, rm.reason or "one-way power range")
            chosen.at_zero.append(battery.name)
        else:
            soc_min = min(spec.soc_min_kwh, rm.fill_level_kwh)
            chosen.specs.append(BatterySpec(**{
                **spec.model_dump(), "capacity_kwh": rm.capacity_kwh, "soc_min_kwh": soc_min, "soc_max_kwh": None,
                "initial_soc_kwh": rm.fill_level_kwh, "max_charge_kw": rm.max_charge_kw,
                "max_discharge_kw": rm.max_discharge_kw,
                "round_trip_efficiency": rm.round_trip_efficiency or spec.round_trip_efficiency}))
            chosen.from_s2.append(battery.name)
    return chosen


@dataclass(frozen=True)
class _V2g:
    sessions: list[EvSession]
    from_s2: list[str]  # chargers whose car is planned from what its S2 RM declares
    unavailable: list[str]  # chargers whose RM is gone or uncontrollable: no car to plan


def _v2g_from_rms(context: dg.AssetExecutionContext, site: Site, series: TimeSeriesStore,
                  sessions: list[EvSession], start: datetime, end: datetime) -> _V2g:
    """A V2G car's availability follows its RM: while connected, one session from now to the end of its
    FillLevelTargetProfile (else the session it replaces, else the horizon), with its capacity, fill level,
    target and power limits; while gone or uncontrolled, none. A charger that never had an RM keeps its sessions."""
    limits = rm_limits(series, [charger.name for charger in site.v2g_chargers])
    chosen = _V2g([s for s in sessions if s.charge_point not in limits], [], [])
    for name, rm in sorted(limits.items()):
        if not rm.controllable or rm.max_charge_kw <= 0 or rm.max_discharge_kw <= 0:
            context.log.warning("V2G %s not planned: %s", name, rm.reason or "one-way power range")
            chosen.unavailable.append(name)
            continue
        replaced = next((s for s in sessions if s.charge_point == name), None)
        departure = rm.target_by or (replaced.departure if replaced else end)
        soc_now = rm.fill_level_kwh / rm.capacity_kwh
        target = (rm.target_kwh / rm.capacity_kwh if rm.target_kwh is not None
                  else replaced.soc_target if replaced and replaced.soc_target is not None else soc_now)
        chosen.sessions.append(EvSession(
            id=f"{name}-s2", charge_point=name, arrival=start, departure=max(departure, start + site.resolution),
            battery_capacity_kwh=rm.capacity_kwh, soc_now=soc_now, soc_target=min(1.0, target),
            max_power_kw=rm.max_charge_kw, max_discharge_kw=rm.max_discharge_kw))
        chosen.from_s2.append(name)
    return chosen


def _read_signals(series: TimeSeriesStore, site: Site, start: datetime, n: int,
                  use_pv: bool) -> tuple[SlotSignals, list[str]]:
    """Prices, load control, demand response and (if used) PV from the store, on the horizon's slots, and the
    data source of every value read."""
    signals = site.signals
    pv_ids = [pv.sensor_id for pv in site.pv_installations] if use_pv else []
    frame = series.read_latest([signals.consumption_price, signals.load_control, signals.demand_response, *pv_ids],
                               start, start + n * site.resolution)

    def slots(sensor_ids: list[int]) -> list[float | None]:
        return on_slots(frame, sensor_ids, start, n, site.resolution)

    return SlotSignals(prices_eur_per_mwh=slots([signals.consumption_price]),
                       load_control_pct=slots([signals.load_control]),
                       demand_response_level=slots([signals.demand_response]),
                       pv_forecast_kw=slots(pv_ids)), list(frame["source"])


def _read_sessions(context: dg.AssetExecutionContext, config: ScheduleConfig, engine: Engine, run_site: RunSite,
                   now: datetime, start: datetime, n: int) -> _Sessions:
    """The sessions of the source horizon.session_source picks: the session table, or the day template."""
    site = run_site.model
    source = session_source(config.session_source, has_session_history(engine))
    if source == "template":
        template = load_day_template(config.sessions_file)
        chosen = _Sessions(source, sessions_for_horizon(template, start, start + n * site.resolution,
                                                        run_site.devices_elsewhere), 0, [], [])
    else:
        points = [cp.id for cp in site.charge_points]
        live = active_sessions(engine, points)
        sessions, superseded = sessions_from_live(live, start, site.resolution)
        defaulted = frozenset(f"{record['station_id']}:{record['transaction_id']}" for record in live
                              if record["defaults"])
        chosen = _Sessions(source, sessions, sum(record["defaults"] for record in live), superseded,
                           unapplied_needs(engine, now, station_ids=points), defaulted)
    if chosen.superseded:
        context.log.warning("not scheduled, a later transaction started at the same EVSE: %s",
                            ", ".join(chosen.superseded))
    if chosen.not_applied:
        context.log.warning("EV needs not applied: rejected by CitrineOS at %s; awaiting its answer at %s",
                            ", ".join(_stations(chosen.not_applied, "rejected")) or "none",
                            ", ".join(_stations(chosen.not_applied, "awaiting")) or "none")
    context.log.info("%d sessions from %s", len(chosen.sessions),
                     "the bus" if source == "bus" else "the day template")
    return chosen


def _stations(not_applied: list[dict], status: str) -> list[str]:
    return sorted({need["station_id"] for need in not_applied if need["status"] == status})


def _write_plan(context: dg.AssetExecutionContext, series: TimeSeriesStore, site: Site, result: ScheduleResult,
                violations: list[Violation]) -> int:
    """The planned power as beliefs, only for a schedule the verifier passes; the number of beliefs written."""
    if violations:
        context.log.error("schedule not written: %d violations, first: %s", len(violations), violations[0])
        return 0
    beliefs = schedule_beliefs(result, _sensor_by_device(site), datetime.now(UTC))
    return series.write_beliefs(beliefs, source=SCHEDULER_SOURCE, source_type="scheduler")


def _metadata(problem: SchedulingProblem, resolved: ResolvedProblem, result: ScheduleResult, signals: SlotSignals,
              prices: PriceFallback, sessions: _Sessions, written: int, tz: ZoneInfo) -> dict[str, object]:
    site_import = (result.site_power_kw() + np.asarray(problem.inflexible_load_kw)
                   - np.asarray(problem.pv_forecast_kw))
    metadata: dict[str, object] = {
        "horizon_chart": dg.MetadataValue.md(_horizon_chart(problem, resolved, result, signals, prices, tz)),
        "bill_eur": float(result.bill_eur),
        "unserved_penalty_eur": float(result.unserved_penalty_eur),
        "tie_break_eur": float(result.tie_break_eur),
        "objective_total_eur": float(result.objective_total_eur),
        "energy_delivered_kwh": float(result.energy_delivered_kwh),
        "unserved_energy_kwh": float(result.unserved_kwh),
        # energy of cars leaving after the horizon end, left to later runs (see resolve.share_in_horizon)
        "energy_after_horizon_kwh": float(sum(session.energy_kwh() for session in problem.sessions)
                                          - sum(session.energy_kwh for session in resolved.sessions)),
        "peak_site_import_kw": float(site_import.max(initial=0.0)),
        "solve_seconds": float(result.solve_seconds),
        "build_seconds": float(result.build_seconds),
        "storage_binaries": result.binaries,
        "sessions": len(resolved.sessions),
        "session_source": sessions.source,
        "sessions_with_default_needs": sessions.with_default_needs,
        "sessions_superseded": len(sessions.superseded),
        "ev_needs_rejected_by_citrineos": ", ".join(_stations(sessions.not_applied, "rejected")) or "none",
        "ev_needs_awaiting_citrineos": ", ".join(_stations(sessions.not_applied, "awaiting")) or "none",
        "ev_needs_not_applied": dg.MetadataValue.md(_needs_table(sessions.not_applied, tz)),
        "horizon_start": problem.start.isoformat(),
        "horizon_end": problem.slot_start(problem.n_slots).isoformat(),
        "solver": result.solver,
        "price_fallback": prices.description,
        "price_slots_filled": len(prices.filled),
        "load_control_slots_defaulted": sum(v is None for v in signals.load_control_pct),
        "beliefs_written": written,
        "sessions_table": dg.MetadataValue.md(_session_table(result)),
        # the exact problem this run solved: save it as a file and replay it with
        # `python -m cariflex_pipeline.scheduling PROBLEM.json`
        "problem": dg.MetadataValue.json(problem.model_dump(mode="json")),
    }
    for point, power in result.power_kw.items():
        metadata[f"schedule_{point}"] = dg.MetadataValue.md(_point_table(result, point, power, prices.prices, tz))
    return metadata


def _horizon_chart(problem: SchedulingProblem, resolved: ResolvedProblem, result: ScheduleResult,
                   signals: SlotSignals, prices: PriceFallback, tz: ZoneInfo) -> str:
    slots = [problem.slot_start(slot).astimezone(tz) for slot in range(problem.n_slots)]
    title = (f"Plan {slots[0]:%d %b %H:%M} to {problem.slot_start(problem.n_slots).astimezone(tz):%d %b %H:%M} "
             f"(site time): bill {result.bill_eur:.2f} EUR, {result.energy_delivered_kwh:.1f} kWh delivered")
    png = horizon_chart(slots, result.power_kw, resolved.site_limit_kw, prices.prices, signals.load_control_pct,
                        title)
    return markdown_image(png, "planned power per device against the site limit, price and load control")


def _check(violations: list[Violation]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=CHECK_NAME, passed=not violations, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"violations": len(violations),
                  "details": dg.MetadataValue.md("\n".join(f"- {v}" for v in violations[:50]) or "none")},
    )


def _sensor_by_device(site: Site) -> dict[str, int]:
    devices = {cp.id: cp.sensor_id for cp in site.charge_points}
    devices.update({charger.name: charger.sensor_id for charger in site.v2g_chargers})
    devices.update({battery.name: battery.sensor_id for battery in site.batteries})
    return devices


def _session_table(result: ScheduleResult) -> str:
    rows = [f"| {s.id} | {s.charge_point} | {s.energy_needed_kwh:.1f} | {s.energy_delivered_kwh:.1f} | "
            f"{s.unserved_kwh:.1f} |" for s in result.sessions]
    return "\n".join(["| session | charge point | needed kWh | delivered kWh | unserved kWh |",
                      "|---|---|---|---|---|", *rows])


def _needs_table(not_applied: list[dict], tz: ZoneInfo) -> str:
    """EV needs (NotifyEVChargingNeeds) this plan runs without: rejected by CitrineOS, or awaiting its answer."""
    def local(moment: datetime | None) -> str:
        return f"{moment.astimezone(tz):%Y-%m-%d %H:%M}" if moment else "-"

    rows = [f"| {n['station_id']} | {n['evse_id']} | {n['status']} | {n['answer'] or '-'} | "
            f"{n['reason'] or '-'} | {local(n['departure'])} | "
            f"{'-' if n['energy_kwh'] is None else format(n['energy_kwh'], '.1f')} | {local(n['requested_at'])} |"
            for n in not_applied]
    return "\n".join([f"| station | EVSE | status | CitrineOS answer | reason | departure asked ({tz.key}) | "
                      "energy asked kWh | asked at |", "|---|---|---|---|---|---|---|---|",
                      *(rows or ["| - | - | none | - | - | - | - | - |"])])


def _point_table(result: ScheduleResult, point: str, power: list[float], prices: list[float | None],
                 tz: ZoneInfo) -> str:
    """Per charge point: each slot with planned power (site-local time, as the operator reads a clock; kW; price)."""
    rows = [f"| {start.astimezone(tz):%Y-%m-%d %H:%M} | {kw:.2f} | {price:.2f} |"
            for start, kw, price in zip(result.slot_starts(), power, prices, strict=True) if abs(kw) > 1e-6]
    total = sum(power) * result.dt_h
    header = [f"{point}: {total:.1f} kWh planned", "", f"| slot ({tz.key}) | kW | EUR/MWh |", "|---|---|---|"]
    return "\n".join([*header, *(rows or ["| - | 0 | - |"])])


