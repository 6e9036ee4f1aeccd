"""FRBC arithmetic, pure: what power an operation mode gives at a factor, which mode and factor give a planned
power within the ranges an RM declared, and a plan's slots as instructions.

Power here is in kW at the grid side (charging > 0), as the plan writes it; an RM declares its power ranges in W
(S2's unit) per commodity quantity. Only the electric ranges count; a mode's power at factor f is
``start + f · (end − start)`` of the element that applies at the present fill level.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from s2python.common import CommodityQuantity
from s2python.frbc import FRBCOperationMode, FRBCOperationModeElement, FRBCSystemDescription

ELECTRIC = {CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC, CommodityQuantity.ELECTRIC_POWER_L1,
            CommodityQuantity.ELECTRIC_POWER_L2, CommodityQuantity.ELECTRIC_POWER_L3}
# kW below which two powers are the same setpoint (a plan's rounding noise is not a new instruction)
POWER_TOLERANCE_KW = 1e-3


class OutsideRangesError(ValueError):
    """A power, mode or factor the RM's declared ranges do not allow; the message names the device and mode."""


@dataclass(frozen=True)
class ModeRange:
    """One operation mode of one actuator at the present fill level: the power it spans, in kW."""

    actuator_id: str
    mode_id: str
    label: str
    start_kw: float
    end_kw: float
    # fill level units per second at factor 0 and 1 (S2's fill_rate): how fast the storage fills in this mode
    fill_rate_start: float = 0.0
    fill_rate_end: float = 0.0

    def power_kw(self, factor: float) -> float:
        return self.start_kw + factor * (self.end_kw - self.start_kw)

    def fill_rate(self, factor: float) -> float:
        return self.fill_rate_start + factor * (self.fill_rate_end - self.fill_rate_start)

    def contains(self, power_kw: float) -> bool:
        low, high = sorted((self.start_kw, self.end_kw))
        return low - POWER_TOLERANCE_KW <= power_kw <= high + POWER_TOLERANCE_KW

    def factor_for(self, power_kw: float) -> float:
        span = self.end_kw - self.start_kw
        if abs(span) < 1e-12:
            return 0.0
        return min(1.0, max(0.0, (power_kw - self.start_kw) / span))


@dataclass(frozen=True)
class Setpoint:
    """A planned power from `execution_time` on, as the mode and factor that give it."""

    execution_time: datetime
    power_kw: float
    mode: ModeRange
    factor: float
    clamped_from_kw: float | None = None  # the plan asked for more than the RM declared: this is what it asked


def _electric_kw(element: FRBCOperationModeElement) -> tuple[float, float] | None:
    # three phases declared apart add up; one symmetric range is the whole power
    ranges = [r for r in element.power_ranges if r.commodity_quantity in ELECTRIC]
    if not ranges:
        return None
    return sum(r.start_of_range for r in ranges) / 1000.0, sum(r.end_of_range for r in ranges) / 1000.0


def _element_at(mode: FRBCOperationMode, fill_level: float | None) -> FRBCOperationModeElement:
    """The element whose fill-level range holds the fill level (the nearest one when none does, or it is unknown)."""
    if fill_level is None:
        return mode.elements[0]

    def distance(element: FRBCOperationModeElement) -> float:
        low, high = element.fill_level_range.start_of_range, element.fill_level_range.end_of_range
        return 0.0 if low <= fill_level <= high else min(abs(fill_level - low), abs(fill_level - high))

    return min(mode.elements, key=distance)


def mode_ranges(description: FRBCSystemDescription, fill_level: float | None) -> list[ModeRange]:
    """Every normal operation mode of every actuator with its electric power span at this fill level."""
    ranges = []
    for actuator in description.actuators:
        for mode in actuator.operation_modes:
            if mode.abnormal_condition_only:
                continue
            element = _element_at(mode, fill_level)
            span = _electric_kw(element)
            if span is not None:
                ranges.append(ModeRange(str(actuator.id), str(mode.id), mode.diagnostic_label or str(mode.id),
                                        *span, element.fill_rate.start_of_range, element.fill_rate.end_of_range))
    return ranges


def power_limits_kw(description: FRBCSystemDescription, fill_level: float | None) -> tuple[float, float]:
    """(most discharge, most charge) in kW the RM declared at this fill level: what the plan may ask of it."""
    ranges = mode_ranges(description, fill_level)
    if not ranges:
        return 0.0, 0.0
    return (min(min(r.start_kw, r.end_kw) for r in ranges), max(max(r.start_kw, r.end_kw) for r in ranges))


def setpoint_for(device: str, description: FRBCSystemDescription, fill_level: float | None,
                 execution_time: datetime, power_kw: float) -> Setpoint:
    """The mode and factor giving `power_kw`; a power beyond every declared range is clamped to the nearest
    declared limit (and says so), so an instruction outside the ranges is never built."""
    ranges = mode_ranges(description, fill_level)
    if not ranges:
        raise OutsideRangesError(f"S2 device {device}: its system description declares no electric power range")
    containing = [r for r in ranges if r.contains(power_kw)]
    clamped_from = None
    target = power_kw
    if not containing:
        low, high = power_limits_kw(description, fill_level)
        target = min(high, max(low, power_kw))
        clamped_from = power_kw
        containing = [r for r in ranges if r.contains(target)]
    # the narrowest mode that holds the power: an idle mode for 0 rather than 0 % of a charge mode's range
    mode = min(containing, key=lambda r: (abs(r.end_kw - r.start_kw), r.mode_id))
    return Setpoint(execution_time, target, mode, mode.factor_for(target), clamped_from)


def check_within_ranges(device: str, description: FRBCSystemDescription, fill_level: float | None,
                        actuator_id: str, mode_id: str, factor: float) -> float:
    """The power an instruction gives under the RM's current description; OutsideRangesError when its actuator or
    mode is not (or no longer) declared, or its factor is outside [0, 1]."""
    if not 0.0 <= factor <= 1.0:
        raise OutsideRangesError(f"S2 device {device}: operation_mode_factor {factor} outside [0, 1]")
    for mode in mode_ranges(description, fill_level):
        if mode.actuator_id == actuator_id and mode.mode_id == mode_id:
            return mode.power_kw(factor)
    raise OutsideRangesError(f"S2 device {device}: actuator {actuator_id} has no operation mode {mode_id} in its "
                             "current system description")


def setpoints_for_plan(device: str, description: FRBCSystemDescription, fill_level: float | None,
                       slots: Sequence[tuple[datetime, float]]) -> list[Setpoint]:
    """A plan's (slot start, kW) as setpoints, one per change of power: an instruction stays in force until the
    next, so a run of equal slots is one instruction."""
    setpoints: list[Setpoint] = []
    for start, power in sorted(slots):
        point = setpoint_for(device, description, fill_level, start, power)
        if setpoints and abs(setpoints[-1].power_kw - point.power_kw) <= POWER_TOLERANCE_KW \
                and setpoints[-1].mode == point.mode:
            continue
        setpoints.append(point)
    return setpoints


def fill_trajectory(setpoints: Sequence[Setpoint], fill_level: float, slot_starts: Sequence[datetime],
                    fill_range: tuple[float, float]) -> list[float]:
    """The fill level the RM should have at each slot start if it follows the setpoints from `fill_level` at the
    first slot start: each setpoint's fill rate (declared per mode) integrated, held to the storage's range."""
    levels, level = [], fill_level
    for index, start in enumerate(slot_starts):
        levels.append(level)
        if index + 1 == len(slot_starts):
            break
        due = [point for point in setpoints if point.execution_time <= start]
        rate = due[-1].mode.fill_rate(due[-1].factor) if due else 0.0
        seconds = (slot_starts[index + 1] - start).total_seconds()
        level = min(fill_range[1], max(fill_range[0], level + rate * seconds))
    return levels


def planned_at(trajectory: Sequence[tuple[datetime, float]], moment: datetime) -> float | None:
    """The planned fill level at `moment`, linear between slot starts; None outside the trajectory."""
    for (start, low), (end, high) in itertools.pairwise(trajectory):
        if start <= moment <= end:
            return low + (high - low) * (moment - start).total_seconds() / (end - start).total_seconds()
    return None


def round_trip_efficiency(description: FRBCSystemDescription, fill_level: float | None) -> float | None:
    """Charge efficiency (fill gained per kWh drawn, at full charge power) times discharge efficiency (kWh
    delivered per fill lost, at full discharge power), from the declared fill rates; None when the modes do not
    give both within (0, 1] (fill levels in other units than kWh, say)."""
    ranges = mode_ranges(description, fill_level)
    charge = max(ranges, key=lambda r: r.end_kw, default=None)
    discharge = min(ranges, key=lambda r: r.start_kw, default=None)
    if charge is None or discharge is None or charge.end_kw <= 0 or discharge.start_kw >= 0:
        return None
    filled = charge.fill_rate_end * 3600 / charge.end_kw
    drained = -discharge.fill_rate_start * 3600
    delivered = -discharge.start_kw / drained if drained > 0 else 0.0
    efficiency = filled * delivered
    return efficiency if 0 < filled <= 1 and 0 < delivered <= 1 else None
