"""The problem of one rolling-horizon run: what the scheduling asset does with missing inputs, as pure functions.

The asset reads the signals and sessions (store, session table); these functions decide everything else, so the
rules are tested directly:

- sessions: the live ones from the bus once the bus has brought any session (``auto``), else the day template;
- prices, policy ``max_known``: gaps filled with the dearest known price of the horizon, so the plan avoids
  unknown slots unless an EV needs them; no price at all: one flat price, i.e. earliest charging within the
  limits (the tie-break). Policy ``error``: the gaps stay and ``resolve`` names them;
- load control: 100 % where unknown; demand response: level 0 where unknown; PV: 0 where unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cariflex_pipeline.scheduling.problem import (
    BatterySpec,
    EvSession,
    MissingPricePolicy,
    SchedulingProblem,
    fill_missing_prices,
)

FLAT_PRICE_EUR_PER_MWH = 100.0  # any one price will do: with every slot alike the tie-break charges earliest
SessionRequest = Literal["auto", "live", "template"]
SessionSource = Literal["bus", "template"]


def session_source(requested: SessionRequest, bus_has_history: bool) -> SessionSource:
    """Where this run's sessions come from: ``auto`` trusts the bus once it has brought any session."""
    if requested == "live" or (requested == "auto" and bus_has_history):
        return "bus"
    return "template"


@dataclass(frozen=True)
class PriceFallback:
    prices: list[float | None]  # one per slot; None only under policy "error"
    filled: list[int]  # the slots whose price was filled in
    description: str  # what was done, for the run's metadata and log; "none" when every price was known


def price_fallback(raw: list[float | None], policy: MissingPricePolicy) -> PriceFallback:
    """The prices the plan uses where the store has none (module docstring)."""
    if policy == "max_known" and all(price is None for price in raw):
        return PriceFallback([FLAT_PRICE_EUR_PER_MWH] * len(raw), list(range(len(raw))),
                             "no price known in the horizon: flat price (earliest charging within the limits)")
    prices, filled = fill_missing_prices(raw, policy)
    description = f"{len(filled)} slots without a price filled with the dearest known price" if filled else "none"
    return PriceFallback(prices, filled, description)


@dataclass(frozen=True)
class SlotSignals:
    """The grid signals and PV on the horizon's slots, None where the store has no value."""

    prices_eur_per_mwh: list[float | None]
    load_control_pct: list[float | None]
    demand_response_level: list[float | None]
    pv_forecast_kw: list[float | None]


def input_gaps(signals: SlotSignals, prices: PriceFallback, source: SessionSource,
               sessions_with_default_needs: int) -> list[str]:
    """What this run planned on in place of real inputs, one line each; empty when every input was known. A plan
    made on these is still a plan, but not one an operator should take for green."""
    gaps = []
    if prices.filled:
        gaps.append(f"prices: {prices.description} ({len(prices.filled)} of {len(prices.prices)} slots)")
    for name, values, default in (("load control", signals.load_control_pct, "100 %"),
                                  ("demand response", signals.demand_response_level, "level 0")):
        unknown = sum(value is None for value in values)
        if unknown:
            gaps.append(f"{name}: {unknown} of {len(values)} slots unknown, planned as {default}")
    if source == "template":
        gaps.append("sessions: the bundled day template, not live sessions from the bus")
    if sessions_with_default_needs:
        gaps.append(f"sessions: {sessions_with_default_needs} with a default departure or energy")
    return gaps


def signal_staleness(signals: SlotSignals, resolution: timedelta, price_hours_wanted: float,
                     pv_used: bool) -> list[str]:
    """What is stale or missing at the start of the horizon, one line each; empty when the signals are current:
    prices known, slot after slot from now, for at least `price_hours_wanted`; the load-control signal known for
    the slot in progress; a PV forecast somewhere in the horizon when the plan counts on PV."""
    problems = []
    hours_per_slot = resolution.total_seconds() / 3600
    known_slots = next((index for index, value in enumerate(signals.prices_eur_per_mwh) if value is None),
                       len(signals.prices_eur_per_mwh))
    if known_slots * hours_per_slot < price_hours_wanted:
        problems.append(f"prices: known for the next {known_slots * hours_per_slot:g} h, "
                        f"{price_hours_wanted:g} h wanted")
    if not signals.load_control_pct or signals.load_control_pct[0] is None:
        problems.append("load control: no value for the slot in progress")
    if pv_used and all(value is None for value in signals.pv_forecast_kw):
        problems.append("PV forecast: none in the horizon")
    return problems


def horizon_problem(start: datetime, resolution: timedelta, signals: SlotSignals, prices: PriceFallback,
                    sessions: list[EvSession], batteries: list[BatterySpec], inflexible_load_kw: float,
                    unserved_penalty_eur_per_kwh: float) -> SchedulingProblem:
    """The run's problem, the documented defaults in the slots without a signal; ProblemError on a bad value."""
    n = len(signals.prices_eur_per_mwh)
    return SchedulingProblem(
        start=start, resolution_minutes=int(resolution.total_seconds() // 60),
        prices_eur_per_mwh=prices.prices,
        load_control_pct=[100.0 if v is None else v for v in signals.load_control_pct],
        demand_response_level=[0 if v is None else round(v) for v in signals.demand_response_level],
        pv_forecast_kw=[0.0 if v is None else v for v in signals.pv_forecast_kw],
        inflexible_load_kw=[inflexible_load_kw] * n,
        unserved_penalty_eur_per_kwh=unserved_penalty_eur_per_kwh,
        sessions=sessions,
        batteries=batteries,
    )
