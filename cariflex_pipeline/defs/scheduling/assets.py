"""The EV-charging schedule as an asset: signals from the store in, planned power of sensors 61-70 out.

Rolling horizon from the current 15-minute slot (24 h by default). Prices (84), load control (86), demand
response (87) and, when known, the PV forecast (41-50) are read from the store. Sessions are the live ones from
the CitrineOS bus (the session table the EV-session sensor fills) once the bus has brought any; before that, and
on the embedded default, a day template (the bundled day for CP001-CP010 unless configured). Missing inputs,
documented and reported in the metadata:

- load control: 100 % where unknown; demand response: level 0 where unknown; PV: 0 where unknown.
- prices, policy ``max_known`` (default): gaps filled with the dearest known price of the horizon, so the plan
  avoids unknown slots unless an EV needs them; no price at all: a flat price, i.e. earliest charging within the
  limits. Policy ``error``: the run fails naming the slots.

The verifier runs before anything is written: with violations, nothing is written and the blocking check fails.
``cost_eur`` is the site's grid bill for the horizon: import of EVs, storage and inflexible load net of PV,
export unpaid (cariflex_pipeline/scheduling/problem.py); the site's export capacity bounds storage discharge.
"""

from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

import dagster as dg
import numpy as np
from pydantic import Field

from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.dispatch import active_sessions, has_session_history
from cariflex_pipeline.dispatch.sessions import unapplied_needs
from cariflex_pipeline.scheduling import (
    BatterySpec,
    ProblemError,
    ScheduleResult,
    SchedulingProblem,
    fill_missing_prices,
    resolve,
    solve,
    verify,
)
from cariflex_pipeline.scheduling.sessions import load_day_template, sessions_for_horizon, sessions_from_live
from cariflex_pipeline.scheduling.signals import SCHEDULER_SOURCE, current_slot, on_slots, schedule_beliefs
from cariflex_pipeline.site_model import Site

SIGNAL_ASSETS = [dg.AssetKey("consumption_price"), dg.AssetKey("load_control_signal"),
                 dg.AssetKey("demand_response_signal")]
# PV forecast (sensors 41-50): raises the site limit and is free energy in the bill.
MEASUREMENT_ASSETS = [dg.AssetKey("site_measurements")]
CHECK_NAME = "schedule_passes_verifier"
FLAT_PRICE_EUR_PER_MWH = 100.0


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
    include_batteries: bool = Field(default=False, description="Plan the site's stationary batteries too.")
    use_pv_forecast: bool = Field(default=True, description="Raise the site limit by the PV values in the store.")
    inflexible_load_kw: float = Field(default=0.0, ge=0)
    unserved_penalty_eur_per_kwh: float = Field(default=10.0, gt=0)
    now: str | None = Field(default=None, description="ISO time to plan from (replays, tests); default: now.")


@dg.asset(
    group_name="scheduling",
    deps=[*SIGNAL_ASSETS, *MEASUREMENT_ASSETS],
    kinds={"pulp", "highs"},
    check_specs=[dg.AssetCheckSpec(CHECK_NAME, asset="ev_charging_schedule", blocking=True,
                                   description="The independent verifier finds no violation in the schedule.")],
)
def ev_charging_schedule(
    context: dg.AssetExecutionContext, config: ScheduleConfig, site: SiteResource, store: TimeSeriesStoreResource
) -> dg.MaterializeResult:
    """Least-cost EV charging plan (PuLP + HiGHS) over a rolling horizon, written as planned power of 61-70."""
    site_model = site.load()
    series = store.open(site_model)
    now = datetime.fromisoformat(config.now) if config.now else datetime.now(UTC)
    start = current_slot(now, site_model.resolution)
    n = round(config.horizon_hours * 3600 / site_model.resolution.total_seconds())
    end = start + n * site_model.resolution
    signals = site_model.signals
    pv_ids = [pv.sensor_id for pv in site_model.pv_installations] if config.use_pv_forecast else []
    frame = series.read_latest([signals.consumption_price, signals.load_control, signals.demand_response, *pv_ids],
                               start, end)
    raw_prices = on_slots(frame, [signals.consumption_price], start, n, site_model.resolution)
    load_control = on_slots(frame, [signals.load_control], start, n, site_model.resolution)
    levels = on_slots(frame, [signals.demand_response], start, n, site_model.resolution)
    pv = on_slots(frame, pv_ids, start, n, site_model.resolution)

    fallback = "none"
    if config.missing_price_policy == "max_known" and all(p is None for p in raw_prices):
        prices, filled = [FLAT_PRICE_EUR_PER_MWH] * n, list(range(n))
        fallback = "no price known in the horizon: flat price (earliest charging within the limits)"
    else:
        prices, filled = fill_missing_prices(raw_prices, config.missing_price_policy)
        if filled:
            fallback = f"{len(filled)} slots without a price filled with the dearest known price"
    if filled:
        context.log.warning("price fallback: %s", fallback)

    use_live = config.session_source == "live" or (
        config.session_source == "auto" and has_session_history(series.engine))
    if use_live:
        live = active_sessions(series.engine, [cp.id for cp in site_model.charge_points])
        sessions, superseded = sessions_from_live(live, start, site_model.resolution)
        sessions_with_defaults = sum(record["defaults"] for record in live)
        if superseded:
            context.log.warning("not scheduled, a later transaction started at the same EVSE: %s",
                                ", ".join(superseded))
        # EV needs CitrineOS rejected, or has not answered yet, are not in the sessions planned here
        not_applied = unapplied_needs(series.engine, now, station_ids=[cp.id for cp in site_model.charge_points])
    else:
        sessions = sessions_for_horizon(load_day_template(config.sessions_file), start, end)
        sessions_with_defaults, superseded, not_applied = 0, [], []
    needs_rejected = sorted({n["station_id"] for n in not_applied if n["status"] == "rejected"})
    needs_awaiting = sorted({n["station_id"] for n in not_applied if n["status"] == "awaiting"})
    if not_applied:
        context.log.warning("EV needs not applied: rejected by CitrineOS at %s; awaiting its answer at %s",
                            ", ".join(needs_rejected) or "none", ", ".join(needs_awaiting) or "none")
    context.log.info("%d sessions from %s", len(sessions), "the bus" if use_live else "the day template")
    problem = SchedulingProblem(
        start=start, resolution_minutes=int(site_model.resolution.total_seconds() // 60),
        prices_eur_per_mwh=prices,
        load_control_pct=[100.0 if v is None else v for v in load_control],
        demand_response_level=[0 if v is None else round(v) for v in levels],
        pv_forecast_kw=[0.0 if v is None else v for v in pv],
        inflexible_load_kw=[config.inflexible_load_kw] * n,
        unserved_penalty_eur_per_kwh=config.unserved_penalty_eur_per_kwh,
        sessions=sessions,
        batteries=[BatterySpec.from_site(b) for b in site_model.batteries] if config.include_batteries else [],
    )
    try:
        resolved = resolve(problem, site_model)
    except ProblemError as error:
        raise dg.Failure(description=f"scheduling problem refused: {error}") from error
    result = solve(resolved, solver=config.solver, time_limit_s=config.time_limit_seconds)
    violations = verify(resolved, result)

    written = 0
    if not violations:
        belief_time = datetime.now(UTC)
        written = series.write_beliefs(schedule_beliefs(result, _sensor_by_device(site_model), belief_time),
                                       source=SCHEDULER_SOURCE, source_type="scheduler")
    else:
        context.log.error("schedule not written: %d violations, first: %s", len(violations), violations[0])

    site_import = (result.site_power_kw() + np.asarray(problem.inflexible_load_kw)
                   - np.asarray(problem.pv_forecast_kw))
    metadata: dict[str, object] = {
        "cost_eur": float(result.cost_eur(resolved)),
        "energy_delivered_kwh": float(result.energy_delivered_kwh),
        "unserved_energy_kwh": float(result.unserved_kwh),
        # energy of cars leaving after the horizon end, left to later runs (see resolve.share_in_horizon)
        "energy_after_horizon_kwh": float(sum(session.energy_kwh() for session in problem.sessions)
                                          - sum(session.energy_kwh for session in resolved.sessions)),
        "peak_site_import_kw": float(site_import.max(initial=0.0)),
        "solve_seconds": float(result.solve_seconds),
        "build_seconds": float(result.build_seconds),
        "objective_eur": float(result.objective_eur),
        "sessions": len(resolved.sessions),
        "session_source": "bus" if use_live else "template",
        "sessions_with_default_needs": sessions_with_defaults,
        "sessions_superseded": len(superseded),
        "ev_needs_rejected_by_citrineos": ", ".join(needs_rejected) or "none",
        "ev_needs_awaiting_citrineos": ", ".join(needs_awaiting) or "none",
        "ev_needs_not_applied": dg.MetadataValue.md(_needs_table(not_applied, site_model.tz)),
        "horizon_start": start.isoformat(),
        "horizon_end": end.isoformat(),
        "solver": result.solver,
        "price_fallback": fallback,
        "price_slots_filled": len(filled),
        "load_control_slots_defaulted": sum(v is None for v in load_control),
        "beliefs_written": written,
        "schedule_written": not violations,
        "sessions_table": dg.MetadataValue.md(_session_table(result)),
        # the exact problem this run solved: save it as a file and replay it with
        # `python -m cariflex_pipeline.scheduling PROBLEM.json`
        "problem": dg.MetadataValue.json(problem.model_dump(mode="json")),
    }
    for point, power in result.power_kw.items():
        metadata[f"schedule_{point}"] = dg.MetadataValue.md(_point_table(result, point, power, prices, site_model.tz))
    check = dg.AssetCheckResult(
        check_name=CHECK_NAME, passed=not violations, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"violations": len(violations),
                  "details": dg.MetadataValue.md("\n".join(f"- {v}" for v in violations[:50]) or "none")},
    )
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


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


