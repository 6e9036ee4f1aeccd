"""The slot grid shared by the problem, its resolved form and the schedule: slot t covers
``[start + t·resolution, start + (t+1)·resolution)``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING


class SlotGrid:
    """Slot arithmetic for a class that has ``start``, ``resolution`` and ``n_slots``."""

    if TYPE_CHECKING:
        start: datetime
        resolution: timedelta

        @property
        def n_slots(self) -> int: ...

    @property
    def dt_h(self) -> float:
        """Slot length in hours."""
        return self.resolution.total_seconds() / 3600.0

    def slot_start(self, slot: int) -> datetime:
        return self.start + slot * self.resolution

    def slot_starts(self) -> list[datetime]:
        return [self.slot_start(t) for t in range(self.n_slots)]

    def describe_slots(self, slots: list[int]) -> str:
        """'slots 4-7 [09:00 .. 10:00), 12 [...)': contiguous runs with their times, for error messages."""
        runs: list[tuple[int, int]] = []
        for slot in slots:
            if runs and runs[-1][1] == slot - 1:
                runs[-1] = (runs[-1][0], slot)
            else:
                runs.append((slot, slot))
        parts = []
        for first, last in runs:
            label = f"{first}" if first == last else f"{first}-{last}"
            parts.append(f"{label} [{self.slot_start(first).isoformat()} .. {self.slot_start(last + 1).isoformat()})")
        return "slots " + ", ".join(parts)
