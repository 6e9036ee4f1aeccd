"""Whether a new charging profile changes anything for a station compared with one it already has (or refused).

A re-plan every 15 minutes moves startSchedule, validFrom and validTo even when nothing else changes, so the
payload bytes cannot tell an unchanged plan from a new one. Two SetChargingProfile payloads have the *same
effect* from `now` on when

- everything but their timing is equal: evseId, profile id, stack level, purpose, kind, transactionId,
  chargingRateUnit, schedule id and any other field (minChargingRate, ...); and
- over the time both cover from `now` on, they impose the same limit (with the same numberPhases and
  phaseToUse) at every instant: each schedule is read as a step function of absolute time,
  startSchedule + startPeriod -> limit, covering [max(validFrom, startSchedule), min(validTo,
  startSchedule + duration)); outside that span a profile imposes nothing.

The same effect is not enough to leave the station on the old profile: it must stay in force long enough that
the station is not left without one before the next re-plans. `should_skip` keeps the old one only while it
runs at least `min_validity_ahead` past `now`, or when the new one would not run any longer than the old one
(it would add nothing); otherwise the new one is sent to extend it.

Profiles that are not one Absolute schedule (Relative, Recurring, several schedules) are compared by bytes
without validFrom, as before.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

DEFAULT_MIN_VALIDITY_AHEAD = timedelta(hours=12)

_FOREVER = datetime.max.replace(tzinfo=UTC)
_PROFILE_TIMING = ("validFrom", "validTo", "chargingSchedule")
_SCHEDULE_TIMING = ("startSchedule", "duration", "chargingSchedulePeriod")

StepValue = tuple[float, int | None, int | None]  # limit, numberPhases, phaseToUse


def payload_hash(payload: dict[str, Any]) -> str:
    """Hash of the payload without validFrom (which moves with the clock but changes nothing for the station)."""
    document = json.loads(json.dumps(payload))
    document.get("chargingProfile", {}).pop("validFrom", None)
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)  # reads a trailing "Z" itself since Python 3.11
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Coverage:
    """A profile as a step function of absolute time over [start, end)."""

    start: datetime
    end: datetime
    steps: tuple[tuple[datetime, StepValue], ...]  # ascending; each value holds until the next step or `end`

    def value_at(self, moment: datetime) -> StepValue | None:
        """The limit imposed at `moment`, None where the profile imposes nothing."""
        if not self.start <= moment < self.end:
            return None
        current: StepValue | None = None
        for at, value in self.steps:
            if at > moment:
                break
            current = value
        return current

    def breakpoints(self) -> set[datetime]:
        return {self.start, self.end, *(at for at, _ in self.steps)}


def coverage(payload: dict[str, Any]) -> Coverage | None:
    """The step function of a one-schedule Absolute profile; None for a profile this module cannot compare."""
    profile = payload["chargingProfile"]
    schedules = profile.get("chargingSchedule") or []
    if profile.get("chargingProfileKind") != "Absolute" or len(schedules) != 1:
        return None
    schedule = schedules[0]
    if "startSchedule" not in schedule:
        return None
    origin = _time(schedule["startSchedule"])
    start = max(origin, _time(profile["validFrom"])) if profile.get("validFrom") else origin
    end = _time(profile["validTo"]) if profile.get("validTo") else _FOREVER
    if schedule.get("duration") is not None:
        end = min(end, origin + timedelta(seconds=int(schedule["duration"])))
    steps = tuple(
        (origin + timedelta(seconds=int(period["startPeriod"])),
         (round(float(period["limit"]), 6), period.get("numberPhases"), period.get("phaseToUse")))
        for period in sorted(schedule["chargingSchedulePeriod"], key=lambda p: p["startPeriod"]))
    return Coverage(start=start, end=end, steps=steps)


def _identity(payload: dict[str, Any]) -> dict[str, Any]:
    """Everything but the timing, flattened: what must be equal for two profiles to be compared by limits."""
    profile = payload["chargingProfile"]
    schedules = profile.get("chargingSchedule") or []
    flat = {key: value for key, value in payload.items() if key != "chargingProfile"}
    flat.update({f"chargingProfile.{key}": value for key, value in profile.items() if key not in _PROFILE_TIMING})
    flat["chargingSchedule count"] = len(schedules)
    for index, schedule in enumerate(schedules):
        flat.update({f"chargingSchedule[{index}].{key}": value for key, value in schedule.items()
                     if key not in _SCHEDULE_TIMING})
    return flat


def _differing_fields(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    new_id, old_id = _identity(new), _identity(old)
    return sorted(key for key in new_id.keys() | old_id.keys() if new_id.get(key) != old_id.get(key))


@dataclass(frozen=True)
class EffectComparison:
    """The outcome of comparing a new profile with an old one; `reason` says why in words for the operator."""

    same: bool  # same identity and the same limits over the time both cover from now on
    skip: bool  # same, and the old profile is in force long enough (or the new one would not extend it)
    reason: str
    old_valid_to: datetime | None = None


def compare_effect(new: dict[str, Any], old: dict[str, Any], *, now: datetime,
                   min_validity_ahead: timedelta = DEFAULT_MIN_VALIDITY_AHEAD) -> EffectComparison:
    """Compare two SetChargingProfileRequest payloads by what they make the station do from `now` on."""
    if now.tzinfo is None:
        raise ValueError(f"comparing profiles at {now.isoformat()}: that time has no time zone")
    differing = _differing_fields(new, old)
    if differing:
        return EffectComparison(False, False, "different " + ", ".join(differing))
    new_cover, old_cover = coverage(new), coverage(old)
    if new_cover is None or old_cover is None:
        same = payload_hash(new) == payload_hash(old)
        return EffectComparison(same, same, "identical payload (without validFrom)" if same
                                else "different payload (not an Absolute one-schedule profile)")
    window_end = min(new_cover.end, old_cover.end)
    if window_end <= now:
        return EffectComparison(False, False, f"the old profile ran out at {_iso(old_cover.end)}",
                                old_cover.end)
    for moment in sorted(t for t in new_cover.breakpoints() | old_cover.breakpoints() | {now}
                         if now <= t < window_end):
        new_value, old_value = new_cover.value_at(moment), old_cover.value_at(moment)
        if new_value != old_value:
            return EffectComparison(False, False, f"limit at {_iso(moment)}: {_value_text(new_value)} instead "
                                                  f"of {_value_text(old_value)}", old_cover.end)
    same = f"same limits until {_iso(window_end)}"
    ahead = old_cover.end - now
    if ahead >= min_validity_ahead:
        runs = ("it has no end" if old_cover.end == _FOREVER  # not "(69890700 h ahead)"
                else f"it runs until {_iso(old_cover.end)} ({_hours(ahead)} h ahead, "
                     f"margin {_hours(min_validity_ahead)} h)")
        return EffectComparison(True, True, f"{same}; {runs}", old_cover.end)
    if new_cover.end <= old_cover.end:
        return EffectComparison(True, True, f"{same}; the new one would not run longer", old_cover.end)
    return EffectComparison(True, False, f"{same}, but the old one ends at {_iso(old_cover.end)}, within the "
                                         f"{_hours(min_validity_ahead)} h margin: sent to extend it",
                            old_cover.end)


def _iso(moment: datetime) -> str:
    if moment == _FOREVER:
        return "never"
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _hours(delta: timedelta) -> str:
    return f"{round(delta.total_seconds() / 3600, 1):g}"


def _value_text(value: StepValue | None) -> str:
    if value is None:
        return "none"
    limit, phases, phase = value
    extra = "".join(f" {name}={v}" for name, v in (("numberPhases", phases), ("phaseToUse", phase)) if v is not None)
    return f"{limit:g}{extra}"
