"""The scheduling problem: what the LP is asked, as JSON-serializable pydantic models (resolve.py checks it
against the site and turns it into slot indices and arrays).

JSON schema (``SchedulingProblem.model_json_schema()`` prints it in full)::

    {
      "start": "2026-11-28T08:00:00-04:00",      # start of the first slot, tz-aware, on the slot grid
      "resolution_minutes": 15,                    # slot length
      "prices_eur_per_mwh": [95.0, 92.5, null],    # one per slot; the horizon is its length; null = missing
      "connection_capacity_kw": 120,               # optional; default: the site's grid import capacity
      "export_capacity_kw": 60,                    # optional; default: the site's grid export capacity
      "export_price_eur_per_mwh": [0, 0, 0],       # optional, per slot; what export earns; default 0
      "load_control_pct": [100, 100, 50],          # optional, per slot; default 100 %
      "inflexible_load_kw": [3.0, 3.0, 3.0],       # optional, per slot; default 0
      "pv_forecast_kw": [0.0, 1.5, 4.0],           # optional, per slot; default 0 (unknown)
      "demand_response_level": [0, 0, 2],          # optional, per slot (OpenADR simple level); default 0
      "derating": {"0": 1.0, "1": 0.75, "2": 0.5, "3": 0.25},   # site-limit factor per level
      "unserved_penalty_eur_per_kwh": 10.0,        # cost of each kWh an EV does not get by departure
      "sessions": [
        {"id": "ev-1", "charge_point": "CP001",
         "arrival": "2026-11-28T08:00:00-04:00", "departure": "2026-11-28T12:00:00-04:00",
         "energy_needed_kwh": 30,                  # or soc_now + soc_target (0..1) + battery_capacity_kwh
         "max_power_kw": 11, "efficiency": 0.92},
        {"id": "ev-2", "charge_point": "v2g_01",   # a V2G charger of the site: charge and discharge
         "arrival": "...", "departure": "...", "battery_capacity_kwh": 60, "soc_now": 0.5,
         "soc_target": 0.8, "soc_min": 0.2}
      ],
      "batteries": [ {"name": "battery_01", "capacity_kwh": 13.5, ...} ]   # optional stationary batteries
    }

Slot ``t`` covers ``[start + t·dt, start + (t+1)·dt)``. The flexible devices (EVs, V2G, batteries; discharge
counts negative) share the site's connection: their total ``flex_t`` may not exceed the import limit
``max(0, capacity × load_control_t/100 × derating[level_t] − inflexible_t + pv_t)``, and where storage can
discharge it may not go below ``min(0, pv_t − inflexible_t − export_capacity)``: discharge never pushes the
site's export beyond the export capacity (PV alone above it is the PV inverters' to curtail, not ours).
An EV may draw power in the slots that lie entirely inside ``[arrival, departure)``, except that a session
already plugged in when the horizon starts may use the first slot. Its energy target is soft: what cannot be
delivered within the horizon is reported as unserved.

The cost of a schedule is the site's grid bill for the horizon. With ``net_t = flex_t + inflexible_t − pv_t``
(import > 0), the site pays ``price_t`` per MWh imported and earns ``min(export_price_t, price_t)`` per MWh
exported: ``cost = Σ_t dt · (price_t · max(0, net_t) − min(export_price_t, price_t) · max(0, −net_t))``.
PV above the site's load is therefore free for the EVs; export earns nothing by default, and in a slot with a
negative price exporting costs what importing would earn, so the plan absorbs a PV surplus rather than export it.
(This keeps the cost convex, an LP.)

Every number must be finite and within its range (the limits below: far beyond any site, near enough to keep the
LP's coefficients well scaled); anything else is refused with a ProblemError naming the field. The per-slot series
and the derating factors are checked by ``resolve`` (naming the slots), the rest when the problem is built.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, Field, ValidationError, model_validator

from cariflex_pipeline.scheduling.slots import SlotGrid
from cariflex_pipeline.site_model import Battery, StrictModel

DEFAULT_DERATING: dict[int, float] = {0: 1.0, 1: 0.75, 2: 0.5, 3: 0.25}
MAX_PRICE_EUR_PER_MWH = 1e5  # |price| (import and export); day-ahead markets clear within ±5 000
MAX_POWER_KW = 1e5  # any power: 100 MW
MAX_ENERGY_KWH = 1e5  # any energy or capacity: 100 MWh
MAX_PENALTY_EUR_PER_KWH = 1e4
MAX_RESOLUTION_MINUTES = 24 * 60


class ProblemError(ValueError):
    """A problem that cannot be scheduled; the message names every offending session, slot or field."""


class _Checked(StrictModel):
    """Built from Python (the library and asset path), a bad value is a ProblemError naming the field, exactly as
    from JSON (parse_problem), instead of pydantic's own error."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise ProblemError(_describe(error)) from None


class EvSession(_Checked):
    """One EV plugged in (or expected) at a charge point or V2G charger."""

    id: str = Field(min_length=1)
    charge_point: str = Field(min_length=1)
    arrival: AwareDatetime
    departure: AwareDatetime
    energy_needed_kwh: float | None = Field(default=None, le=MAX_ENERGY_KWH, allow_inf_nan=False)
    soc_now: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    soc_target: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    soc_min: float = Field(default=0.0, ge=0, le=1, allow_inf_nan=False)
    battery_capacity_kwh: float | None = Field(default=None, gt=0, le=MAX_ENERGY_KWH, allow_inf_nan=False)
    max_power_kw: float | None = Field(default=None, gt=0, le=MAX_POWER_KW, allow_inf_nan=False)
    max_discharge_kw: float | None = Field(default=None, gt=0, le=MAX_POWER_KW, allow_inf_nan=False)
    efficiency: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> EvSession:
        if self.departure <= self.arrival:
            raise ValueError(
                f"session {self.id!r}: departure {self.departure.isoformat()} is not after "
                f"arrival {self.arrival.isoformat()}"
            )
        if self.energy_needed_kwh is not None and self.energy_needed_kwh < 0:
            raise ValueError(f"session {self.id!r}: energy_needed_kwh is negative ({self.energy_needed_kwh})")
        if self.energy_needed_kwh is None and (
            self.soc_target is None or self.soc_now is None or self.battery_capacity_kwh is None
        ):
            raise ValueError(
                f"session {self.id!r}: give energy_needed_kwh, or soc_now, soc_target and battery_capacity_kwh"
            )
        return self

    def energy_kwh(self) -> float:
        """Energy still needed at the battery by departure (never negative)."""
        if self.energy_needed_kwh is not None:
            return self.energy_needed_kwh
        assert self.soc_target is not None and self.soc_now is not None and self.battery_capacity_kwh
        return max(0.0, (self.soc_target - self.soc_now) * self.battery_capacity_kwh)


class BatterySpec(_Checked):
    """A stationary battery in the same LP (power > 0 charges)."""

    name: str
    sensor_id: int | None = None
    capacity_kwh: float = Field(gt=0, le=MAX_ENERGY_KWH, allow_inf_nan=False)
    max_charge_kw: float = Field(gt=0, le=MAX_POWER_KW, allow_inf_nan=False)
    max_discharge_kw: float = Field(gt=0, le=MAX_POWER_KW, allow_inf_nan=False)
    # the SoC values are held to [0, capacity] by _bounds
    soc_min_kwh: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    soc_max_kwh: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    initial_soc_kwh: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    final_soc_min_kwh: float | None = Field(default=None, ge=0, allow_inf_nan=False)  # default: the initial SoC
    round_trip_efficiency: float = Field(default=0.9, gt=0, le=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _bounds(self) -> BatterySpec:
        soc_max = self.capacity_kwh if self.soc_max_kwh is None else self.soc_max_kwh
        final = self.initial_soc_kwh if self.final_soc_min_kwh is None else self.final_soc_min_kwh
        if not self.soc_min_kwh <= self.initial_soc_kwh <= soc_max <= self.capacity_kwh:
            raise ValueError(f"battery {self.name!r}: need soc_min <= initial_soc <= soc_max <= capacity")
        if not self.soc_min_kwh <= final <= soc_max:
            raise ValueError(f"battery {self.name!r}: final_soc_min_kwh outside [soc_min, soc_max]")
        return self

    @classmethod
    def from_site(cls, battery: Battery) -> BatterySpec:
        return cls(
            name=battery.name,
            sensor_id=battery.sensor_id,
            capacity_kwh=battery.capacity_kwh,
            max_charge_kw=battery.max_charge_kw,
            max_discharge_kw=battery.max_discharge_kw,
            soc_min_kwh=battery.soc_min_kwh,
            soc_max_kwh=battery.soc_max_kwh,
            initial_soc_kwh=battery.initial_soc_kwh,
            round_trip_efficiency=battery.round_trip_efficiency,
        )


class SchedulingProblem(_Checked, SlotGrid):
    """The documented JSON problem (see the module docstring)."""

    start: AwareDatetime
    resolution_minutes: int = Field(default=15, gt=0, le=MAX_RESOLUTION_MINUTES)
    prices_eur_per_mwh: list[float | None] = Field(min_length=1)
    # at most the site's own grid connection (resolve checks): the site limit is never above the connection
    connection_capacity_kw: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    export_capacity_kw: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    export_price_eur_per_mwh: list[float] | None = None
    load_control_pct: list[float] | None = None
    inflexible_load_kw: list[float] | None = None
    pv_forecast_kw: list[float] | None = None
    demand_response_level: list[int] | None = None
    derating: dict[int, float] = Field(default_factory=lambda: dict(DEFAULT_DERATING))
    unserved_penalty_eur_per_kwh: float = Field(default=10.0, gt=0, le=MAX_PENALTY_EUR_PER_KWH, allow_inf_nan=False)
    sessions: list[EvSession] = []
    batteries: list[BatterySpec] = []

    @model_validator(mode="after")
    def _horizon_fits_the_calendar(self) -> SchedulingProblem:
        try:
            self.slot_start(self.n_slots)
        except OverflowError:
            raise ValueError(f"the horizon from {self.start.isoformat()} ({self.n_slots} slots of "
                             f"{self.resolution_minutes} minutes) ends after the year 9999") from None
        return self

    @property
    def resolution(self) -> timedelta:
        return timedelta(minutes=self.resolution_minutes)

    @property
    def n_slots(self) -> int:
        return len(self.prices_eur_per_mwh)

    def missing_price_slots(self) -> list[int]:
        return missing_slots(self.prices_eur_per_mwh)


def parse_problem(text: str | bytes) -> SchedulingProblem:
    """Read a JSON problem; any schema error becomes a ProblemError naming the field."""
    try:
        return SchedulingProblem.model_validate_json(text)
    except ValidationError as error:
        raise ProblemError(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "problem"
        problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


MissingPricePolicy = Literal["error", "max_known"]


def missing_slots(values: list[float | None]) -> list[int]:
    """The slots without a value (None); a non-finite value is not missing but wrong (resolve refuses it)."""
    return [t for t, v in enumerate(values) if v is None]


def fill_missing_prices(
    prices: list[float | None], policy: MissingPricePolicy
) -> tuple[list[float | None], list[int]]:
    """Apply the missing-price policy; return the prices and the slots that were filled.

    ``error`` leaves the gaps (``resolve`` then names them); ``max_known`` fills each gap with the highest
    finite known price of the horizon, so the schedule avoids unknown slots unless an EV needs them.
    """
    missing = missing_slots(prices)
    if policy == "error" or not missing:
        return list(prices), []
    known = [p for p in prices if p is not None and math.isfinite(p)]
    if not known:
        raise ProblemError("no price is known for any slot of the horizon")
    fill = max(known)
    gaps = set(missing)
    return [fill if t in gaps else p for t, p in enumerate(prices)], missing
