"""From the scheduler's planned power in the store to validated profiles, one per charge point."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from cariflex_pipeline.dispatch.profiles import (
    BuiltProfile,
    ProfileBuildError,
    ProfileConfig,
    StationTarget,
    build_profile,
)
from cariflex_pipeline.dispatch.validation import ProfileValidationError, validate_request


@dataclass
class ProfileSet:
    profiles: list[BuiltProfile] = field(default_factory=list)
    invalid: dict[str, list[str]] = field(default_factory=dict)  # station -> violations (never sent)


def profiles_from_plan(
    site: Any,
    planned: pd.DataFrame,
    *,
    now: datetime | None = None,
    transactions: dict[str, str] | None = None,
    config: ProfileConfig | None = None,
    horizon_end: datetime | None = None,
) -> ProfileSet:
    """Build and validate one profile per charge point that has planned power.

    `planned` has the columns of `TimeSeriesStore.read_latest` (sensor_id, event_start, value in kW). A profile
    that breaks the OCPP schema or CitrineOS's rules lands in `invalid` with every violation named.
    """
    now = now or datetime.now(UTC)
    transactions = transactions or {}
    result = ProfileSet()
    if planned.empty:
        return result
    resolution = getattr(site, "resolution", timedelta(minutes=15))
    for cp in site.charge_points:
        rows = planned[planned["sensor_id"] == cp.sensor_id]
        if rows.empty:
            continue
        plan = {pd.Timestamp(t).to_pydatetime(): float(v) for t, v in zip(rows["event_start"], rows["value"],
                                                                           strict=True)}
        station = StationTarget(cp.id, cp.evse_id, cp.max_power_kw, transactions.get(cp.id))
        try:
            profile = build_profile(station, plan, now=now, resolution=resolution, horizon_end=horizon_end,
                                    config=config)
            validate_request(profile.payload, station_id=cp.id, now=now)
        except ProfileValidationError as error:
            result.invalid[cp.id] = error.violations
            continue
        except ProfileBuildError as error:
            result.invalid[cp.id] = [str(error)]
            continue
        result.profiles.append(profile)
    return result
