"""The schedule the LP returns: power per charge point and per battery, per-EV outcomes, cost and timings."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from cariflex_pipeline.scheduling.resolve import ResolvedProblem
from cariflex_pipeline.scheduling.slots import SlotGrid


class SolverError(RuntimeError):
    """The solver did not return an optimal schedule (error, infeasible, unbounded); no schedule exists."""


class SolverTimeLimitError(SolverError):
    """The solver hit its time limit before proving optimality; no schedule is returned."""


@dataclass
class SessionOutcome:
    id: str
    charge_point: str
    energy_needed_kwh: float
    energy_delivered_kwh: float  # at the battery (for V2G: net SoC gain)
    unserved_kwh: float


@dataclass
class ScheduleResult(SlotGrid):
    start: datetime
    resolution: timedelta
    power_kw: dict[str, list[float]]  # per charge point / V2G charger; V2G discharge is negative
    battery_power_kw: dict[str, list[float]]  # per stationary battery; discharge is negative
    sessions: list[SessionOutcome]
    site_limit_kw: list[float]
    # the solver's objective in its three parts, EUR
    bill_eur: float  # the site's grid bill for the horizon (problem.py), as the LP priced it
    unserved_penalty_eur: float  # penalty on the energy the EVs do not get (at the LP's penalty: see notes)
    tie_break_eur: float  # earlier charging on ties, no storage burn on ties: not money anyone pays
    status: str
    solver: str
    build_seconds: float
    solve_seconds: float
    binaries: int = 0  # one-way binaries of storage in the model (0: it was an LP)
    notes: list[str] = field(default_factory=list)

    @property
    def objective_total_eur(self) -> float:
        """What the solver minimized: bill + unserved penalty + tie-breaks."""
        return self.bill_eur + self.unserved_penalty_eur + self.tie_break_eur

    @property
    def n_slots(self) -> int:
        return len(self.site_limit_kw)

    def site_power_kw(self) -> np.ndarray:
        """The flexible devices' total power per slot (what counts against the site limit)."""
        total = np.zeros(self.n_slots)
        for series in [*self.power_kw.values(), *self.battery_power_kw.values()]:
            total += np.asarray(series)
        return total

    def cost_eur(self, problem: ResolvedProblem) -> float:
        """The site's grid bill over the horizon with this schedule (ResolvedProblem.cost_eur)."""
        return problem.cost_eur(self.site_power_kw())

    @property
    def energy_delivered_kwh(self) -> float:
        return float(sum(s.energy_delivered_kwh for s in self.sessions))

    @property
    def unserved_kwh(self) -> float:
        return float(sum(s.unserved_kwh for s in self.sessions))

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "resolution_minutes": self.resolution.total_seconds() / 60.0,
            "slot_starts": [s.isoformat() for s in self.slot_starts()],
            "status": self.status,
            "solver": self.solver,
            "bill_eur": self.bill_eur,
            "unserved_penalty_eur": self.unserved_penalty_eur,
            "tie_break_eur": self.tie_break_eur,
            "objective_total_eur": self.objective_total_eur,
            "binaries": self.binaries,
            "build_seconds": self.build_seconds,
            "solve_seconds": self.solve_seconds,
            "energy_delivered_kwh": self.energy_delivered_kwh,
            "unserved_kwh": self.unserved_kwh,
            "peak_site_power_kw": float(self.site_power_kw().max(initial=0.0)),
            "site_limit_kw": self.site_limit_kw,
            "power_kw": self.power_kw,
            "battery_power_kw": self.battery_power_kw,
            "sessions": [asdict(s) for s in self.sessions],
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
