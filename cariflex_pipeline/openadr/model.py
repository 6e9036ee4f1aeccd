"""Protocol-neutral view of an OpenADR event: what the 2.0b and 3.0.1 parsers both produce."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, overload

from cariflex_pipeline.openadr.limits import shown

Protocol = Literal["2.0b", "3.0.1"]


@dataclass(slots=True)
class SignalInterval:
    """One interval of a signal. `start` may be naive or `value` of any type here: normalization checks.

    Not frozen, unlike the event that holds it: a listing holds hundreds of thousands of intervals, and a frozen
    dataclass takes three times as long to build. Nothing changes one after parsing (`replace` makes new ones)."""

    start: datetime | Any
    duration: timedelta
    value: Any
    uid: str = ""


@dataclass(frozen=True, slots=True)
class RegularIntervals(Sequence[SignalInterval]):
    """Intervals back to back from `start`, each `duration` long, held as columns: how a 3.0.1 event's intervals
    without a period of their own are laid out. A listing holds hundreds of thousands of intervals; building an
    object (and a start time) for each was most of the time its parse and normalization took, so normalization
    and the day count read `start`, `duration` and `values` directly, and an interval is built only for whoever
    asks for one (the reader of a message, the 2.0b VEN's end-of-event check)."""

    start: datetime
    duration: timedelta
    values: tuple[Any, ...]
    ids: tuple[Any, ...]  # each interval's own `id` as the VTN sent it (named in messages)

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> SignalInterval: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[SignalInterval, ...]: ...

    def __getitem__(self, index: int | slice) -> SignalInterval | tuple[SignalInterval, ...]:
        if isinstance(index, slice):
            return tuple(self[position] for position in range(len(self))[index])
        position = range(len(self))[index]  # IndexError, and negative indices, as a tuple has them
        return SignalInterval(self.start + position * self.duration, self.duration, self.values[position],
                              interval_uid(self.ids[position]))

    def __iter__(self) -> Iterator[SignalInterval]:
        return (self[position] for position in range(len(self)))

    def end(self) -> datetime:
        return self.start + len(self) * self.duration


def interval_uid(own_id: Any) -> str:
    """How an interval is named in messages: its `id` (a VTN may send anything there, shown cut short)."""
    return str(own_id) if type(own_id) is int else shown(own_id, 40)


def interval_values(intervals: Sequence[SignalInterval]) -> list[Any]:
    """The values of `intervals` in order, without building an interval each for `RegularIntervals`."""
    if isinstance(intervals, RegularIntervals):
        return list(intervals.values)
    return [interval.value for interval in intervals]


Intervals = tuple[SignalInterval, ...] | RegularIntervals


@dataclass(frozen=True)
class EventSignal:
    """A 2.0b eiEventSignal (name + type) or a 3.0.1 payload type, with the unit the event states, if any."""

    intervals: Intervals
    signal_name: str | None = None
    signal_type: str | None = None
    payload_type: str | None = None
    unit: str | None = None
    currency: str | None = None

    @property
    def back_to_back(self) -> bool:
        """The producer's promise that interval k starts at the first's start + k x its duration and lasts that
        duration: then normalization and the day count take the times from `RegularIntervals` alone."""
        return isinstance(self.intervals, RegularIntervals)

    @property
    def label(self) -> str:
        if self.payload_type is not None:
            return self.payload_type
        return f"{self.signal_name}/{self.signal_type}"


@dataclass(frozen=True)
class OpenAdrEvent:
    """An event as received from one VTN."""

    protocol: Protocol
    vtn_id: str
    event_id: str
    modification_number: int
    status: str  # 2.0b: far, near, active, completed, cancelled; 3.0.1: "active" (deleted events are absent)
    program: str | None
    response_required: bool
    signals: tuple[EventSignal, ...]
    raw_payload: str
    created: datetime | None = None
    modified: datetime | None = None
    problems: tuple[str, ...] = field(default=())  # found while parsing (naive time, bad field): rejected
    # 3.0.1 without modificationDateTime: the VTN gives no version, so ingestion numbers it (`versions`)
    sequenced: bool = False

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"

    @property
    def key(self) -> tuple[str, int]:
        return (self.event_id, self.modification_number)

    def shifted(self, delta: timedelta, event_id: str) -> OpenAdrEvent:
        """The same event moved in time by `delta` under another id (used by the bundled sample feed)."""

        def move(moment: Any) -> Any:
            return moment + delta if isinstance(moment, datetime) else moment

        def moved(intervals: Intervals) -> Intervals:
            if isinstance(intervals, RegularIntervals):
                return replace(intervals, start=move(intervals.start))
            return tuple(replace(interval, start=move(interval.start)) for interval in intervals)

        signals = tuple(replace(signal, intervals=moved(signal.intervals)) for signal in self.signals)
        return replace(
            self,
            event_id=event_id,
            signals=signals,
            created=move(self.created),
            modified=move(self.modified),
        )
