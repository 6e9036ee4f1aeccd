"""FRBC arithmetic: any planned power becomes a mode and factor within the RM's declared ranges (clamped, and
saying so, beyond them); a stored instruction the current description no longer allows is caught before sending."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cariflex_pipeline.s2.frbc import (
    POWER_TOLERANCE_KW,
    OutsideRangesError,
    check_within_ranges,
    fill_trajectory,
    power_limits_kw,
    setpoint_for,
    setpoints_for_plan,
)
from cariflex_pipeline_tests.s2.conftest import NOW
from cariflex_pipeline_tests.s2.simulators import Storage, StorageControl

DEVICE = StorageControl(Storage(13.5, 5.0, 4.0, 6.75), NOW)
DESCRIPTION = DEVICE.system_description()


@given(st.floats(min_value=-1e5, max_value=1e5, allow_nan=False))
def test_any_power_becomes_a_setpoint_within_the_declared_ranges(power: float) -> None:
    point = setpoint_for("battery_01", DESCRIPTION, 6.75, NOW, power)
    low, high = power_limits_kw(DESCRIPTION, 6.75)
    assert (low, high) == (-4.0, 5.0)
    assert 0.0 <= point.factor <= 1.0
    # within a watt of what was asked (a watt from zero is the idle mode), and never beyond the declared limits
    assert check_within_ranges("battery_01", DESCRIPTION, 6.75, point.mode.actuator_id, point.mode.mode_id,
                               point.factor) == pytest.approx(min(high, max(low, power)), abs=POWER_TOLERANCE_KW)
    assert low <= point.mode.power_kw(point.factor) <= high
    assert (point.clamped_from_kw is None) == (low - 1e-3 <= power <= high + 1e-3)


def test_zero_is_the_idle_mode_not_zero_percent_of_charging() -> None:
    point = setpoint_for("battery_01", DESCRIPTION, 6.75, NOW, 0.0)
    assert (point.mode.label, point.factor) == ("idle", 0.0)


def test_an_instruction_the_description_no_longer_allows_is_caught() -> None:
    actuator = str(DEVICE.actuator_id)
    with pytest.raises(OutsideRangesError, match=r"^S2 device battery_01: operation_mode_factor 1.5 outside \[0, 1\]$"):
        check_within_ranges("battery_01", DESCRIPTION, 6.75, actuator, str(DEVICE.modes["charge"]), 1.5)
    with pytest.raises(OutsideRangesError, match="has no operation mode gone in its current system description"):
        check_within_ranges("battery_01", DESCRIPTION, 6.75, actuator, "gone", 0.5)


def test_equal_slots_are_one_setpoint_and_the_fill_level_integrates_the_fill_rates() -> None:
    slot = timedelta(minutes=15)
    slots = [(NOW + i * slot, power) for i, power in enumerate([5.0, 5.0, -4.0, 0.0, 0.0])]
    points = setpoints_for_plan("battery_01", DESCRIPTION, 6.75, slots)
    assert [(p.execution_time, p.mode.label, p.factor) for p in points] == [
        (NOW, "charge", 1.0), (NOW + 2 * slot, "discharge", 0.0), (NOW + 3 * slot, "idle", 0.0)]
    levels = fill_trajectory(points, 6.75, [NOW + i * slot for i in range(6)], (0.0, 13.5))
    assert levels == pytest.approx([6.75, 8.0, 9.25, 8.25, 8.25, 8.25])
