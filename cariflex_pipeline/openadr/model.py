"""Protocol-neutral view of an OpenADR event: what the 2.0b and 3.0.1 parsers both produce."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

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


@dataclass(frozen=True)
class EventSignal:
    """A 2.0b eiEventSignal (name + type) or a 3.0.1 payload type, with the unit the event states, if any."""

    intervals: tuple[SignalInterval, ...]
    signal_name: str | None = None
    signal_type: str | None = None
    payload_type: str | None = None
    unit: str | None = None
    currency: str | None = None
    # The producer's promise that interval k starts at intervals[0].start + k x intervals[0].duration and lasts
    # that duration (the 3.0.1 parser knows it of intervals that follow the event's intervalPeriod): then
    # normalization and the day count take the times from the first interval alone, where a listing of
    # thousands of events would otherwise spend most of its time on datetime arithmetic.
    back_to_back: bool = False

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

        signals = tuple(
            replace(
                signal,
                intervals=tuple(replace(interval, start=move(interval.start)) for interval in signal.intervals),
            )
            for signal in self.signals
        )
        return replace(
            self,
            event_id=event_id,
            signals=signals,
            created=move(self.created),
            modified=move(self.modified),
        )
