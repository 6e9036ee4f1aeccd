"""From a charge point's planned power to one OCPP 2.0.1 SetChargingProfileRequest.

The scheduler writes planned power (kW per 15-minute slot) for sensors 61-70; each charge point gets one
absolute profile covering the horizon:

- purpose TxProfile (with the transactionId) when the station has a known active transaction, otherwise
  TxDefaultProfile; `purpose_policy` decides ("auto", "tx_default_only", "tx_only");
- chargingRateUnit W, or A when `rate_unit="A"` with `number_phases` and `voltage`;
- limits clipped to [0, charge point max] and rounded *down* to values CitrineOS's schema passes: whole watts,
  or amps on the 0.1 grid whose floating-point quotient by 0.1 is whole (AJV's `multipleOf` test, which refuses
  about a third of all 0.1-step values such as 8967.3);
- equal consecutive slots merged, first startPeriod 0, at most 1024 periods;
- startSchedule on the slot grid, validFrom not in the future, validTo at the horizon end - or later, when the
  station's last profile of the same stack level and purpose runs that long: CitrineOS refuses a profile that
  does not outlast the active one (a re-plan inside the same slot);
- profile ids stable per station, stack level and purpose, so a re-plan replaces the station's profile
  (K01.FR.05) and a TxProfile never replaces the TxDefaultProfile.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cariflex_pipeline.dispatch.peer_schemas import ajv_multiple_of

PurposePolicy = Literal["auto", "tx_default_only", "tx_only"]
RateUnit = Literal["W", "A"]


class ProfileBuildError(ValueError):
    """A planned-power series that cannot become a profile; the message names the station."""


@dataclass(frozen=True)
class ProfileConfig:
    """How profiles are built; every field has an embedded default."""

    purpose_policy: PurposePolicy = "auto"
    rate_unit: RateUnit = "W"
    number_phases: int | None = None  # required for rate_unit "A"
    voltage: float | None = None  # line-to-neutral volts, required for rate_unit "A"
    stack_level: int = 1
    tx_default_evse_id: int | None = None  # None: the charge point's EVSE; 0: every EVSE of the station

    def __post_init__(self) -> None:
        if self.purpose_policy not in ("auto", "tx_default_only", "tx_only"):
            raise ValueError(f"purpose_policy {self.purpose_policy!r}: expected auto, tx_default_only or tx_only")
        if self.rate_unit not in ("W", "A"):
            raise ValueError(f"rate_unit {self.rate_unit!r}: expected 'W' or 'A'")
        if self.rate_unit == "A" and (not self.number_phases or not self.voltage or self.voltage <= 0):
            raise ValueError("rate_unit 'A' needs number_phases (1-3) and a positive voltage")
        if self.number_phases is not None and self.number_phases not in (1, 2, 3):
            raise ValueError(f"number_phases {self.number_phases}: expected 1, 2 or 3")
        if not 0 <= self.stack_level <= 1000:
            raise ValueError(f"stack_level {self.stack_level}: expected 0..1000")


@dataclass(frozen=True)
class StationTarget:
    """What the builder needs to know about one charge point."""

    station_id: str
    evse_id: int
    max_power_kw: float
    transaction_id: str | None = None  # the station's known active transaction, if any


@dataclass(frozen=True)
class BuiltProfile:
    """One SetChargingProfileRequest payload (camelCase JSON, ready to validate and send) and its summary."""

    station_id: str
    payload: dict[str, Any]
    purpose: str
    profile_id: int
    stack_level: int
    limits: tuple[tuple[int, float], ...]  # (startPeriod seconds, limit) as sent
    rate_unit: str
    notes: tuple[str, ...] = field(default=())


def profile_id_for(station_id: str, stack_level: int, purpose: str = "TxDefaultProfile") -> int:
    """A stable positive int32 id per station, stack level and purpose: each re-plan replaces the station's
    profile of that purpose, and TxProfile and TxDefaultProfile never replace each other."""
    return zlib.crc32(f"cariflex:{station_id}:{stack_level}:{purpose}".encode()) & 0x3FFFFFFF or 1


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_to_grid(moment: datetime, resolution: timedelta) -> datetime:
    """The start of the slot containing `moment`, on the UTC epoch grid (15-minute slots align in any zone)."""
    if moment.tzinfo is None:
        raise ValueError(f"time {moment.isoformat()} has no time zone")
    step = int(resolution.total_seconds())
    seconds = int((moment.astimezone(UTC) - EPOCH).total_seconds())
    return EPOCH + timedelta(seconds=seconds - seconds % step)


def ceil_to_grid(moment: datetime, resolution: timedelta) -> datetime:
    """The first slot boundary at or after `moment`."""
    floor = floor_to_grid(moment, resolution)
    return floor if floor == moment else floor + resolution


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, whole seconds."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def emit_limit(value: float, unit: RateUnit) -> float:
    """The largest limit at or below `value` that CitrineOS's schema passes: whole watts, or amps on the 0.1
    grid whose quotient by 0.1 is whole in floating point (AJV's `multipleOf`). Down, never up: a station may
    take a few watts less than planned, never more than the plan or the connection allows."""
    if value != value or value < 0:
        raise ValueError(f"limit {value!r}: expected a finite value >= 0")
    if unit == "W":
        return float(math.floor(value + 1e-6))
    tenths = math.floor(value * 10 + 1e-6)
    while tenths > 0 and not ajv_multiple_of(tenths / 10, 0.1):
        tenths -= 1
    return tenths / 10


def build_profile(
    station: StationTarget,
    planned_kw: Mapping[datetime, float] | Sequence[tuple[datetime, float]],
    *,
    now: datetime,
    resolution: timedelta = timedelta(minutes=15),
    horizon_end: datetime | None = None,
    config: ProfileConfig | None = None,
    outlast: Mapping[str, datetime] | None = None,
) -> BuiltProfile:
    """Build one SetChargingProfileRequest from planned power in kW per slot start.

    Slots that ended before the current slot are dropped; slots without a plan between the current slot and
    the horizon end get limit 0 (nothing planned means no charging). `horizon_end` defaults to the end of the
    last planned slot. `outlast` maps a purpose to the validTo of the station's last profile of that purpose at
    this stack level: the new one runs at least a second longer (its last period continues), since CitrineOS
    refuses a profile that does not outlast the active one.
    """
    config = config or ProfileConfig()
    if now.tzinfo is None:
        raise ValueError(f"station {station.station_id}: now {now.isoformat()} has no time zone")
    step = timedelta(seconds=int(resolution.total_seconds()))
    start = floor_to_grid(now, step)
    plan = _plan_from(station, planned_kw, start, step)
    end = _horizon_end(station, plan, start, step, horizon_end)
    purpose, transaction_id = _purpose(station, config)
    evse_id = station.evse_id
    if purpose == "TxDefaultProfile" and config.tx_default_evse_id is not None:
        evse_id = config.tx_default_evse_id
    periods, limits, notes = _periods(station, plan, start, end, step, config)
    valid_to = end
    previous = (outlast or {}).get(purpose)
    if previous is not None and previous.astimezone(UTC) >= end:
        valid_to = previous.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        notes.append(f"validTo {iso(valid_to)}: outlasts the station's profile valid to {iso(previous)}")
    profile_id = profile_id_for(station.station_id, config.stack_level, purpose)
    schedule: dict[str, Any] = {
        "id": profile_id,
        "startSchedule": iso(start),
        "duration": int((valid_to - start).total_seconds()),
        "chargingRateUnit": config.rate_unit,
        "chargingSchedulePeriod": periods,
    }
    profile: dict[str, Any] = {
        "id": profile_id,
        "stackLevel": config.stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "validFrom": iso(min(start, now)),
        "validTo": iso(valid_to),
        "chargingSchedule": [schedule],
    }
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return BuiltProfile(station_id=station.station_id, payload={"evseId": evse_id, "chargingProfile": profile},
                        purpose=purpose, profile_id=profile_id, stack_level=config.stack_level, limits=tuple(limits),
                        rate_unit=config.rate_unit, notes=tuple(notes))


def _plan_from(station: StationTarget, planned_kw: Mapping[datetime, float] | Sequence[tuple[datetime, float]],
               start: datetime, step: timedelta) -> dict[datetime, float]:
    """The planned kW per slot from the current slot on, every slot checked (aware, on the grid, finite)."""
    items = list(planned_kw.items()) if isinstance(planned_kw, Mapping) else list(planned_kw)
    plan: dict[datetime, float] = {}
    for slot_start, value in items:
        if slot_start.tzinfo is None:
            raise ProfileBuildError(f"station {station.station_id}: slot {slot_start} has no time zone")
        slot = slot_start.astimezone(UTC)
        if (slot - EPOCH) % step:  # off the grid; floor_to_grid's verdict at a fraction of its cost, slot by slot
            raise ProfileBuildError(
                f"station {station.station_id}: slot {iso(slot)} is not on the {step} grid")
        if value != value or value in (float("inf"), float("-inf")):
            raise ProfileBuildError(f"station {station.station_id}: slot {iso(slot)} has a non-finite value")
        if slot + step > start:
            plan[slot] = float(value)
    return plan


def _horizon_end(station: StationTarget, plan: Mapping[datetime, float], start: datetime, step: timedelta,
                 horizon_end: datetime | None) -> datetime:
    end = horizon_end.astimezone(UTC) if horizon_end is not None else (max(plan) + step if plan else None)
    if end is None or end <= start:
        raise ProfileBuildError(
            f"station {station.station_id}: no planned power from {iso(start)} on (horizon already over)")
    if floor_to_grid(end, step) != end:
        raise ProfileBuildError(f"station {station.station_id}: horizon end {iso(end)} is not on the slot grid")
    return end


def _periods(station: StationTarget, plan: Mapping[datetime, float], start: datetime, end: datetime,
             step: timedelta, config: ProfileConfig) -> tuple[list[dict[str, Any]], list[tuple[int, float]],
                                                              list[str]]:
    """One period per run of equal limits (unplanned slots: 0), clipped to the charge point and emitted as
    CitrineOS's schema passes them; with the notes on what was clipped."""
    periods: list[dict[str, Any]] = []
    limits: list[tuple[int, float]] = []
    clipped = 0
    slot, offset, step_s = start, 0, int(step.total_seconds())
    previous_kw, limit = None, 0.0
    while slot < end:
        kw = plan.get(slot, 0.0)
        if kw < 0 or kw > station.max_power_kw + 1e-9:
            clipped += 1
        if kw != previous_kw:  # runs of equal power are the rule in a plan: one conversion per run
            limit = emit_limit(_to_unit(min(max(kw, 0.0), station.max_power_kw), config), config.rate_unit)
            previous_kw = kw
        if not limits or limits[-1][1] != limit:
            limits.append((offset, limit))
            period: dict[str, Any] = {"startPeriod": offset, "limit": limit}
            if config.number_phases is not None:
                period["numberPhases"] = config.number_phases
            periods.append(period)
        slot += step
        offset += step_s
    notes = [f"{clipped} slot(s) clipped to [0, {station.max_power_kw} kW]"] if clipped else []
    return periods, limits, notes


def _purpose(station: StationTarget, config: ProfileConfig) -> tuple[str, str | None]:
    if config.purpose_policy == "tx_default_only":
        return "TxDefaultProfile", None
    if station.transaction_id:
        return "TxProfile", station.transaction_id
    if config.purpose_policy == "tx_only":
        raise ProfileBuildError(
            f"station {station.station_id}: purpose policy tx_only but no active transaction is known")
    return "TxDefaultProfile", None


def _to_unit(kw: float, config: ProfileConfig) -> float:
    watts = kw * 1000.0
    if config.rate_unit == "W":
        return watts
    assert config.number_phases and config.voltage  # checked in ProfileConfig
    return watts / (config.number_phases * config.voltage)
