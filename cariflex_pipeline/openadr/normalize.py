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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import compress, pairwise
from operator import add

import pandas as pd

from cariflex_pipeline.openadr.errors import EventRejected
from cariflex_pipeline.openadr.limits import shown
from cariflex_pipeline.openadr.model import (
    EventSignal,
    OpenAdrEvent,
    RegularIntervals,
    SignalInterval,
    interval_values,
)
from cariflex_pipeline.site_model import Site
from cariflex_pipeline.site_model.model import OpenAdrSignal

log = logging.getLogger(__name__)

MAX_INTERVAL = timedelta(days=31)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NO_TIME = timedelta(0)
_ALIGNMENT = (datetime(2000, 1, 1, tzinfo=UTC) - _EPOCH) // _MICROSECOND  # slots are aligned from here
_ENERGY = {"kWh": 1.0, "MWh": 1000.0}  # size of the energy unit in kWh


@dataclass
class NormalizedEvent:
    """An event's values, one per sensor slot, as plain lists: ingestion of a listing of thousands of events
    puts them into one frame; times are whole microseconds since the Unix epoch (UTC)."""

    event: OpenAdrEvent
    belief_time_us: int
    value_sensor_ids: list[int] = field(default_factory=list)
    starts_us: list[int] = field(default_factory=list)
    resolutions_us: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def sensor_ids(self) -> list[int]:
        return sorted(set(self.value_sensor_ids))

    @property
    def covered(self) -> tuple[datetime, datetime] | None:
        if not self.values:
            return None
        end_us = max(map(add, self.starts_us, self.resolutions_us))  # map, not a generator: 96,000 sums per listing
        return from_microseconds(min(self.starts_us)), from_microseconds(end_us)

    @property
    def frame(self) -> pd.DataFrame:
        """sensor_id, event_start, event_end (UTC), value, belief_time."""
        starts = pd.to_datetime(pd.Series(self.starts_us, dtype="int64"), unit="us", utc=True)
        return pd.DataFrame({
            "sensor_id": pd.Series(self.value_sensor_ids, dtype="int64"),
            "event_start": starts,
            "event_end": starts + pd.to_timedelta(pd.Series(self.resolutions_us, dtype="int64"), unit="us"),
            "value": pd.Series(self.values, dtype="float64"),
            "belief_time": pd.Timestamp(from_microseconds(self.belief_time_us)),
        })


def microseconds(moment: datetime) -> int:
    """An aware datetime as whole microseconds since the Unix epoch."""
    return (moment - _EPOCH) // _MICROSECOND


def from_microseconds(value: int) -> datetime:
    return _EPOCH + value * _MICROSECOND


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
    normalized = NormalizedEvent(event=event, belief_time_us=microseconds(belief_time))
    try:
        _normalize_signals(event, site, normalized)
    except Refusal as refusal:
        raise EventRejected(event.event_id, str(refusal)) from None
    return normalized


class Refusal(Exception):
    """What is wrong with a signal's units, times or values; normalize_event rejects the event with it."""


def _normalize_signals(event: OpenAdrEvent, site: Site, normalized: NormalizedEvent) -> None:
    fed: set[int] = set()
    for signal in event.signals:
        mapping = find_mapping(site, event, signal)
        if mapping is None:
            message = (f"event {event.event_id!r}: signal {signal.label} of program {event.program!r} "
                       "feeds no sensor; ignored")
            log.warning(message)
            normalized.warnings.append(message)
            continue
        values = _signal_values(signal, mapping, site)
        if mapping.sensor_id in fed:  # two signals onto one sensor: each slot must still have one value
            _check_no_shared_slot(normalized, values)
        fed.add(mapping.sensor_id)
        _append(normalized, values)


_Values = tuple[int, list[int], int, list[float]]  # sensor, slot starts (us), resolution (us), values
_Span = tuple[int, int]  # [start, end) in microseconds since the epoch


def _append(normalized: NormalizedEvent, values: _Values) -> None:
    sensor_id, starts, resolution, numbers = values
    normalized.value_sensor_ids.extend([sensor_id] * len(starts))
    normalized.starts_us.extend(starts)
    normalized.resolutions_us.extend([resolution] * len(starts))
    normalized.values.extend(numbers)


def _check_no_shared_slot(normalized: NormalizedEvent, values: _Values) -> None:
    sensor_id = values[0]
    taken = set(compress(normalized.starts_us, [sensor == sensor_id for sensor in normalized.value_sensor_ids]))
    for start in values[1]:
        if start in taken:
            raise Refusal(f"two signals give sensor {sensor_id} a value at {from_microseconds(start).isoformat()}")


def _signal_values(signal: EventSignal, mapping: OpenAdrSignal, site: Site) -> _Values:
    sensor = site.sensor(mapping.sensor_id)
    where = f"signal {signal.label}"
    unit = signal.unit or mapping.unit
    currency = signal.currency or mapping.currency
    if unit.startswith("/"):  # a 3.0.1 price in KWH/MWH without a currency: the program's currency
        unit = f"{currency or sensor.unit.partition('/')[0]}{unit}"
    factor = conversion_factor(where, unit, currency, sensor.unit, site)
    bounds = _bounds(where, mapping, sensor.unit, site)
    resolution = sensor.resolution // _MICROSECOND
    intervals = signal.intervals

    def label(position: int) -> str:  # built only for a message: a listing holds hundreds of thousands
        return f"{where}, interval {intervals[position].uid or position}"

    if isinstance(intervals, RegularIntervals):  # the others are the first one moved on by its duration
        first, end = _span(intervals[0], label, 0)
        step = end - first
        interval_starts = range(first, first + step * len(intervals), step)
        values = _signal_numbers(intervals, label, factor, bounds, sensor.unit)
        if step == resolution and (first - _ALIGNMENT) % resolution == 0:  # one slot per interval
            return sensor.id, list(interval_starts), resolution, values
        spans = [(start, start + step) for start in interval_starts]
    else:
        spans = [_span(interval, label, position) for position, interval in enumerate(intervals)]
        values = _signal_numbers(intervals, label, factor, bounds, sensor.unit)
    order = range(len(spans))
    if any(previous[0] > current[0] for previous, current in pairwise(spans)):  # a VTN may list them unordered
        order = sorted(order, key=lambda position: spans[position][0])
    for previous, current in pairwise(order):
        if spans[current][0] < spans[previous][1]:
            raise Refusal(f"{label(current)} overlaps {label(previous)} "
                          f"({from_microseconds(spans[current][0]).isoformat()} < "
                          f"{from_microseconds(spans[previous][1]).isoformat()})")
    starts, slot_values = _expand([(*spans[position], values[position]) for position in order], resolution)
    return sensor.id, starts, resolution, slot_values


def _span(interval: SignalInterval, label: Callable[[int], str], position: int) -> _Span:
    """[start, end) of `interval` in microseconds since the epoch, or Refusal: a naive or missing start, a
    duration outside (0, MAX_INTERVAL]."""
    start = interval.start
    if not isinstance(start, datetime):
        raise Refusal(f"{label(position)}: start {shown(start)} is not a datetime")
    if start.utcoffset() is None:  # no tzinfo, or one that gives no offset
        raise Refusal(f"{label(position)}: naive datetime {start.isoformat()} (no time zone)")
    if not _NO_TIME < interval.duration <= MAX_INTERVAL:
        raise Refusal(f"{label(position)}: duration {interval.duration} is not in (0, {MAX_INTERVAL}]")
    start_us = (start - _EPOCH) // _MICROSECOND
    return start_us, start_us + interval.duration // _MICROSECOND


def _bounds(where: str, mapping: OpenAdrSignal, sensor_unit: str, site: Site) -> tuple[float | None, float | None]:
    """The mapping's min/max (in the program's unit) in the sensor's unit, where values are checked."""
    if mapping.min_value is None and mapping.max_value is None:
        return None, None
    factor = conversion_factor(where, mapping.unit, mapping.currency, sensor_unit, site)
    return tuple(None if bound is None else bound * factor  # type: ignore[return-value]
                 for bound in (mapping.min_value, mapping.max_value))


def _signal_numbers(intervals: Sequence[SignalInterval], label: Callable[[int], str],
                    factor: float, bounds: tuple[float | None, float | None], unit: str) -> list[float]:
    """The intervals' values in the sensor's unit, or Refusal for the first that is not a finite number
    within the bounds once converted. The common case (every value an int or float, every one fine) is checked a
    list at a time, as a listing holds hundreds of thousands; the first bad one is then found value by value."""
    values = interval_values(intervals)
    if {type(value) for value in values} <= {int, float}:
        try:
            converted = [value * factor for value in values]
        except OverflowError:  # an int beyond any float: named below
            converted = []
        low, high = bounds
        if (len(converted) == len(values) and all(map(math.isfinite, converted))
                and (low is None or not converted or min(converted) >= low)
                and (high is None or not converted or max(converted) <= high)):
            return converted
    return [_converted(label, position, value, factor, bounds, unit) for position, value in enumerate(values)]


def _converted(label: Callable[[int], str], position: int, value: object, factor: float,
               bounds: tuple[float | None, float | None], unit: str) -> float:
    """`value` in the sensor's unit, or Refusal: checked after conversion, where it is stored."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Refusal(f"{label(position)}: value {shown(value)} is not a number")
    try:
        converted = float(value) * factor
    except OverflowError:  # an int beyond any float
        converted = math.inf
    if not math.isfinite(converted):
        raise Refusal(f"{label(position)}: value {shown(value)} is not finite in {unit}")
    low, high = bounds
    if low is not None and converted < low:
        raise Refusal(f"{label(position)}: value {converted:g} {unit} is below {low:g}")
    if high is not None and converted > high:
        raise Refusal(f"{label(position)}: value {converted:g} {unit} is above {high:g}")
    return converted


def _expand(spans: list[tuple[int, int, float]], resolution: int) -> tuple[list[int], list[float]]:
    """Slot starts and values: a slot (aligned on the resolution from 2000-01-01 UTC) takes the value of the
    interval its start lies in."""
    starts: list[int] = []
    values: list[float] = []
    for start, end, value in spans:
        first = start + (-(start - _ALIGNMENT) % resolution)
        slots = range(first, end, resolution)
        starts.extend(slots)
        values.extend([value] * len(slots))
    return starts, values


def conversion_factor(where: str, unit: str, currency: str | None, sensor_unit: str, site: Site) -> float:
    """Multiplier from the event's unit to the sensor's, or Refusal naming the unit or currency."""
    unit = unit.strip()
    sensor_currency, per, sensor_energy = sensor_unit.partition("/")
    if per and currency is not None and currency != sensor_currency:
        raise Refusal(f"{where}: unknown currency {currency!r} (expected {sensor_currency})")
    if unit == sensor_unit:
        return 1.0
    if per and sensor_energy in _ENERGY:
        unit_currency, unit_per, unit_energy = unit.partition("/")
        if not unit_per:
            raise Refusal(f"{where}: unknown unit {unit!r} for a price in {sensor_unit}")
        if unit_energy not in _ENERGY:
            raise Refusal(f"{where}: unknown unit {unit!r}")
        if unit_currency != sensor_currency:  # a stated currency was checked above
            raise Refusal(f"{where}: unknown currency {unit_currency!r} (expected {sensor_currency})")
        # price per MWh = price per kWh * 1000
        return _ENERGY[sensor_energy] / _ENERGY[unit_energy]
    if sensor_unit == "%" and unit in ("kW", "MW"):
        capacity_kw = site.grid_connection.import_capacity_kw
        return (1000.0 if unit == "MW" else 1.0) * 100.0 / capacity_kw
    if sensor_unit == "dimensionless" and unit == "level":  # "dimensionless" itself is the sensor's unit
        return 1.0
    raise Refusal(f"{where}: unknown unit {unit!r} for sensor unit {sensor_unit!r}")
