"""A problem checked against the site and resolved into slot indices and per-slot arrays.

``resolve`` refuses a problem with every reason at once (ProblemError naming the sessions, charge points and
slots); what it returns is all the LP and the verifier read. The rules (windows, site limits, cost) are in
problem.py's docstring.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

import numpy as np

from cariflex_pipeline.scheduling.problem import (
    MAX_POWER_KW,
    MAX_PRICE_EUR_PER_MWH,
    BatterySpec,
    EvSession,
    ProblemError,
    SchedulingProblem,
)
from cariflex_pipeline.scheduling.slots import SlotGrid
from cariflex_pipeline.site_model import Site

DEFAULT_EFFICIENCY = 0.9


@dataclass
class ResolvedSession:
    """A session checked against the site, in slot indices: it may draw power in slots [first, end)."""

    id: str
    charge_point: str
    first: int
    end: int
    energy_kwh: float  # needed at the battery by departure (for V2G: the SoC gain wanted)
    max_charge_kw: float
    max_discharge_kw: float  # 0 unless V2G
    efficiency: float  # charge efficiency; for V2G also the discharge efficiency
    v2g: bool = False
    soc_initial_kwh: float = 0.0
    soc_min_kwh: float = 0.0
    soc_max_kwh: float = math.inf

    @property
    def slots(self) -> range:
        return range(self.first, self.end)


@dataclass
class ResolvedProblem(SlotGrid):
    """The problem as arrays, validated against the site; the LP and the verifier both read only this."""

    start: datetime
    resolution: timedelta
    price_eur_per_mwh: np.ndarray
    site_limit_kw: np.ndarray  # highest total power of the flexible devices per slot (import limit)
    sessions: list[ResolvedSession]
    batteries: list[BatterySpec]
    unserved_penalty_eur_per_kwh: float
    charge_points: list[str]  # every device that gets a power series, in output order
    # per slot; the defaults (zeros) are a site with no inflexible load, no PV and no export
    base_load_kw: np.ndarray | None = None  # inflexible load − PV: the site's net import with no flexible power
    site_floor_kw: np.ndarray | None = None  # lowest total power of the flexible devices (export limit, <= 0)
    export_price_eur_per_mwh: np.ndarray | None = None  # what export earns (capped at the price in cost_eur)

    def __post_init__(self) -> None:
        for name in ("base_load_kw", "site_floor_kw", "export_price_eur_per_mwh"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(self.n_slots))

    def export_value_eur_per_mwh(self) -> np.ndarray:
        """Per slot, what a MWh exported earns: the export price, never above the import price."""
        return np.minimum(self.export_price_eur_per_mwh, self.price_eur_per_mwh)

    def cost_eur(self, flexible_kw: np.ndarray) -> float:
        """The site's grid bill for the flexible devices' total power per slot (module docstring)."""
        net = np.asarray(flexible_kw, dtype=float) + self.base_load_kw
        per_slot = (self.price_eur_per_mwh * np.maximum(net, 0.0)
                    - self.export_value_eur_per_mwh() * np.maximum(-net, 0.0))
        return float(per_slot.sum() * self.dt_h / 1000.0)

    @property
    def n_slots(self) -> int:
        return len(self.price_eur_per_mwh)


def _series(problem: SchedulingProblem, name: str, values: list[float] | list[int] | None, default: float,
            errors: list[str], low: float, high: float) -> np.ndarray:
    """One value per slot, `default` where not given; what is not finite or outside [low, high] goes to `errors`,
    naming the field and the slots."""
    n = problem.n_slots
    if values is None:
        return np.full(n, float(default))
    if len(values) != n:
        errors.append(f"{name} has {len(values)} values, expected one per slot ({n})")
        return np.full(n, float(default))
    array = np.asarray(values, dtype=float)
    finite = np.isfinite(array)
    if not finite.all():
        errors.append(f"{name} is not finite in {problem.describe_slots(np.flatnonzero(~finite).tolist())}")
    array = np.where(finite, array, float(default))
    for wrong, bound, label in ((array < low, low, "below"), (array > high, high, "above")):
        if wrong.any():
            errors.append(f"{name} is {label} {bound:g} in {problem.describe_slots(np.flatnonzero(wrong).tolist())}")
    return array


@dataclass(frozen=True)
class SiteLimits:
    """Per slot: the flexible devices' total power lies in [floor, limit]; base = inflexible load − PV."""

    limit_kw: np.ndarray
    floor_kw: np.ndarray
    base_load_kw: np.ndarray
    export_price_eur_per_mwh: np.ndarray


def site_limits(problem: SchedulingProblem, import_kw: float, export_kw: float) -> SiteLimits:
    """Import limit: capacity × load-control % × derating(level) − inflexible load + PV, never below 0.

    Export limit: PV − inflexible load − export capacity, never above 0 (see the module docstring). Load control
    is at most 100 % and a derating factor at most 1, so the site never imports more than its connection.
    """
    errors: list[str] = []
    load_control = _series(problem, "load_control_pct", problem.load_control_pct, 100.0, errors, 0.0, 100.0)
    inflexible = _series(problem, "inflexible_load_kw", problem.inflexible_load_kw, 0.0, errors, 0.0, MAX_POWER_KW)
    pv = _series(problem, "pv_forecast_kw", problem.pv_forecast_kw, 0.0, errors, 0.0, MAX_POWER_KW)
    export_price = _series(problem, "export_price_eur_per_mwh", problem.export_price_eur_per_mwh, 0.0, errors,
                           -MAX_PRICE_EUR_PER_MWH, MAX_PRICE_EUR_PER_MWH)
    factors = _derating_factors(problem, errors)
    if errors:
        raise ProblemError("; ".join(errors))
    return SiteLimits(
        limit_kw=np.maximum(0.0, import_kw * load_control / 100.0 * factors - inflexible + pv),
        floor_kw=np.minimum(0.0, pv - inflexible - export_kw),
        base_load_kw=inflexible - pv,
        export_price_eur_per_mwh=export_price,
    )


def _derating_factors(problem: SchedulingProblem, errors: list[str]) -> np.ndarray:
    """The site-limit factor of each slot's demand-response level; each factor given must lie in [0, 1]."""
    for level, factor in sorted(problem.derating.items()):
        if not 0.0 <= factor <= 1.0:  # also false for NaN
            errors.append(f"derating[{level}] is {factor}, expected a factor in [0, 1]")
    levels = _series(problem, "demand_response_level", problem.demand_response_level, 0.0, errors,
                     -math.inf, math.inf)
    unknown = [t for t, level in enumerate(levels) if int(level) not in problem.derating]
    if unknown:
        errors.append(f"demand-response level without a derating factor in {problem.describe_slots(unknown)}; "
                      f"known levels: {sorted(problem.derating)}")
    return np.array([problem.derating.get(int(level), 0.0) for level in levels])


def _prices(problem: SchedulingProblem, errors: list[str]) -> np.ndarray:
    """The import prices: missing (None) and wrong (not finite, beyond ±MAX_PRICE_EUR_PER_MWH) slots are named."""
    missing = problem.missing_price_slots()
    if missing:
        errors.append(f"prices missing for {problem.describe_slots(missing)}")
    given = [0.0 if price is None else price for price in problem.prices_eur_per_mwh]
    return _series(problem, "prices_eur_per_mwh", given, 0.0, errors, -MAX_PRICE_EUR_PER_MWH, MAX_PRICE_EUR_PER_MWH)


def _connection(problem: SchedulingProblem, site: Site, errors: list[str]) -> tuple[float, float]:
    """Import and export capacity in kW: the problem's, never above the site's own grid connection."""
    grid = site.grid_connection
    chosen = []
    for name, given, site_kw in (("connection_capacity_kw", problem.connection_capacity_kw, grid.import_capacity_kw),
                                 ("export_capacity_kw", problem.export_capacity_kw, grid.export_capacity_kw)):
        if given is not None and given > site_kw:
            errors.append(f"{name} is {given:g} kW, above the {site_kw:g} kW of site {site.name!r}'s grid connection")
        # a refused value is replaced by the site's, so that the other checks still run on sane numbers
        chosen.append(site_kw if given is None or given > site_kw else given)
    return chosen[0], chosen[1]


def _window(problem: SchedulingProblem, session: EvSession) -> tuple[int, int]:
    dt = problem.resolution.total_seconds()
    offset_arrival = (session.arrival - problem.start).total_seconds() / dt
    offset_departure = (session.departure - problem.start).total_seconds() / dt
    first = max(0, math.ceil(offset_arrival - 1e-9))
    end = min(problem.n_slots, math.floor(offset_departure + 1e-9))
    return first, max(first, end)


def share_in_horizon(problem: SchedulingProblem, session: EvSession) -> float:
    """The share of a session's remaining stay that lies inside the horizon.

    A car leaving after the horizon ends needs only that share of its energy now: held to the whole need, it
    would be reported unserved (or charged at any price) in the few slots the horizon shows of its stay. The
    runs every 15 minutes, whose horizons reach its departure, plan the rest.
    """
    horizon_end = problem.slot_start(problem.n_slots)
    if session.departure <= horizon_end:
        return 1.0
    stay_start = max(session.arrival, problem.start)
    if horizon_end <= stay_start:
        return 0.0
    return (horizon_end - stay_start) / (session.departure - stay_start)


def resolve(problem: SchedulingProblem, site: Site) -> ResolvedProblem:
    """Check the problem against the site and turn it into arrays; raise ProblemError naming what is wrong."""
    errors: list[str] = []
    prices = _prices(problem, errors)
    if problem.start.timestamp() % problem.resolution.total_seconds() != 0:
        errors.append(f"start {problem.start.isoformat()} is not on the {problem.resolution_minutes}-minute grid")
    charge_points = site.charge_point_by_id
    v2g_chargers = {charger.name: charger for charger in site.v2g_chargers}
    sessions: list[ResolvedSession] = []
    by_point: dict[str, list[EvSession]] = {}
    for session in problem.sessions:
        first, end = _window(problem, session)
        needed_kwh = session.energy_kwh() * share_in_horizon(problem, session)
        if session.charge_point in charge_points:
            limit = charge_points[session.charge_point].max_power_kw
            if session.max_power_kw is not None:
                limit = min(limit, session.max_power_kw)
            sessions.append(ResolvedSession(
                id=session.id, charge_point=session.charge_point, first=first, end=end,
                energy_kwh=needed_kwh, max_charge_kw=limit, max_discharge_kw=0.0,
                efficiency=session.efficiency or DEFAULT_EFFICIENCY,
            ))
        elif session.charge_point in v2g_chargers:
            charger = v2g_chargers[session.charge_point]
            if session.battery_capacity_kwh is None or session.soc_now is None:
                errors.append(f"session {session.id!r} at V2G charger {session.charge_point!r}: "
                              "battery_capacity_kwh and soc_now are required")
                continue
            capacity = session.battery_capacity_kwh
            charge = min(charger.max_charge_kw, session.max_power_kw or math.inf)
            discharge = min(charger.max_discharge_kw, session.max_discharge_kw or session.max_power_kw or math.inf)
            sessions.append(ResolvedSession(
                id=session.id, charge_point=session.charge_point, first=first, end=end,
                energy_kwh=needed_kwh, max_charge_kw=charge, max_discharge_kw=discharge,
                efficiency=session.efficiency or math.sqrt(charger.round_trip_efficiency), v2g=True,
                soc_initial_kwh=session.soc_now * capacity, soc_min_kwh=session.soc_min * capacity,
                soc_max_kwh=capacity,
            ))
        else:
            errors.append(f"session {session.id!r}: charge point {session.charge_point!r} is not in site "
                          f"{site.name!r}")
            continue
        by_point.setdefault(session.charge_point, []).append(session)
    for point, point_sessions in by_point.items():
        ordered = sorted(point_sessions, key=lambda s: s.arrival)
        for before, after in pairwise(ordered):
            if after.arrival < before.departure:
                errors.append(f"charge point {point!r}: sessions {before.id!r} and {after.id!r} overlap")
    duplicates = sorted(i for i, count in Counter(s.id for s in problem.sessions).items() if count > 1)
    if duplicates:
        errors.append(f"duplicate session ids {duplicates}")
    limits = None
    try:
        limits = site_limits(problem, *_connection(problem, site, errors))
    except ProblemError as error:
        errors.append(str(error))
    if errors or limits is None:
        raise ProblemError("; ".join(errors))
    points = [cp.id for cp in site.charge_points]
    points += [name for name in v2g_chargers if name in by_point]
    return ResolvedProblem(
        start=problem.start, resolution=problem.resolution, price_eur_per_mwh=prices, site_limit_kw=limits.limit_kw,
        sessions=sessions, batteries=list(problem.batteries),
        unserved_penalty_eur_per_kwh=problem.unserved_penalty_eur_per_kwh, charge_points=points,
        base_load_kw=limits.base_load_kw, site_floor_kw=limits.floor_kw,
        export_price_eur_per_mwh=limits.export_price_eur_per_mwh,
    )
