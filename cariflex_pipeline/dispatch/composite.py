"""Read back what a station does: ask for its composite schedule (K08 GetCompositeSchedule) and compare it with
the SetChargingProfileRequest we sent.

An Accepted SetChargingProfile only says the station stored the profile. What it charges with is its composite
schedule: our profile merged with everything else it holds (a CitrineOS TxProfile, a ChargingStationMaxProfile,
its own hardware limit). `compare_composite` says, stretch by stretch, where the two disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cariflex_pipeline.dispatch.equivalence import Coverage, coverage
from cariflex_pipeline.dispatch.peer_schemas import violations

# stations round: W to whole watts, A to the one decimal the schema allows
TOLERANCE = {"W": 1.0, "A": 0.1}
_EPSILON = 1e-9  # so that 16.1 - 16.0 (0.10000000000000142) is within 0.1 A
# startPeriod counts whole seconds from scheduleStart: a station whose scheduleStart has a fraction of a second
# cannot place a change where the plan has it, so a difference shorter than this is not one
_SHORTEST_DIFFERENCE = timedelta(seconds=1)

Steps = list[tuple[datetime, float | None]]  # (from, limit), ascending; the last is (end, None)


def composite_request(evse_id: int, duration_s: int, unit: str) -> dict[str, Any]:
    """A GetCompositeScheduleRequest payload for `duration_s` seconds from now in `unit` ("W" or "A"), checked
    against CitrineOS 1.8.3's schema (which drops what fails)."""
    if duration_s <= 0:
        raise ValueError(f"GetCompositeSchedule for EVSE {evse_id}: duration {duration_s} s is not positive")
    payload = {"evseId": evse_id, "duration": duration_s, "chargingRateUnit": unit}
    problems = violations("GetCompositeSchedule", payload)
    if problems:
        raise ValueError(f"GetCompositeSchedule for EVSE {evse_id}: " + "; ".join(problems))
    return payload


def compare_composite(sent_payload: dict[str, Any], response_payload: dict[str, Any]) -> list[str]:
    """What differs between the station's composite schedule (a GetCompositeScheduleResponse payload) and what the
    sent SetChargingProfileRequest imposes, over the time both cover; empty when they agree.

    One line per stretch where the limits differ, naming it in UTC and both limits with their unit, e.g.
    "13:15Z-13:30Z: station 7000 W, plan 3000 W" (times on a later day than the comparison starts carry their
    date). Limits within 1 W (or 0.1 A) of each other agree: stations round. A difference lasting less than a
    second is none: startPeriod counts whole seconds, so a scheduleStart with a fraction of a second (the moment
    the station was asked) cannot put a change exactly where the plan has it. A non-Accepted answer, an answer
    without a schedule, a unit other than the plan's, a profile that is not one Absolute schedule, or no time in
    common is one line saying so.
    """
    status = response_payload.get("status")
    schedule = response_payload.get("schedule")
    if status != "Accepted":
        reason = (response_payload.get("statusInfo") or {}).get("reasonCode")
        return [f"station answered {status}" + (f" ({reason})" if reason else "") + ", no composite schedule"]
    if not schedule:
        return ["station answered Accepted without a composite schedule"]
    plan = coverage(sent_payload)
    if plan is None:
        return ["the sent profile is not one Absolute schedule with a startSchedule: nothing to compare"]
    unit = sent_payload["chargingProfile"]["chargingSchedule"][0]["chargingRateUnit"]
    if schedule["chargingRateUnit"] != unit:
        return [f"unit: station {schedule['chargingRateUnit']}, plan {unit}"]
    station = _steps(schedule)
    start, end = max(plan.start, station[0][0]), min(plan.end, station[-1][0])
    if start >= end:
        return [f"no time in common: station {_span(station[0][0], station[-1][0])}, "
                f"plan {_span(plan.start, plan.end)}"]
    return _differences(station, plan, start, end, unit)


def _steps(schedule: dict[str, Any]) -> Steps:
    """The composite as (from, limit) steps, ending with (end, None)."""
    origin = _utc(schedule["scheduleStart"])
    steps: Steps = [
        (origin + timedelta(seconds=int(p["startPeriod"])), float(p["limit"]))
        for p in sorted(schedule["chargingSchedulePeriod"], key=lambda p: p["startPeriod"])]
    steps.append((origin + timedelta(seconds=int(schedule["duration"])), None))
    return steps


def _station_limit(steps: Steps, moment: datetime) -> float | None:
    current = None
    for at, limit in steps:
        if at > moment:
            break
        current = limit
    return current


@dataclass
class _Stretch:
    """A stretch of time over which the station's and the plan's limits differ by the same amounts."""

    start: datetime
    end: datetime
    station: float | None
    plan: float | None


def _differences(station: Steps, plan: Coverage, start: datetime, end: datetime, unit: str) -> list[str]:
    points = sorted(p for p in {start, *(at for at, _ in station), *plan.breakpoints()} if start <= p < end)
    stretches: list[_Stretch] = []
    for moment, following in zip(points, [*points[1:], end], strict=True):
        plan_value = plan.value_at(moment)
        found = _Stretch(moment, following, _station_limit(station, moment),
                         None if plan_value is None else plan_value[0])
        if _agree(found.station, found.plan, unit):
            continue
        last = stretches[-1] if stretches else None
        if last is not None and (last.end, last.station, last.plan) == (moment, found.station, found.plan):
            last.end = following
        else:
            stretches.append(found)
    return [f"{_span(s.start, s.end, start)}: station {_amount(s.station, unit)}, plan {_amount(s.plan, unit)}"
            for s in stretches if s.end - s.start >= _SHORTEST_DIFFERENCE]


def _agree(station: float | None, plan: float | None, unit: str) -> bool:
    if station is None or plan is None:
        return station is plan
    return abs(station - plan) <= TOLERANCE[unit] + _EPSILON


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    return moment.astimezone(UTC)


def _clock(moment: datetime, first_day: datetime | None) -> str:
    if moment == datetime.max.replace(tzinfo=UTC):
        return "never"
    text = moment.strftime("%H:%M:%S" if moment.second else "%H:%M")
    if first_day is None or moment.date() != first_day.date():
        text = moment.strftime("%Y-%m-%dT") + text
    return text + "Z"


def _span(start: datetime, end: datetime, first_day: datetime | None = None) -> str:
    return f"{_clock(start, first_day)}-{_clock(end, first_day)}"


def _amount(limit: float | None, unit: str) -> str:
    if limit is None:
        return "none"
    return f"{f'{limit:.1f}'.rstrip('0').rstrip('.')} {unit}"
