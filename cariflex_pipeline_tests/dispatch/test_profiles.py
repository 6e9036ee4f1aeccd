"""Profile builder and validation: hand-computable profiles, CitrineOS 1.8.3's own schema and rules, violations
named, and a property: whatever the plan, the profiles pass the schema files CitrineOS validates with."""

from __future__ import annotations

import copy
import time
import zlib
from collections.abc import Iterator
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
from cariflex_pipeline.dispatch.profiles import ceil_to_grid, emit_limit, floor_to_grid, iso
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
    assert profile.notes == ("2 slot(s) clipped to [0, 11.0 kW]",)


def test_only_slots_outside_the_charge_points_range_count_as_clipped() -> None:
    """0, a fraction of a kW and exactly the maximum are in range; below 0 and above the maximum (by 0.5 kW, by
    4 kW) are clipped: three slots. A plan within range has no note at all."""
    profile = build_profile(StationTarget("CP007", 1, 11.0), _plan([0.0, 0.5, 11.0, -2.0, 11.5, 15.0]), now=NOW)
    assert profile.notes == ("3 slot(s) clipped to [0, 11.0 kW]",)
    assert [p["limit"] for p in _periods(profile)] == [0.0, 500.0, 11000.0, 0.0, 11000.0]
    assert build_profile(StationTarget("CP007", 1, 11.0), _plan([0.0, 0.5, 11.0]), now=NOW).notes == ()


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


def test_plan_times_in_several_zones_give_the_profiles_of_the_same_times_in_utc(site) -> None:
    frame = plan_frame(site, START, {"CP001": [7.0] * 4 + [0.0] * 4, "CP002": [3.0] * 8})
    zoned = frame.astype({"event_start": object})
    zoned.loc[zoned["sensor_id"] == 62, "event_start"] = [
        t.to_pydatetime().astimezone(site.tz) for t in frame.loc[frame["sensor_id"] == 62, "event_start"]]
    assert {t.tzinfo for t in zoned["event_start"]} == {UTC, site.tz}
    assert profiles_from_plan(site, zoned, now=NOW).profiles == profiles_from_plan(site, frame, now=NOW).profiles


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
    assert again.notes == ("validTo 2026-11-28T15:00:01Z: outlasts the station's profile valid to "
                           "2026-11-28T15:00:00Z",)
    tx = build_profile(StationTarget("CP002", 1, 22.0, transaction_id="t"), _plan([6.0] * 8), now=NOW,
                       outlast={"TxDefaultProfile": first_to})
    assert tx.payload["chargingProfile"]["validTo"] == "2026-11-28T15:00:00Z"


@pytest.mark.parametrize(("options", "message"), [
    ({"purpose_policy": "always"}, "purpose_policy 'always': expected auto, tx_default_only or tx_only"),
    ({"rate_unit": "kW"}, "rate_unit 'kW': expected 'W' or 'A'"),
    ({"rate_unit": "A", "voltage": 230.0}, "rate_unit 'A' needs number_phases (1-3) and a positive voltage"),
    ({"rate_unit": "A", "number_phases": 3}, "rate_unit 'A' needs number_phases (1-3) and a positive voltage"),
    ({"rate_unit": "A", "number_phases": 3, "voltage": -230.0},
     "rate_unit 'A' needs number_phases (1-3) and a positive voltage"),
    ({"number_phases": 4}, "number_phases 4: expected 1, 2 or 3"),
    ({"stack_level": -1}, "stack_level -1: expected 0..1000"),
    ({"stack_level": 1001}, "stack_level 1001: expected 0..1000"),
], ids=lambda value: str(value) if isinstance(value, dict) else "")
def test_a_config_that_cannot_build_profiles_is_refused_by_name(options, message) -> None:
    with pytest.raises(ValueError) as caught:
        ProfileConfig(**options)
    assert str(caught.value) == message


def test_the_edges_of_the_config_ranges_are_accepted_and_kept_in_the_summary() -> None:
    """Stack levels 0 and 1000 and any positive voltage (0.5 V too) are fine; the summary carries the stack level
    and the unit the payload has."""
    for level in (0, 1000):
        profile = build_profile(StationTarget("CP001", 1, 22.0), _plan([4.0]), now=NOW,
                                config=ProfileConfig(stack_level=level))
        assert (profile.stack_level, profile.payload["chargingProfile"]["stackLevel"]) == (level, level)
    amps = build_profile(StationTarget("CP001", 1, 22.0), _plan([0.001]), now=NOW,
                         config=ProfileConfig(rate_unit="A", number_phases=1, voltage=0.5))
    assert (amps.rate_unit, amps.stack_level, _periods(amps)) == (
        "A", 1, [{"startPeriod": 0, "limit": 2.0, "numberPhases": 1}])


def test_a_station_whose_hash_masks_to_zero_gets_profile_id_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """Profile ids are positive: the one hash in 2**30 that masks to 0 gives 1."""
    monkeypatch.setattr(zlib, "crc32", lambda data: 0x40000000)
    assert profile_id_for("CP001", 1) == 1


def test_slot_grids_start_at_the_utc_epoch() -> None:
    """Any resolution, not only one that divides a day: a 7-minute grid runs from 1970-01-01T00:00Z."""
    seven = timedelta(minutes=7)
    assert floor_to_grid(NOW, seven) == datetime(2026, 11, 28, 13, 1, tzinfo=UTC)
    assert floor_to_grid(NOW.astimezone(datetime.fromisoformat("2026-01-01T00:00+04:00").tzinfo), SLOT) == START
    assert (ceil_to_grid(NOW, SLOT), ceil_to_grid(START, SLOT)) == (START + SLOT, START)
    assert ceil_to_grid(NOW, seven) == datetime(2026, 11, 28, 13, 8, tzinfo=UTC)
    with pytest.raises(ValueError) as caught:
        floor_to_grid(datetime(2026, 11, 28, 13, 7, 30), SLOT)
    assert str(caught.value) == "time 2026-11-28T13:07:30 has no time zone"


@pytest.mark.parametrize(("value", "message"), [
    (-0.5, "limit -0.5: expected a finite value >= 0"),
    (float("nan"), "limit nan: expected a finite value >= 0"),
])
def test_a_negative_or_nan_limit_is_refused(value, message) -> None:
    for unit in ("W", "A"):
        with pytest.raises(ValueError) as caught:
            emit_limit(value, unit)
        assert str(caught.value) == message


@pytest.mark.parametrize(("plan", "options", "message"), [
    ({datetime(2026, 11, 28, 13, 0): 4.0}, {}, "station CP001: slot 2026-11-28 13:00:00 has no time zone"),
    ({START + timedelta(minutes=5): 4.0}, {},
     "station CP001: slot 2026-11-28T13:05:00Z is not on the 0:15:00 grid"),
    ({START: float("nan")}, {}, "station CP001: slot 2026-11-28T13:00:00Z has a non-finite value"),
    ({START: float("inf")}, {}, "station CP001: slot 2026-11-28T13:00:00Z has a non-finite value"),
    ({START: float("-inf")}, {}, "station CP001: slot 2026-11-28T13:00:00Z has a non-finite value"),
    ({}, {}, "station CP001: no planned power from 2026-11-28T13:00:00Z on (horizon already over)"),
    (_plan([4.0, 4.0], start=START - 2 * SLOT), {},
     "station CP001: no planned power from 2026-11-28T13:00:00Z on (horizon already over)"),
    (_plan([4.0]), {"horizon_end": START},
     "station CP001: no planned power from 2026-11-28T13:00:00Z on (horizon already over)"),
    (_plan([4.0]), {"horizon_end": START - SLOT},
     "station CP001: no planned power from 2026-11-28T13:00:00Z on (horizon already over)"),
    (_plan([4.0]), {"horizon_end": START + timedelta(minutes=65)},
     "station CP001: horizon end 2026-11-28T14:05:00Z is not on the slot grid"),
], ids=["naive slot", "off the grid", "nan", "inf", "-inf", "no plan", "plan over", "horizon now",
        "horizon past", "horizon off the grid"])
def test_a_plan_that_cannot_become_a_profile_is_refused_naming_the_station(plan, options, message) -> None:
    with pytest.raises(ProfileBuildError) as caught:
        build_profile(StationTarget("CP001", 1, 22.0), plan, now=NOW, **options)
    assert str(caught.value) == message


def test_a_time_without_a_time_zone_is_refused_naming_the_station() -> None:
    with pytest.raises(ValueError) as caught:
        build_profile(StationTarget("CP001", 1, 22.0), _plan([4.0]), now=datetime(2026, 11, 28, 13, 7, 30))
    assert str(caught.value) == "station CP001: now 2026-11-28T13:07:30 has no time zone"


def test_a_plan_given_as_pairs_is_the_same_as_a_mapping() -> None:
    plan = _plan([7.0, 7.0, 3.0])
    as_pairs = build_profile(StationTarget("CP001", 1, 22.0), list(plan.items()), now=NOW)
    assert as_pairs == build_profile(StationTarget("CP001", 1, 22.0), plan, now=NOW)
    assert as_pairs.limits == ((0, 7000.0), (1800, 3000.0))


@pytest.fixture
def martinique_machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone set to UTC-4 (a POSIX TZ string, no time zone database needed)."""
    monkeypatch.setenv("TZ", "AST4")
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


def test_times_are_written_in_utc_whatever_the_machines_zone(martinique_machine) -> None:
    assert datetime(2026, 11, 28, tzinfo=UTC).astimezone().utcoffset() == timedelta(hours=-4)
    assert iso(datetime(2026, 11, 28, 13, 7, 30, 500000, tzinfo=UTC)) == "2026-11-28T13:07:30Z"
    profile = build_profile(StationTarget("CP001", 1, 22.0), _plan([4.0] * 4), now=NOW.astimezone())
    charging = profile.payload["chargingProfile"]
    assert (charging["validFrom"], charging["validTo"], charging["chargingSchedule"][0]["startSchedule"]) == (
        "2026-11-28T13:00:00Z", "2026-11-28T14:00:00Z", "2026-11-28T13:00:00Z")


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
