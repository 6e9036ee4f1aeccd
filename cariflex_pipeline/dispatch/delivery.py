"""Delivery rules of the outbox that are plain arithmetic over entries: timeouts, backoff, and whether a station
holds a confirmed profile (what the `ocpp_dispatch` check reports).

At least once, never twice in effect: an entry sent without an answer within `answer_deadline` becomes
`unanswered`; a failed, unroutable or unanswered attempt is followed by the next one only after a doubling
delay (`retry_base` .. `retry_max`) and at most `max_attempts` times for the same effect; each attempt is rebuilt
from the current plan under the station's same profile id, so the station replaces what it may already hold
instead of stacking it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the type hints: outbox imports this module
    from cariflex_pipeline.dispatch.outbox import OutboxEntry


@dataclass(frozen=True)
class DeliveryPolicy:
    """How long an answer may take, how retries back off, and when an unconfirmed station is an error."""

    answer_deadline: timedelta = timedelta(minutes=2)
    retry_base: timedelta = timedelta(seconds=30)
    retry_max: timedelta = timedelta(minutes=15)
    max_attempts: int = 8
    unconfirmed_error_after: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        if self.answer_deadline <= timedelta(0):
            raise ValueError(f"answer_deadline {self.answer_deadline}: expected a positive time")
        if self.retry_base <= timedelta(0) or self.retry_max < self.retry_base:
            raise ValueError(f"retry delays {self.retry_base}..{self.retry_max}: expected 0 < base <= max")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts {self.max_attempts}: expected at least 1")

    def retry_delay(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th undelivered attempt: base, 2 x base, 4 x base ... capped at max."""
        doubling = self.retry_base * (2 ** min(max(attempts - 1, 0), 20))
        return min(doubling, self.retry_max)


@dataclass(frozen=True)
class StationDelivery:
    """Whether a station follows the profile we want it to follow, and since when it does not."""

    station_id: str
    state: str  # confirmed | unconfirmed | nothing_wanted
    confirmed: OutboxEntry | None  # the newest accepted profile still valid
    latest: OutboxEntry | None  # the newest entry of the station
    unconfirmed_since: datetime | None  # creation of the first entry after the last accepted one
    detail: str


def station_delivery(station_id: str, entries: Iterable[OutboxEntry], now: datetime) -> StationDelivery:
    """The delivery state of one station from its outbox entries (any order)."""
    rows = sorted(entries, key=lambda e: e.id)
    accepted = [e for e in rows if e.status == "accepted"]
    last_accepted = accepted[-1] if accepted else None
    newer = [e for e in rows if last_accepted is None or e.id > last_accepted.id]
    latest = rows[-1] if rows else None
    in_force = last_accepted if last_accepted is not None and last_accepted.valid_to > now else None
    if not newer:
        if in_force is not None:
            return StationDelivery(station_id, "confirmed", in_force, latest, None,
                                   f"profile {in_force.profile_id} accepted (outbox #{in_force.id}), valid to "
                                   f"{in_force.valid_to.isoformat()}")
        return StationDelivery(station_id, "nothing_wanted", None, latest, None,
                               "no profile wanted (nothing planned)" if latest is None else
                               f"last profile (outbox #{latest.id}) ran out at {latest.valid_to.isoformat()}")
    newest = newer[-1]
    reason = f": {newest.status_reason}" if newest.status_reason else ""
    return StationDelivery(station_id, "unconfirmed", in_force, newest, newer[0].created_at,
                           f"outbox #{newest.id} {newest.status} after {newest.attempts} attempt(s){reason}")
