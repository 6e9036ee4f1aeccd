"""Readings files: CSV exports of any site sensor (a data logger, FlexMeasures or Grafana export).

Format, one reading per line, with a header::

    sensor_id,event_start,value[,unit][,belief_time]
    41,2026-11-28T10:00:00-04:00,7.9,kW

`event_start` (and `belief_time`) carry their UTC offset; `unit`, when given, must be the sensor's unit (no silent
conversions); a missing `belief_time` means the value was known when its interval ended (a measurement).
A bad line makes the whole file fail with the file, line and field named, so nothing of it is written.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pandas as pd

from cariflex_pipeline.site_model import Site

REQUIRED = ("sensor_id", "event_start", "value")


class ReadingsError(ValueError):
    """A readings file that cannot be used; the message names the file, the line and the field."""


def read_readings_csv(path: Path, site: Site) -> pd.DataFrame:
    """Parse and check one file; return columns sensor_id, event_start, value, belief_time (UTC)."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ReadingsError(f"readings file {path}: cannot be read ({error})") from None
    missing = [column for column in REQUIRED if column not in raw.columns]
    if missing:
        raise ReadingsError(f"readings file {path}: missing column(s) {missing}")
    rows = []
    for index, record in enumerate(raw.to_dict("records")):
        rows.append(_reading(record, site, f"readings file {path}, line {index + 2}"))
    return pd.DataFrame(rows, columns=["sensor_id", "event_start", "value", "belief_time"])


def readings_in_window(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """The readings whose event starts in [start, end)."""
    selected = (frame["event_start"] >= pd.Timestamp(start)) & (frame["event_start"] < pd.Timestamp(end))
    return frame.loc[selected].reset_index(drop=True)


def _reading(record: dict[str, str], site: Site, where: str) -> dict[str, object]:
    try:
        sensor = site.sensor(int(record["sensor_id"]))
    except ValueError:
        raise ReadingsError(f"{where}: sensor_id {record['sensor_id']!r} is not an integer") from None
    except KeyError:
        raise ReadingsError(f"{where}: sensor {record['sensor_id']} is not in the site model") from None
    unit = record.get("unit", "").strip()
    if unit and unit != sensor.unit:
        raise ReadingsError(f"{where}: sensor {sensor.id} is in {sensor.unit!r}, the file says {unit!r}")
    try:
        value = float(record["value"])
    except ValueError:
        raise ReadingsError(f"{where}: value {record['value']!r} of sensor {sensor.id} is not a number") from None
    if not math.isfinite(value):
        raise ReadingsError(f"{where}: value {record['value']!r} of sensor {sensor.id} is not finite")
    event_start = _aware(record["event_start"], f"{where}: event_start")
    belief_text = record.get("belief_time", "").strip()
    belief_time = _aware(belief_text, f"{where}: belief_time") if belief_text else event_start + sensor.resolution
    return {"sensor_id": sensor.id, "event_start": event_start, "value": value, "belief_time": belief_time}


def _aware(text: str, what: str) -> pd.Timestamp:
    try:
        moment = pd.Timestamp(text)
    except ValueError:
        raise ReadingsError(f"{what} {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ReadingsError(f"{what} {text!r} has no UTC offset")
    return moment.tz_convert("UTC")
