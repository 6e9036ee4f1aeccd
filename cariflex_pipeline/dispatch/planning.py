"""From the scheduler's planned power in the store to validated profiles, one per charge point."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd

from cariflex_pipeline.dispatch.outbox import OutboxEntry
from cariflex_pipeline.dispatch.profiles import (
    BuiltProfile,
    ProfileBuildError,
    ProfileConfig,
    StationTarget,
    build_profile,
    ceil_to_grid,
)
from cariflex_pipeline.dispatch.validation import ProfileValidationError, validate_request
from cariflex_pipeline.site_model import Site


@dataclass
class ProfileSet:
    profiles: list[BuiltProfile] = field(default_factory=list)
    invalid: dict[str, list[str]] = field(default_factory=dict)  # station -> violations (never sent)
    cleared: dict[str, int] = field(default_factory=dict)  # station -> outbox id of the stale profile replaced


def profiles_from_plan(
    site: Site,
    planned: pd.DataFrame,
    *,
    now: datetime | None = None,
    transactions: dict[str, str] | None = None,
    config: ProfileConfig | None = None,
    horizon_end: datetime | None = None,
    in_force: Mapping[str, OutboxEntry] | None = None,
    outlast: Mapping[tuple[str, str, int], datetime] | None = None,
) -> ProfileSet:
    """Build and validate one profile per charge point that has planned power.

    `planned` has the columns of `TimeSeriesStore.read_latest` (sensor_id, event_start, value in kW). A profile
    that breaks the OCPP schema or CitrineOS's rules lands in `invalid` with every violation named.

    A charge point with nothing planned would otherwise go on following the last profile it got (a plan
    that no longer exists): when `in_force` (`Outbox.last_in_force`) shows one with a non-zero limit, the
    station gets a limit-0 profile under the same profile id and stack level - which replaces it on the
    station (OCPP 2.0.1 K01: same id replaces) - from the current slot to one slot past that profile's validTo
    (so that it outlasts it, as CitrineOS requires of a profile at the same stack level and purpose). Nothing
    planned means no charging, as for unplanned slots inside a plan; a new session reruns the plan at once.
    A SetChargingProfile rather than ClearChargingProfile keeps the station under a known limit instead of
    falling back to its own maximum, and goes through the same outbox, answers and dedup as any profile.

    `outlast` (`Outbox.valid_to_to_outlast`) maps (station, purpose, stack level) to the latest validTo
    CitrineOS may hold as active: each new profile runs past it (a re-plan inside the same slot).
    """
    now = now or datetime.now(UTC)
    transactions = transactions or {}
    in_force = in_force or {}
    result = ProfileSet()
    resolution = site.resolution
    plans = _plans_by_sensor(planned)
    for cp in site.charge_points:
        station = StationTarget(cp.id, cp.evse_id, cp.max_power_kw, transactions.get(cp.id))
        station_config, station_end, stale = config, horizon_end, None
        plan = plans.get(cp.sensor_id, {})
        if not plan:
            stale = in_force.get(cp.id)
            if stale is None or not _limits_ahead(stale, now):
                continue
            station_config = dataclasses.replace(config or ProfileConfig(), stack_level=stale.stack_level)
            # one slot past the stale validTo: CitrineOS 1.8's REST side refuses a profile with the same stack
            # level, purpose and EVSE as an active one unless the new one outlasts it
            station_end = ceil_to_grid(stale.valid_to, resolution) + resolution
        level = (station_config or ProfileConfig()).stack_level
        previous = {purpose: valid_to for (station_id, purpose, stack_level), valid_to in (outlast or {}).items()
                    if station_id == cp.id and stack_level == level}
        try:
            profile = build_profile(station, plan, now=now, resolution=resolution, horizon_end=station_end,
                                    config=station_config, outlast=previous)
            validate_request(profile.payload, station_id=cp.id, now=now)
        except ProfileValidationError as error:
            result.invalid[cp.id] = error.violations
            continue
        except ProfileBuildError as error:
            result.invalid[cp.id] = [str(error)]
            continue
        if stale is not None:
            profile = dataclasses.replace(profile, notes=(
                f"nothing planned: limit 0 until {station_end.isoformat()} replaces outbox #{stale.id} "
                f"(profile {stale.profile_id})", *profile.notes))
            result.cleared[cp.id] = stale.id
        result.profiles.append(profile)
    return result


def _plans_by_sensor(planned: pd.DataFrame) -> dict[int, dict[datetime, float]]:
    """Per sensor, its planned kW per slot start, in one pass over the frame: a mask and a time conversion per charge
    point cost a fleet's tick about a second per hundred sites of a hundred charge points."""
    plans: dict[int, dict[datetime, float]] = {}
    if planned.empty:
        return plans
    try:  # one conversion of the column: a Timestamp per row costs more than building the profiles
        starts = list(pd.DatetimeIndex(planned["event_start"]).to_pydatetime())
    except (TypeError, ValueError):  # an object column of several time zones: row by row, as they are
        starts = [pd.Timestamp(t).to_pydatetime() for t in planned["event_start"]]
    for sensor_id, slot_start, value in zip(planned["sensor_id"].tolist(), starts, planned["value"].tolist(),
                                            strict=True):
        plans.setdefault(int(sensor_id), {})[slot_start] = float(value)
    return plans


def _limits_ahead(entry: OutboxEntry, now: datetime) -> bool:
    """Whether the entry's schedule still allows charging at or after `now` (a non-zero period not yet over)."""
    schedule = entry.payload["chargingProfile"]["chargingSchedule"][0]
    start = datetime.fromisoformat(schedule["startSchedule"].replace("Z", "+00:00"))
    ends = [start + timedelta(seconds=offset) for offset, _ in entry.limits[1:]] + [entry.valid_to]
    return any(limit > 0 and end > now for (_, limit), end in zip(entry.limits, ends, strict=True))
