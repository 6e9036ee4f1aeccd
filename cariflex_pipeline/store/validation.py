"""Checks a frame of beliefs before anything is written: the whole frame is accepted or none of it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("sensor_id", "event_start", "value", "belief_time")


class BeliefValidationError(ValueError):
    """A frame of beliefs that cannot be stored; the message names the sensor and event."""


def normalize_beliefs(frame: pd.DataFrame, sensor_resolutions: Mapping[int, timedelta],
                      source_column: str | None = None) -> pd.DataFrame:
    """Validate and return the frame in storage shape: UTC times, resolution in seconds, one row per key.

    Raises BeliefValidationError on a missing column, an unknown sensor, a naive or missing time, or a value
    that is not a finite number. Later rows win over earlier ones with the same key. With `source_column`, the
    frame holds the values of several sources: that column is kept, and is part of the key.
    """
    required = (*REQUIRED_COLUMNS, source_column) if source_column else REQUIRED_COLUMNS
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise BeliefValidationError(f"beliefs frame lacks column(s) {missing}")
    if frame.empty:
        return _empty(source_column)
    sensor_ids = pd.to_numeric(frame["sensor_id"], errors="coerce")
    if sensor_ids.isna().any():
        raise BeliefValidationError(f"sensor_id {frame['sensor_id'][sensor_ids.isna()].iloc[0]!r} is not an integer")
    sensor_ids = sensor_ids.astype("int64")
    unknown = sorted(int(sensor_id) for sensor_id in set(sensor_ids.unique()) - set(sensor_resolutions))
    if unknown:
        raise BeliefValidationError(f"sensor(s) {unknown} are not registered in the store")

    event_start = _utc(frame["event_start"], "event_start", sensor_ids)
    belief_time = _utc(frame["belief_time"], "belief_time", sensor_ids)
    values = _finite(frame["value"], sensor_ids, event_start)
    resolution_seconds = _resolution_seconds(frame, sensor_ids, sensor_resolutions)

    normalized = pd.DataFrame(
        {
            "sensor_id": sensor_ids.to_numpy(),
            # .array keeps the time zone; .to_numpy() would box every value into a Timestamp object.
            "event_start": event_start.array,
            "belief_time": belief_time.array,
            "event_resolution_seconds": resolution_seconds,
            "value": values,
        }
    )
    key = ["sensor_id", "event_start", "belief_time"]
    if source_column:
        normalized[source_column] = frame[source_column].array
        key.append(source_column)
    return normalized.drop_duplicates(key, keep="last").reset_index(drop=True)


def _empty(source_column: str | None) -> pd.DataFrame:
    empty = pd.DataFrame(
        {
            "sensor_id": pd.Series(dtype="int64"),
            "event_start": pd.Series(dtype="datetime64[us, UTC]"),
            "belief_time": pd.Series(dtype="datetime64[us, UTC]"),
            "event_resolution_seconds": pd.Series(dtype="int64"),
            "value": pd.Series(dtype="float64"),
        }
    )
    if source_column:
        empty[source_column] = pd.Series(dtype=object)
    return empty


def _utc(column: pd.Series, name: str, sensor_ids: pd.Series) -> pd.Series:
    try:
        times = pd.to_datetime(column)
    except (ValueError, TypeError) as error:
        raise BeliefValidationError(f"{name} holds values that are not times ({error})") from None
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        converted = times.dt.tz_convert("UTC")
    elif times.dtype == object:
        # Mixed zones arrive as objects; each element must carry its own offset.
        naive = [i for i, value in enumerate(times) if getattr(value, "tzinfo", None) is None]
        if naive:
            raise _naive_error(name, sensor_ids.iloc[naive[0]], times.iloc[naive[0]])
        converted = pd.to_datetime(times, utc=True)
    else:
        raise _naive_error(name, sensor_ids.iloc[0], times.iloc[0])
    if converted.isna().any():
        position = int(np.flatnonzero(converted.isna().to_numpy())[0])
        raise BeliefValidationError(f"sensor {sensor_ids.iloc[position]}: {name} is missing in row {position}")
    return converted.astype("datetime64[us, UTC]")


def _naive_error(name: str, sensor_id: int, value: object) -> BeliefValidationError:
    return BeliefValidationError(
        f"sensor {sensor_id}: {name} {value} has no time zone; give times with their offset"
    )


def _finite(column: pd.Series, sensor_ids: pd.Series, event_start: pd.Series) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").astype("float64").to_numpy()
    bad = ~np.isfinite(values)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raw = column.iloc[position]
        shown = repr(raw) if isinstance(raw, str) else str(raw)
        raise BeliefValidationError(
            f"sensor {sensor_ids.iloc[position]}, event {event_start.iloc[position].isoformat()}: "
            f"value {shown} is not a finite number"
        )
    return values


def _resolution_seconds(
    frame: pd.DataFrame, sensor_ids: pd.Series, sensor_resolutions: Mapping[int, timedelta]
) -> np.ndarray:
    defaults = sensor_ids.map({k: v.total_seconds() for k, v in sensor_resolutions.items()})
    if "event_resolution" not in frame.columns:
        return defaults.astype("int64").to_numpy()
    given = pd.to_timedelta(frame["event_resolution"]).dt.total_seconds()
    seconds = given.fillna(defaults)
    if (seconds <= 0).any():
        position = int(np.flatnonzero((seconds <= 0).to_numpy())[0])
        raise BeliefValidationError(f"sensor {sensor_ids.iloc[position]}: event_resolution must be positive")
    return seconds.astype("int64").to_numpy()
