"""Profile builder and validation: hand-computable profiles, CitrineOS 1.8.3's own schema and rules, violations
named, and a property: whatever the plan, the profiles pass the schema files CitrineOS validates with."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cariflex_pipeline.dispatch import (
    ProfileBuildError,
    ProfileConfig,
    ProfileValidationError,
    StationTarget,
    build_profile,
    peer_schemas,
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


def test_equal_slots_merged_limits_in_whole_watts_rounded_down() -> None:
    plan = _plan([7.33399, 7.33399, 11.0, 11.0, 11.0, 0.0, 0.0, 22.0])
    profile = build_profile(StationTarget("CP001", 1, 22.0), plan, now=NOW)
    assert _periods(profile) == [
        {"startPeriod": 0, "limit": 7333.0},
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
    # 11000 W / (3 x 230 V) = 15.94 A -> 15.9 ; 4000 / 690 = 5.797 -> 5.7, rounded down (never above the plan)
    assert _periods(profile) == [{"startPeriod": 0, "limit": 15.9, "numberPhases": 3},
                                 {"startPeriod": 900, "limit": 5.7, "numberPhases": 3}]
    validate_request(profile.payload, station_id="CP006", now=NOW)
    with pytest.raises(ValueError, match="number_phases"):
        ProfileConfig(rate_unit="A")


def test_limits_clipped_to_the_charge_point() -> None:
    profile = build_profile(StationTarget("CP007", 1, 11.0), _plan([15.0, -2.0]), now=NOW)
    assert _periods(profile) == [{"startPeriod": 0, "limit": 11000.0}, {"startPeriod": 900, "limit": 0.0}]
    assert profile.notes and "clipped" in profile.notes[0]


def test_profile_ids_stable_per_station_stack_level_and_purpose(site) -> None:
    ids = {cp.id: profile_id_for(cp.id, 1) for cp in site.charge_points}
    tx_ids = {cp.id: profile_id_for(cp.id, 1, "TxProfile") for cp in site.charge_points}
    assert len(set(ids.values()) | set(tx_ids.values())) == 2 * len(ids)
    assert profile_id_for("CP001", 1) == ids["CP001"]
    assert profile_id_for("CP001", 2) != ids["CP001"]
    tx = build_profile(StationTarget("CP001", 1, 22.0, transaction_id="tx-1"), _plan([1.0]), now=NOW)
    assert tx.profile_id == tx_ids["CP001"]  # never replaces the TxDefaultProfile on the station
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
        # a multiple of 0.1 as a decimal, but not in floating point: CitrineOS's AJV drops it
        (lambda p: p["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0].update(limit=8967.3),
         "chargingSchedulePeriod[0].limit: 8967.3 is not a multiple of 0.1 (CitrineOS 1.8.3"),
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
        (lambda p: p.update(evseId=2**31), "$.evseId: 2147483648 is greater than the maximum of 2147483647"),
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


def test_a_replan_in_the_same_slot_outlasts_the_profile_the_station_may_hold() -> None:
    """CitrineOS refuses a profile whose validTo does not end after the active one of the same stack level and
    purpose: a second run in the slot moves validTo a second past it, the last period continuing."""
    first = build_profile(StationTarget("CP002", 1, 22.0), _plan([5.0] * 8), now=NOW)
    first_to = datetime.fromisoformat(first.payload["chargingProfile"]["validTo"].replace("Z", "+00:00"))
    again = build_profile(StationTarget("CP002", 1, 22.0), _plan([6.0] * 8), now=NOW + timedelta(minutes=3),
                          outlast={"TxDefaultProfile": first_to})
    charging = again.payload["chargingProfile"]
    assert (first.payload["chargingProfile"]["validTo"], charging["validTo"]) == (
        "2026-11-28T15:00:00Z", "2026-11-28T15:00:01Z")
    assert charging["chargingSchedule"][0]["duration"] == 2 * 3600 + 1
    assert _periods(again) == [{"startPeriod": 0, "limit": 6000.0}]
    # only the same purpose counts: a TxProfile is not held back by the TxDefaultProfile's validTo
    tx = build_profile(StationTarget("CP002", 1, 22.0, transaction_id="t"), _plan([6.0] * 8), now=NOW,
                       outlast={"TxDefaultProfile": first_to})
    assert tx.payload["chargingProfile"]["validTo"] == "2026-11-28T15:00:00Z"


_power = st.floats(min_value=-5.0, max_value=400.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(kw=st.lists(_power, min_size=1, max_size=96), unit=st.sampled_from(["W", "A"]),
       phases=st.integers(min_value=1, max_value=3), voltage=st.floats(min_value=100.0, max_value=277.0),
       max_kw=st.floats(min_value=1.0, max_value=350.0))
def test_any_plan_gives_profiles_that_pass_citrineos_schema(kw, unit, phases, voltage, max_kw) -> None:
    """Whatever the powers (W or A, 1-3 phases), every limit passes CitrineOS 1.8.3's floating-point multipleOf
    and int32 rules, and none exceeds the plan or the charge point."""
    config = ProfileConfig(rate_unit=unit, number_phases=phases if unit == "A" else None,
                           voltage=voltage if unit == "A" else None)
    profile = build_profile(StationTarget("CP001", 1, max_kw), _plan(kw), now=NOW, config=config)
    assert peer_schemas.violations("SetChargingProfile", profile.payload) == []
    assert request_violations(profile.payload, now=NOW) == []
    per_unit = 1000.0 if unit == "W" else 1000.0 / (phases * voltage)
    limits = dict(profile.limits)
    current = None
    for index, value in enumerate(kw):
        current = limits.get(index * 900, current)
        allowed = min(max(value, 0.0), max_kw) * per_unit
        # the largest schema-passing value below: whole W; in A at most 3 tenths down (8.26 -> 8.0, since 8.2 / 0.1
        # and 8.1 / 0.1 are not whole in floating point; measured over 0..10,000 A, 3 is the widest gap)
        step = 1.0 if unit == "W" else 0.4
        assert allowed - step - 1e-6 <= current <= allowed + 1e-6
