"""Normalization: an OpenADR event -> beliefs of the site's sensors, or EventRejected naming the event.

Rules (all checked before anything is written):
- a signal/payload type that no mapping of the site names is ignored with a warning;
- every interval start is time-zone aware, durations are positive (at most `MAX_INTERVAL`), intervals of one
  signal do not overlap;
- the unit is the event's own (2.0b itemBase, 3.0.1 payloadDescriptors) or the program's configured one, and
  must convert to the sensor's unit (EUR/kWh <-> EUR/MWh, kW/MW -> % of the grid connection); the currency
  must be the sensor's (no exchange rates here);
- every value is an int/float (not a bool or string) that is finite once converted to the sensor's unit
  (1e308 EUR/kWh is not a price in EUR/MWh) and within the mapping's min/max, converted the same way (the
  bounds are in the program's unit);
- values are expanded onto the sensor's resolution: a slot takes the value of the interval its start lies in.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pandas as pd

from cariflex_pipeline.openadr.errors import EventRejected
from cariflex_pipeline.openadr.limits import shown
from cariflex_pipeline.openadr.model import EventSignal, OpenAdrEvent
from cariflex_pipeline.site_model import Site
from cariflex_pipeline.site_model.model import OpenAdrSignal

log = logging.getLogger(__name__)

MAX_INTERVAL = timedelta(days=31)
_ENERGY = {"kWh": 1.0, "MWh": 1000.0}  # size of the energy unit in kWh


@dataclass
class NormalizedEvent:
    event: OpenAdrEvent
    frame: pd.DataFrame  # sensor_id, event_start (UTC), value, belief_time
    warnings: list[str] = field(default_factory=list)

    @property
    def sensor_ids(self) -> list[int]:
        return sorted({int(sensor_id) for sensor_id in self.frame["sensor_id"]})

    @property
    def covered(self) -> tuple[datetime, datetime] | None:
        if self.frame.empty:
            return None
        return self.frame["event_start"].min().to_pydatetime(), self.frame["event_end"].max().to_pydatetime()


def find_mapping(site: Site, event: OpenAdrEvent, signal: EventSignal) -> OpenAdrSignal | None:
    if site.openadr is None:
        return None
    for mapping in site.openadr.signals:
        if mapping.program is not None and mapping.program != event.program:
            continue
        if event.protocol == "2.0b":
            if (mapping.signal_name, mapping.signal_type) == (signal.signal_name, signal.signal_type):
                return mapping
        elif mapping.payload_type is not None and mapping.payload_type == signal.payload_type:
            return mapping
    return None


def normalize_event(event: OpenAdrEvent, site: Site, belief_time: datetime | None = None) -> NormalizedEvent:
    """Beliefs for every mapped signal of `event`; raise EventRejected on the first problem found."""
    if event.problems:
        raise EventRejected(event.event_id, "; ".join(event.problems))
    belief_time = belief_time or event.modified or event.created
    if belief_time is None or belief_time.tzinfo is None:
        raise EventRejected(event.event_id, "no time-zone-aware creation/modification time to date its values")
    warnings: list[str] = []
    frames = []
    for signal in event.signals:
        mapping = find_mapping(site, event, signal)
        if mapping is None:
            message = (f"event {event.event_id!r}: signal {signal.label} of program {event.program!r} "
                       "feeds no sensor; ignored")
            log.warning(message)
            warnings.append(message)
            continue
        frames.append(_signal_frame(event, signal, mapping, site))
    columns = ["sensor_id", "event_start", "event_end", "value"]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    duplicated = frame.duplicated(["sensor_id", "event_start"])
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        raise EventRejected(event.event_id, f"two signals give sensor {row['sensor_id']} a value at "
                                            f"{row['event_start'].isoformat()}")
    frame["belief_time"] = pd.Timestamp(belief_time).tz_convert("UTC")
    return NormalizedEvent(event=event, frame=frame, warnings=warnings)


def _signal_frame(event: OpenAdrEvent, signal: EventSignal, mapping: OpenAdrSignal, site: Site) -> pd.DataFrame:
    sensor = site.sensor(mapping.sensor_id)
    where = f"signal {signal.label}"
    unit = signal.unit or mapping.unit
    currency = signal.currency or mapping.currency
    if unit.startswith("/"):  # a 3.0.1 price in KWH/MWH without a currency: the program's currency
        unit = f"{currency or sensor.unit.split('/', 1)[0]}{unit}"
    factor = conversion_factor(event.event_id, where, unit, currency, sensor.unit, site)
    bounds = _bounds(event, where, mapping, sensor.unit, site)
    spans = []
    for position, interval in enumerate(signal.intervals):
        label = f"{where}, interval {interval.uid or position}"
        start = interval.start
        if not isinstance(start, datetime):
            raise EventRejected(event.event_id, f"{label}: start {shown(start)} is not a datetime")
        if start.tzinfo is None or start.utcoffset() is None:
            raise EventRejected(event.event_id, f"{label}: naive datetime {start.isoformat()} (no time zone)")
        if not timedelta(0) < interval.duration <= MAX_INTERVAL:
            raise EventRejected(event.event_id, f"{label}: duration {interval.duration} is not in (0, {MAX_INTERVAL}]")
        utc_start = start.astimezone(UTC)
        spans.append((utc_start, utc_start + interval.duration, _converted(event, label, interval.value, factor,
                                                                          bounds, sensor.unit), label))
    spans.sort(key=lambda span: span[0])
    for previous, current in pairwise(spans):
        if current[0] < previous[1]:
            raise EventRejected(event.event_id, f"{current[3]} overlaps {previous[3]} "
                                                f"({current[0].isoformat()} < {previous[1].isoformat()})")
    return _expand(spans, sensor.id, sensor.resolution)


def _bounds(event: OpenAdrEvent, where: str, mapping: OpenAdrSignal, sensor_unit: str,
            site: Site) -> tuple[float | None, float | None]:
    """The mapping's min/max (in the program's unit) in the sensor's unit, where values are checked."""
    if mapping.min_value is None and mapping.max_value is None:
        return None, None
    factor = conversion_factor(event.event_id, where, mapping.unit, mapping.currency, sensor_unit, site)
    return tuple(None if bound is None else bound * factor  # type: ignore[return-value]
                 for bound in (mapping.min_value, mapping.max_value))


def _converted(event: OpenAdrEvent, label: str, value: object, factor: float,
               bounds: tuple[float | None, float | None], unit: str) -> float:
    """`value` in the sensor's unit, or EventRejected: checked after conversion, where it is stored."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventRejected(event.event_id, f"{label}: value {shown(value)} is not a number")
    try:
        converted = float(value) * factor
    except OverflowError:  # an int beyond any float
        converted = math.inf
    if not math.isfinite(converted):
        raise EventRejected(event.event_id, f"{label}: value {shown(value)} is not finite in {unit}")
    low, high = bounds
    if low is not None and converted < low:
        raise EventRejected(event.event_id, f"{label}: value {converted:g} {unit} is below {low:g}")
    if high is not None and converted > high:
        raise EventRejected(event.event_id, f"{label}: value {converted:g} {unit} is above {high:g}")
    return converted


def _expand(spans: list[tuple[datetime, datetime, float, str]], sensor_id: int,
            resolution: timedelta) -> pd.DataFrame:
    rows = []
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    for start, end, value, _label in spans:
        offset = (start - epoch) % resolution
        slot = start if offset == timedelta(0) else start - offset + resolution
        while slot < end:
            rows.append((sensor_id, slot, slot + resolution, value))
            slot += resolution
    frame = pd.DataFrame(rows, columns=["sensor_id", "event_start", "event_end", "value"])
    for column in ("event_start", "event_end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def conversion_factor(event_id: str, where: str, unit: str, currency: str | None, sensor_unit: str,
                      site: Site) -> float:
    """Multiplier from the event's unit to the sensor's, or EventRejected naming the unit or currency."""
    unit = unit.strip()
    if "/" in sensor_unit and currency is not None and currency != sensor_unit.split("/", 1)[0]:
        raise EventRejected(event_id, f"{where}: unknown currency {currency!r} "
                                      f"(expected {sensor_unit.split('/', 1)[0]})")
    if unit == sensor_unit:
        return 1.0
    if "/" in sensor_unit and sensor_unit.split("/", 1)[1] in _ENERGY:
        sensor_currency, sensor_energy = sensor_unit.split("/", 1)
        if "/" not in unit:
            raise EventRejected(event_id, f"{where}: unknown unit {unit!r} for a price in {sensor_unit}")
        unit_currency, unit_energy = unit.split("/", 1)
        if unit_energy not in _ENERGY:
            raise EventRejected(event_id, f"{where}: unknown unit {unit!r}")
        for stated in {unit_currency, currency} - {None}:
            if stated != sensor_currency:
                raise EventRejected(event_id, f"{where}: unknown currency {stated!r} (expected {sensor_currency})")
        # price per MWh = price per kWh * 1000
        return _ENERGY[sensor_energy] / _ENERGY[unit_energy]
    if sensor_unit == "%" and unit in ("kW", "MW"):
        capacity_kw = site.grid_connection.import_capacity_kw
        return (1000.0 if unit == "MW" else 1.0) * 100.0 / capacity_kw
    if sensor_unit == "dimensionless" and unit in ("level", "dimensionless"):
        return 1.0
    raise EventRejected(event_id, f"{where}: unknown unit {unit!r} for sensor unit {sensor_unit!r}")
