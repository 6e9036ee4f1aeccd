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
    objective_eur: float  # cost + unserved penalty + tie-breaks, as the solver saw it
    status: str
    solver: str
    build_seconds: float
    solve_seconds: float
    notes: list[str] = field(default_factory=list)

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

    def to_dict(self, problem: ResolvedProblem | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "start": self.start.isoformat(),
            "resolution_minutes": self.resolution.total_seconds() / 60.0,
            "slot_starts": [s.isoformat() for s in self.slot_starts()],
            "status": self.status,
            "solver": self.solver,
            "objective_eur": self.objective_eur,
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
        if problem is not None:
            data["cost_eur"] = self.cost_eur(problem)
        return data

    def to_json(self, problem: ResolvedProblem | None = None) -> str:
        return json.dumps(self.to_dict(problem), indent=2)
