"""What an OCPP 2.0.1 charging station does with the charging profiles it is sent (Part 2, K01 Set, K08
GetCompositeSchedule, K10 Clear), so that the simulated stations answer and compose as a real one would.

Payloads are camelCase dicts, as on the wire. Modelled, minimally:

- K01.FR.05: a profile whose id is already held replaces it.
- K01.FR.16 / K01.FR.09: a TxProfile needs an EVSE > 0 that runs the transaction named by its transactionId, else
  it is Rejected ("InvalidValue" / "TxNotFound", the reason codes EVerest's libocpp gives).
- K01.FR.06 (a CSMS requirement; stations such as libocpp enforce it): a profile that is not a TxProfile with the
  stackLevel, purpose and EVSE of a held profile with another id and an overlapping validity period is Rejected
  ("DuplicateProfile"). K01.FR.39, the same for TxProfiles: same stackLevel and transactionId, another id.
- A TxProfile ends with its transaction (`end_transaction`).
- K10: ClearChargingProfile by id, or by criteria (evseId, purpose, stackLevel; an absent criterion matches all);
  "Unknown" when nothing matched.
- K08, the composite schedule at each instant: the profiles in force then (validFrom <= t < validTo, and
  startSchedule + startPeriod within the schedule's duration), held for the EVSE or for evse 0; within a purpose
  the highest stackLevel wins (the EVSE's own on a tie); a TxProfile of the transaction running on the EVSE
  overrides the TxDefaultProfile; the result is capped by the ChargingStationMaxProfile and by the station's own
  maximum (which is also the answer where no profile is in force). W and A convert with voltage x numberPhases
  (the period's numberPhases, else the station's phases: K01.FR.49/K01.FR.50). Equal consecutive periods merge,
  the first starts at 0; W are reported whole, A with one decimal (the schema allows one).

Not modelled: several chargingSchedules (ISO 15118 offers; the first is used), ChargingStationExternalConstraints,
EVSEs that do not exist, phase switching. A schedule "relative to the start of charging" (Relative, or Absolute
without startSchedule) starts at the profile's validFrom, else at the start of the composite asked for.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

STATION_WIDE = 0

_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)
_RECURRENCE = {"Daily": timedelta(days=1), "Weekly": timedelta(weeks=1)}


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    return moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class _Limit:
    watts: float
    phases: int | None  # numberPhases of the period that set it; None for the station's own maximum


@dataclass(frozen=True)
class _Held:
    """One profile as the station holds it, on one EVSE (0: the whole station)."""

    evse_id: int
    profile: dict[str, Any]

    @property
    def purpose(self) -> str:
        return self.profile["chargingProfilePurpose"]

    @property
    def stack_level(self) -> int:
        return int(self.profile["stackLevel"])

    @property
    def schedule(self) -> dict[str, Any]:
        return self.profile["chargingSchedule"][0]

    def validity(self) -> tuple[datetime, datetime]:
        # an absent validFrom means "from receipt": every composite is asked for after that
        valid_from, valid_to = self.profile.get("validFrom"), self.profile.get("validTo")
        return (_moment(valid_from) if valid_from else _EARLIEST, _moment(valid_to) if valid_to else _LATEST)

    def conflicts_with(self, other: _Held) -> bool:
        """K01.FR.06 / K01.FR.39: another profile at the same stack level and purpose that may not coexist."""
        if self.profile["id"] == other.profile["id"] or self.stack_level != other.stack_level \
                or self.purpose != other.purpose:
            return False
        if self.purpose == "TxProfile":
            return self.profile.get("transactionId") == other.profile.get("transactionId")
        (start, end), (other_start, other_end) = self.validity(), other.validity()
        return self.evse_id == other.evse_id and start < other_end and other_start < end

    def _first_origin(self, charging_start: datetime) -> datetime:
        if self.profile["chargingProfileKind"] != "Relative" and self.schedule.get("startSchedule"):
            return _moment(self.schedule["startSchedule"])
        valid_from = self.profile.get("validFrom")
        return _moment(valid_from) if valid_from else charging_start

    def _recurrence(self) -> timedelta | None:
        if self.profile["chargingProfileKind"] != "Recurring":
            return None
        return _RECURRENCE[self.profile["recurrencyKind"]]

    def _origin_at(self, moment: datetime, charging_start: datetime) -> datetime | None:
        """Where the schedule in force at `moment` starts (the latest recurrence for a Recurring one)."""
        first = self._first_origin(charging_start)
        step = self._recurrence()
        if moment < first:
            return None
        return first if step is None else first + step * ((moment - first) // step)

    def _origins(self, start: datetime, end: datetime, charging_start: datetime) -> list[datetime]:
        first = self._first_origin(charging_start)
        step = self._recurrence()
        if step is None:
            return [first]
        origin = self._origin_at(start, charging_start) or first
        origins = []
        while origin < end:
            origins.append(origin)
            origin += step
        return origins

    def period_at(self, moment: datetime, charging_start: datetime) -> dict[str, Any] | None:
        """The chargingSchedulePeriod in force at `moment`; None where this profile imposes nothing."""
        start, end = self.validity()
        origin = self._origin_at(moment, charging_start)
        if not start <= moment < end or origin is None:
            return None
        offset = (moment - origin).total_seconds()
        duration = self.schedule.get("duration")
        if duration is not None and offset >= duration:
            return None
        current = None
        for period in sorted(self.schedule["chargingSchedulePeriod"], key=lambda p: p["startPeriod"]):
            if period["startPeriod"] > offset:
                break
            current = period
        return current

    def breakpoints(self, start: datetime, end: datetime, charging_start: datetime) -> set[datetime]:
        """Every instant in (start, end) at which what this profile imposes may change."""
        points = set(self.validity())
        duration = self.schedule.get("duration")
        for origin in self._origins(start, end, charging_start):
            points.add(origin)
            if duration is not None:
                points.add(origin + timedelta(seconds=duration))
            points.update(origin + timedelta(seconds=p["startPeriod"]) for p in self.schedule["chargingSchedulePeriod"])
        return {point for point in points if start < point < end}


class StationProfiles:
    """What an OCPP 2.0.1 charging station does with charging profiles (K01 Set, K10 Clear, K08
    GetCompositeSchedule), camelCase dicts in and out."""

    def __init__(self, station_id: str, *, max_power_w: float = 22000.0, voltage: float = 230.0,
                 phases: int = 3) -> None:
        self.station_id = station_id
        self.max_power_w = max_power_w
        self.voltage = voltage
        self.phases = phases
        self.active_transactions: dict[int, str] = {}  # evseId -> transactionId running there
        self._held: list[_Held] = []

    def set_profile(self, evse_id: int, profile: dict[str, Any]) -> tuple[str, str | None]:
        """A SetChargingProfileRequest: ("Accepted", None) or ("Rejected", reasonCode)."""
        candidate = _Held(evse_id, copy.deepcopy(profile))
        reason = self._refusal(candidate)
        if reason is not None:
            return "Rejected", reason
        # K01.FR.05: the same id replaces the held profile, wherever it is held
        self._held = [held for held in self._held if held.profile["id"] != profile["id"]]
        self._held.append(candidate)
        return "Accepted", None

    def _refusal(self, candidate: _Held) -> str | None:
        if candidate.purpose == "TxProfile":
            if candidate.evse_id <= STATION_WIDE:
                return "InvalidValue"  # K01.FR.16
            running = self.active_transactions.get(candidate.evse_id)
            if running is None or candidate.profile.get("transactionId") != running:
                return "TxNotFound"  # K01.FR.09
        if any(candidate.conflicts_with(held) for held in self._held):
            return "DuplicateProfile"
        return None

    def clear(self, request: dict[str, Any]) -> str:
        """A ClearChargingProfileRequest: "Accepted" when it cleared something, else "Unknown"."""
        cleared = [held for held in self._held if _cleared_by(request, held)]
        self._held = [held for held in self._held if not any(held is gone for gone in cleared)]
        return "Accepted" if cleared else "Unknown"

    def end_transaction(self, evse_id: int) -> None:
        """The transaction on `evse_id` ends, and with it its TxProfiles (a TxProfile lives as long as it)."""
        self.active_transactions.pop(evse_id, None)
        self._held = [held for held in self._held if not (held.purpose == "TxProfile" and held.evse_id == evse_id)]

    def installed(self) -> list[tuple[int, dict[str, Any]]]:
        """(evseId, profile) for each profile held now, in the order they were accepted."""
        return [(held.evse_id, copy.deepcopy(held.profile)) for held in self._held]

    def composite(self, evse_id: int, duration: int, unit: str, now: datetime) -> dict[str, Any]:
        """The CompositeScheduleType for `evse_id` over [now, now + duration s), in `unit` ("W" or "A")."""
        if unit not in ("W", "A"):
            raise ValueError(f"station {self.station_id}: chargingRateUnit {unit!r} is neither W nor A")
        if now.tzinfo is None:
            raise ValueError(f"station {self.station_id}: composite start {now} has no time zone")
        if duration <= 0:
            raise ValueError(f"station {self.station_id}: composite duration {duration} s is not positive")
        now = now.astimezone(UTC)
        relevant = [held for held in self._held if held.evse_id in (STATION_WIDE, evse_id)]
        end = now + timedelta(seconds=duration)
        # whole seconds, as startPeriod is an integer; the limit is read where the reported period starts
        offsets = {0} | {math.ceil((point - now).total_seconds())
                         for held in relevant for point in held.breakpoints(now, end, now)}
        periods: list[dict[str, Any]] = []
        for offset in sorted(o for o in offsets if o < duration):
            limit = self._limit_at(evse_id, relevant, now + timedelta(seconds=offset), now)
            period: dict[str, Any] = {"startPeriod": offset, "limit": self._in_unit(limit, unit)}
            if limit.phases is not None:
                period["numberPhases"] = limit.phases
            if not periods or _without_start(periods[-1]) != _without_start(period):
                periods.append(period)
        return {"evseId": evse_id, "duration": duration, "scheduleStart": _iso(now), "chargingRateUnit": unit,
                "chargingSchedulePeriod": periods}

    def _limit_at(self, evse_id: int, relevant: list[_Held], moment: datetime, charging_start: datetime) -> _Limit:
        in_force = [(held, period) for held in relevant
                    if (period := held.period_at(moment, charging_start)) is not None]
        running = self.active_transactions.get(evse_id)

        def top(purpose: str, transaction: str | None = None) -> tuple[_Held, dict[str, Any]] | None:
            candidates = [(held, period) for held, period in in_force if held.purpose == purpose
                          and (transaction is None or held.profile.get("transactionId") == transaction)]
            return max(candidates, key=lambda c: (c[0].stack_level, c[0].evse_id != STATION_WIDE), default=None)

        transaction_profile = top("TxProfile", running) if running is not None else None
        chosen = transaction_profile or top("TxDefaultProfile")
        limits = [self._watts(*found) for found in (chosen, top("ChargingStationMaxProfile")) if found is not None]
        # the station's own maximum last: on a tie the profile (and its numberPhases) is reported
        return min([*limits, _Limit(self.max_power_w, None)], key=lambda limit: limit.watts)

    def _watts(self, held: _Held, period: dict[str, Any]) -> _Limit:
        phases = period.get("numberPhases")
        limit = float(period["limit"])
        if held.schedule["chargingRateUnit"] == "A":
            limit *= self.voltage * (phases or self.phases)
        return _Limit(limit, phases)

    def _in_unit(self, limit: _Limit, unit: str) -> float:
        if unit == "W":
            return float(round(limit.watts))
        return round(limit.watts / (self.voltage * (limit.phases or self.phases)), 1)


def _cleared_by(request: dict[str, Any], held: _Held) -> bool:
    if "chargingProfileId" in request:
        return held.profile["id"] == request["chargingProfileId"]
    criteria = request.get("chargingProfileCriteria") or {}
    actual = {"evseId": held.evse_id, "chargingProfilePurpose": held.purpose, "stackLevel": held.stack_level}
    return all(criteria[key] == value for key, value in actual.items() if key in criteria)


def _without_start(period: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in period.items() if key != "startPeriod"}


def charging_profile(profile_id: int, purpose: str, stack_level: int, periods: list[tuple[Any, ...]], *,
                     unit: str = "W", start: datetime | None = None, duration: int | None = None,
                     **fields: Any) -> dict[str, Any]:
    """A ChargingProfileType for tests: `periods` as (startPeriod, limit[, numberPhases]); `start` the
    startSchedule (omitted when None, as for Relative); `fields` further profile fields (validFrom, validTo,
    transactionId, chargingProfileKind, recurrencyKind), datetimes written as ISO 8601."""
    schedule: dict[str, Any] = {"id": 1, "chargingRateUnit": unit, "chargingSchedulePeriod": [
        {"startPeriod": p[0], "limit": float(p[1]), **({"numberPhases": p[2]} if len(p) > 2 else {})}
        for p in periods]}
    if start is not None:
        schedule["startSchedule"] = _iso(start)
    if duration is not None:
        schedule["duration"] = duration
    profile = {"id": profile_id, "stackLevel": stack_level, "chargingProfilePurpose": purpose,
               "chargingProfileKind": "Absolute", "chargingSchedule": [schedule]}
    profile.update({key: _iso(value) if isinstance(value, datetime) else value for key, value in fields.items()})
    return profile
