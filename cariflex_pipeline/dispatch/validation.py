"""Validate a SetChargingProfileRequest before it is stored as sendable.

Two layers, both CitrineOS 1.8.3's own: its JSON schema file for SetChargingProfileRequest (`peer_schemas`, the
file CitrineOS validates with, including int32 ranges and the floating-point `multipleOf 0.1` on limits that
AJV applies), then the business rules its REST handler adds (K01: validFrom, validTo, TxProfile, first period;
see shared/reference/citrineos.md section 3). Every violation is named with its JSON path; `validate_request`
never stops at the first one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cariflex_pipeline.dispatch import peer_schemas


class ProfileValidationError(ValueError):
    """A profile that must not be sent; `violations` lists every broken rule with its path."""

    def __init__(self, station_id: str, violations: list[str]) -> None:
        self.station_id = station_id
        self.violations = violations
        super().__init__(f"station {station_id}: SetChargingProfileRequest invalid: " + "; ".join(violations))


def schema_violations(payload: dict[str, Any]) -> list[str]:
    """Violations of CitrineOS 1.8.3's SetChargingProfileRequest schema (what its AJV check drops or refuses)."""
    return peer_schemas.violations("SetChargingProfile", payload)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def citrineos_violations(payload: dict[str, Any], now: datetime) -> list[str]:
    """CitrineOS 1.8.3's REST-side business rules (K01), on a payload shaped like the schema."""
    out: list[str] = []
    evse_id = payload.get("evseId")
    profile = payload.get("chargingProfile")
    if not isinstance(profile, dict):
        return out
    purpose = profile.get("chargingProfilePurpose")
    kind = profile.get("chargingProfileKind")
    if purpose == "TxProfile":
        if not profile.get("transactionId"):
            out.append("$.chargingProfile.transactionId: required for TxProfile (CitrineOS)")
        if not isinstance(evse_id, int) or evse_id <= 0:
            out.append(f"$.evseId: TxProfile needs evseId > 0, got {evse_id!r} (CitrineOS)")
    elif "transactionId" in profile:
        out.append(f"$.chargingProfile.transactionId: only allowed with TxProfile, purpose is {purpose}")
    if purpose == "ChargingStationMaxProfile" and evse_id != 0:
        out.append(f"$.evseId: ChargingStationMaxProfile needs evseId 0, got {evse_id!r} (CitrineOS)")
    if isinstance(evse_id, int) and evse_id < 0:
        out.append(f"$.evseId: {evse_id} is negative")
    valid_from = _parse_time(profile.get("validFrom"))
    if valid_from is not None and valid_from > now:
        out.append(f"$.chargingProfile.validFrom: {profile['validFrom']} lies in the future (CitrineOS 1.8)")
    valid_to = _parse_time(profile.get("validTo"))
    if valid_to is not None and valid_to <= now:
        out.append(f"$.chargingProfile.validTo: {profile['validTo']} does not lie in the future (CitrineOS)")
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        out.append("$.chargingProfile.validTo: not after validFrom")
    schedules = profile.get("chargingSchedule") or []
    for s_index, schedule in enumerate(schedules if isinstance(schedules, list) else []):
        base = f"$.chargingProfile.chargingSchedule[{s_index}]"
        if not isinstance(schedule, dict):
            continue
        has_start = "startSchedule" in schedule
        if kind in ("Absolute", "Recurring") and not has_start:
            out.append(f"{base}.startSchedule: required for {kind} profiles (CitrineOS)")
        if kind == "Relative" and has_start:
            out.append(f"{base}.startSchedule: forbidden for Relative profiles (CitrineOS)")
        unit = schedule.get("chargingRateUnit")
        periods = schedule.get("chargingSchedulePeriod") or []
        if not isinstance(periods, list):
            continue
        if periods and isinstance(periods[0], dict) and periods[0].get("startPeriod") != 0:
            out.append(f"{base}.chargingSchedulePeriod[0].startPeriod: must be 0, got "
                       f"{periods[0].get('startPeriod')!r} (CitrineOS)")
        previous = None
        for p_index, period in enumerate(periods):
            where = f"{base}.chargingSchedulePeriod[{p_index}]"
            if not isinstance(period, dict):
                continue
            limit = period.get("limit")
            if isinstance(limit, int | float) and not isinstance(limit, bool) and limit < 0:
                out.append(f"{where}.limit: {limit!r} is negative")
            start = period.get("startPeriod")
            if isinstance(start, int) and previous is not None and start <= previous:
                out.append(f"{where}.startPeriod: {start} not after the previous period's {previous}")
            previous = start if isinstance(start, int) else previous
            phases = period.get("numberPhases")
            if phases is not None and phases not in (1, 2, 3):
                out.append(f"{where}.numberPhases: {phases!r} not in 1..3")
            if "phaseToUse" in period and phases != 1:
                out.append(f"{where}.phaseToUse: needs numberPhases=1 (CitrineOS)")
            if unit == "A" and phases is None:
                out.append(f"{where}.numberPhases: required with chargingRateUnit A to mean anything")
    return out


def validate_request(payload: dict[str, Any], *, station_id: str, now: datetime | None = None) -> None:
    """Raise ProfileValidationError naming every violation; return None when the payload may be sent."""
    now = now or datetime.now(UTC)
    violations = schema_violations(payload)
    violations += citrineos_violations(payload, now)
    if violations:
        raise ProfileValidationError(station_id, violations)


def request_violations(payload: dict[str, Any], *, now: datetime | None = None) -> list[str]:
    """All violations (schema + CitrineOS), empty when the payload may be sent."""
    now = now or datetime.now(UTC)
    return schema_violations(payload) + citrineos_violations(payload, now)
