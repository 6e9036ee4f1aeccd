"""Profile builder and validation: hand-computable profiles, CitrineOS's rules, violations named."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from cariflex_pipeline.dispatch import (
    ProfileBuildError,
    ProfileConfig,
    ProfileValidationError,
    StationTarget,
    build_profile,
    profile_id_for,
    profiles_from_plan,
    request_violations,
    validate_request,
)
from cariflex_pipeline_tests.dispatch.conftest import NOW, plan_frame

SLOT = timedelta(minutes=15)
START = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)  # the slot containing NOW (13:07:30)


def _plan(values: list[float], start: datetime = START) -> dict[datetime, float]:
    return {start + SLOT * index: value for index, value in enumerate(values)}


def _periods(profile) -> list[dict]:
    return profile.payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]


def test_equal_slots_merged_limits_in_watts_and_tenths() -> None:
    plan = _plan([7.33333, 7.33333, 11.0, 11.0, 11.0, 0.0, 0.0, 22.0])
    profile = build_profile(StationTarget("CP001", 1, 22.0), plan, now=NOW)
    assert _periods(profile) == [
        {"startPeriod": 0, "limit": 7333.3},
        {"startPeriod": 1800, "limit": 11000.0},
        {"startPeriod": 4500, "limit": 0.0},
        {"startPeriod": 6300, "limit": 22000.0},
    ]
    schedule = profile.payload["chargingProfile"]["chargingSchedule"][0]
    assert schedule["chargingRateUnit"] == "W"
    assert schedule["startSchedule"] == "2026-11-28T13:00:00Z"
    assert schedule["duration"] == 8 * 900
    validate_request(profile.payload, station_id="CP001", now=NOW)


def test_time_window_on_the_grid_valid_from_not_in_future_valid_to_at_horizon_end() -> None:
    # plan starts two slots in the past: those are dropped; the horizon ends at 15:00
    plan = _plan([5.0] * 10, start=START - 2 * SLOT)
    profile = build_profile(StationTarget("CP002", 1, 22.0), plan, now=NOW)
    charging = profile.payload["chargingProfile"]
    assert charging["validFrom"] == "2026-11-28T13:00:00Z"
    assert datetime.fromisoformat(charging["validFrom"].replace("Z", "+00:00")) <= NOW
    assert charging["validTo"] == "2026-11-28T15:00:00Z"
    assert charging["chargingSchedule"][0]["startSchedule"] == "2026-11-28T13:00:00Z"
    assert _periods(profile) == [{"startPeriod": 0, "limit": 5000.0}]
    # a later horizon end fills the unplanned slots with 0
    longer = build_profile(StationTarget("CP002", 1, 22.0), plan, now=NOW,
                           horizon_end=datetime(2026, 11, 28, 16, 0, tzinfo=UTC))
    assert _periods(longer) == [{"startPeriod": 0, "limit": 5000.0}, {"startPeriod": 7200, "limit": 0.0}]


def test_tx_profile_only_with_a_known_transaction_and_policy() -> None:
    plan = _plan([3.0] * 4)
    with_tx = build_profile(StationTarget("CP003", 1, 22.0, transaction_id="tx-42"), plan, now=NOW)
    assert with_tx.payload["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"
    assert with_tx.payload["chargingProfile"]["transactionId"] == "tx-42"
    assert with_tx.payload["evseId"] == 1
    without = build_profile(StationTarget("CP003", 1, 22.0), plan, now=NOW)
    assert without.payload["chargingProfile"]["chargingProfilePurpose"] == "TxDefaultProfile"
    assert "transactionId" not in without.payload["chargingProfile"]
    forced_default = build_profile(StationTarget("CP003", 1, 22.0, transaction_id="tx-42"), plan, now=NOW,
                                   config=ProfileConfig(purpose_policy="tx_default_only", tx_default_evse_id=0))
    assert forced_default.payload["chargingProfile"]["chargingProfilePurpose"] == "TxDefaultProfile"
    assert forced_default.payload["evseId"] == 0
    with pytest.raises(ProfileBuildError, match="CP003"):
        build_profile(StationTarget("CP003", 1, 22.0), plan, now=NOW, config=ProfileConfig(purpose_policy="tx_only"))


def test_amps_with_phases_and_voltage() -> None:
    config = ProfileConfig(rate_unit="A", number_phases=3, voltage=230.0)
    profile = build_profile(StationTarget("CP006", 1, 11.0), _plan([11.0, 4.0]), now=NOW, config=config)
    assert profile.payload["chargingProfile"]["chargingSchedule"][0]["chargingRateUnit"] == "A"
    # 11000 W / (3 x 230 V) = 15.94 A -> 15.9 ; 4000 / 690 = 5.797 -> 5.8
    assert _periods(profile) == [{"startPeriod": 0, "limit": 15.9, "numberPhases": 3},
                                 {"startPeriod": 900, "limit": 5.8, "numberPhases": 3}]
    validate_request(profile.payload, station_id="CP006", now=NOW)
    with pytest.raises(ValueError, match="number_phases"):
        ProfileConfig(rate_unit="A")


def test_limits_clipped_to_the_charge_point() -> None:
    profile = build_profile(StationTarget("CP007", 1, 11.0), _plan([15.0, -2.0]), now=NOW)
    assert _periods(profile) == [{"startPeriod": 0, "limit": 11000.0}, {"startPeriod": 900, "limit": 0.0}]
    assert profile.notes and "clipped" in profile.notes[0]


def test_profile_ids_stable_per_station_and_stack_level(site) -> None:
    ids = {cp.id: profile_id_for(cp.id, 1) for cp in site.charge_points}
    assert len(set(ids.values())) == len(ids)
    assert profile_id_for("CP001", 1) == ids["CP001"]
    assert profile_id_for("CP001", 2) != ids["CP001"]
    first = build_profile(StationTarget("CP001", 1, 22.0), _plan([1.0]), now=NOW)
    later = build_profile(StationTarget("CP001", 1, 22.0), _plan([2.0, 3.0]), now=NOW + timedelta(hours=1),
                          horizon_end=START + timedelta(hours=3))
    assert first.profile_id == later.profile_id == ids["CP001"]
    assert all(0 < value < 2**31 for value in ids.values())


def test_more_than_1024_periods_is_a_named_violation() -> None:
    minute = timedelta(minutes=1)
    plan = {START + minute * i: (1.0 if i % 2 else 2.0) for i in range(1100)}
    profile = build_profile(StationTarget("CP001", 1, 22.0), plan, now=NOW, resolution=minute)
    with pytest.raises(ProfileValidationError) as caught:
        validate_request(profile.payload, station_id="CP001", now=NOW)
    assert caught.value.station_id == "CP001"
    assert any("chargingSchedulePeriod" in v and "too long" in v for v in caught.value.violations)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: p["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0].update(limit=1.23),
         "chargingSchedulePeriod[0].limit: 1.23 is not a multiple of 0.1"),
        (lambda p: p["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0].update(startPeriod=60),
         "chargingSchedulePeriod[0].startPeriod: must be 0"),
        (lambda p: p["chargingProfile"].update(validFrom="2026-11-28T14:00:00Z"),
         "validFrom: 2026-11-28T14:00:00Z lies in the future"),
        (lambda p: p["chargingProfile"].update(validTo="2026-11-28T12:00:00Z"),
         "validTo: 2026-11-28T12:00:00Z does not lie in the future"),
        (lambda p: p["chargingProfile"].update(chargingProfilePurpose="TxProfile"),
         "transactionId: required for TxProfile"),
        (lambda p: p["chargingProfile"]["chargingSchedule"][0].pop("startSchedule"),
         "startSchedule: required for Absolute"),
        (lambda p: p["chargingProfile"].update(stackLevel="1"), "$.chargingProfile.stackLevel: '1' is not of type"),
        (lambda p: p["chargingProfile"].update(validFrom="yesterday"), "'yesterday' is not a 'date-time'"),
        (lambda p: p["chargingProfile"]["chargingSchedule"][0].update(chargingSchedulePeriod=[]),
         "chargingSchedulePeriod: [] should be non-empty"),
        (lambda p: p.update(evseId=2**31), "$.evseId: 2147483648 is outside int32"),
    ],
)
def test_each_violation_is_named(mutate, expected: str) -> None:
    profile = build_profile(StationTarget("CP004", 1, 22.0), _plan([4.0, 5.0]), now=NOW)
    payload = copy.deepcopy(profile.payload)
    mutate(payload)
    violations = request_violations(payload, now=NOW)
    assert any(expected in violation for violation in violations), violations
    assert request_violations(profile.payload, now=NOW) == []


def test_plan_to_profiles_keeps_invalid_stations_out(site) -> None:
    frame = plan_frame(site, START, {"CP001": [7.0] * 8, "CP002": [3.0] * 8})
    result = profiles_from_plan(site, frame, now=NOW, transactions={"CP002": "tx-9"})
    assert [p.station_id for p in result.profiles] == ["CP001", "CP002"]
    assert result.profiles[1].purpose == "TxProfile"
    assert result.invalid == {}
    # a transaction id longer than the schema's 36 characters: never sent, the violation is named
    broken = profiles_from_plan(site, frame, now=NOW, transactions={"CP002": "x" * 40})
    assert [p.station_id for p in broken.profiles] == ["CP001"]
    assert any("transactionId" in v and "too long" in v for v in broken.invalid["CP002"])
