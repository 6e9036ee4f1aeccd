"""The simulated station's charging profiles (OCPP 2.0.1 K01, K08, K10): what it accepts, refuses, clears, and
the composite schedule it reports, with exact expectations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cariflex_pipeline.dispatch.peer_schemas import violations
from cariflex_pipeline_tests.dispatch.citrineos_sim import citrineos_tx_profile_request
from cariflex_pipeline_tests.dispatch.station_model import StationProfiles, charging_profile

NOW = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
HOUR = 3600


def _periods(station: StationProfiles, evse_id: int = 1, unit: str = "W", duration: int = HOUR) -> list[dict]:
    return station.composite(evse_id, duration, unit, NOW)["chargingSchedulePeriod"]


def _tx_default(profile_id: int, stack_level: int, periods: list[tuple], **fields) -> dict:
    return charging_profile(profile_id, "TxDefaultProfile", stack_level, periods, start=NOW, **fields)


def _tx(profile_id: int, stack_level: int, periods: list[tuple], transaction_id: str = "tx-1", **fields) -> dict:
    return charging_profile(profile_id, "TxProfile", stack_level, periods, start=NOW, transactionId=transaction_id,
                            **fields)


def _charging(transaction_id: str = "tx-1", **options) -> StationProfiles:
    station = StationProfiles("CP001", **options)
    station.active_transactions[1] = transaction_id
    return station


def test_without_profiles_the_station_reports_its_maximum() -> None:
    station = StationProfiles("CP001")
    assert station.composite(1, HOUR, "W", NOW) == {
        "evseId": 1, "duration": HOUR, "scheduleStart": "2026-11-28T13:00:00Z", "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 22000.0}]}
    assert _periods(station, unit="A") == [{"startPeriod": 0, "limit": 31.9}]  # 22000 / (230 V x 3)
    assert _periods(StationProfiles("CP002", max_power_w=3680.0, phases=1), unit="A") == [
        {"startPeriod": 0, "limit": 16.0}]


def test_a_composite_needs_a_unit_a_time_zone_and_a_duration() -> None:
    station = StationProfiles("CP001")
    with pytest.raises(ValueError, match="station CP001: chargingRateUnit 'kW' is neither W nor A"):
        station.composite(1, HOUR, "kW", NOW)
    with pytest.raises(ValueError, match="station CP001: composite start 2026-11-28 13:00:00 has no time zone"):
        station.composite(1, HOUR, "W", NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="station CP001: composite duration 0 s is not positive"):
        station.composite(1, 0, "W", NOW)


def test_a_profile_with_a_known_id_replaces_it() -> None:
    """K01.FR.05, wherever the old one is held."""
    station = StationProfiles("CP001")
    first, second = _tx_default(7, 0, [(0, 10000)]), _tx_default(7, 0, [(0, 5000)])
    assert station.set_profile(1, first) == ("Accepted", None)
    assert station.set_profile(2, second) == ("Accepted", None)
    assert station.installed() == [(2, second)]
    assert _periods(station, evse_id=2) == [{"startPeriod": 0, "limit": 5000.0}]
    assert _periods(station, evse_id=1) == [{"startPeriod": 0, "limit": 22000.0}]


def test_same_stack_level_purpose_and_evse_with_another_id_is_refused_while_validity_overlaps() -> None:
    """K01.FR.06: the CSMS shall not send it; the station refuses it (reasonCode DuplicateProfile)."""
    station = StationProfiles("CP001")
    held = _tx_default(1, 0, [(0, 11000)], validTo=NOW + timedelta(hours=1))
    assert station.set_profile(1, held) == ("Accepted", None)
    assert station.set_profile(1, _tx_default(2, 0, [(0, 4000)])) == ("Rejected", "DuplicateProfile")
    assert station.set_profile(2, _tx_default(3, 0, [(0, 4000)])) == ("Accepted", None)  # another EVSE
    assert station.set_profile(1, _tx_default(4, 1, [(0, 4000)])) == ("Accepted", None)  # another stack level
    later = _tx_default(5, 0, [(0, 4000)], validFrom=NOW + timedelta(hours=1))  # starts when the held one ends
    assert station.set_profile(1, later) == ("Accepted", None)
    assert [profile["id"] for _, profile in station.installed()] == [1, 3, 4, 5]


def test_a_tx_profile_needs_the_transaction_running_on_its_evse() -> None:
    """K01.FR.09 (TxNotFound), K01.FR.16 (evse 0), K01.FR.39 (same stack level and transaction, another id)."""
    station = StationProfiles("CP001")
    assert station.set_profile(1, _tx(1, 1, [(0, 4000)])) == ("Rejected", "TxNotFound")
    station.active_transactions[1] = "tx-2"
    assert station.set_profile(1, _tx(1, 1, [(0, 4000)])) == ("Rejected", "TxNotFound")
    assert station.set_profile(0, _tx(1, 1, [(0, 4000)], "tx-2")) == ("Rejected", "InvalidValue")
    assert station.set_profile(1, _tx(1, 1, [(0, 4000)], "tx-2")) == ("Accepted", None)
    assert station.set_profile(1, _tx(2, 1, [(0, 5000)], "tx-2")) == ("Rejected", "DuplicateProfile")
    assert station.set_profile(1, _tx(2, 2, [(0, 5000)], "tx-2")) == ("Accepted", None)
    assert [profile["id"] for _, profile in station.installed()] == [1, 2]


def test_a_tx_profile_outranks_a_tx_default_profile_of_any_stack_level_until_its_transaction_ends() -> None:
    station = _charging()
    station.set_profile(0, _tx_default(1, 5, [(0, 11000)]))
    assert station.set_profile(1, _tx(2, 0, [(0, 4000)])) == ("Accepted", None)
    assert _periods(station) == [{"startPeriod": 0, "limit": 4000.0}]
    station.end_transaction(1)
    assert station.active_transactions == {}
    assert [profile["id"] for _, profile in station.installed()] == [1]
    assert _periods(station) == [{"startPeriod": 0, "limit": 11000.0}]


def test_a_tx_profile_of_another_transaction_is_not_applied() -> None:
    station = _charging()
    station.set_profile(1, _tx_default(1, 0, [(0, 11000)]))
    station.set_profile(1, _tx(2, 0, [(0, 4000)]))
    station.active_transactions[1] = "tx-9"  # a new transaction the station has not dropped the old profile for
    assert _periods(station) == [{"startPeriod": 0, "limit": 11000.0}]


def test_the_highest_stack_level_in_force_wins_within_a_purpose() -> None:
    station = StationProfiles("CP001")
    station.set_profile(0, _tx_default(1, 0, [(0, 11000)]))
    upper = charging_profile(2, "TxDefaultProfile", 1, [(0, 3000), (900, 5000)], start=NOW + timedelta(minutes=15),
                             duration=1800)
    station.set_profile(1, upper)
    assert _periods(station) == [{"startPeriod": 0, "limit": 11000.0}, {"startPeriod": 900, "limit": 3000.0},
                                 {"startPeriod": 1800, "limit": 5000.0}, {"startPeriod": 2700, "limit": 11000.0}]


def test_validity_bounds_when_a_profile_applies() -> None:
    station = StationProfiles("CP001")
    station.set_profile(1, _tx_default(1, 0, [(0, 5000)], validFrom=NOW + timedelta(minutes=10),
                                       validTo=NOW + timedelta(minutes=20)))
    assert _periods(station) == [{"startPeriod": 0, "limit": 22000.0}, {"startPeriod": 600, "limit": 5000.0},
                                 {"startPeriod": 1200, "limit": 22000.0}]


def test_the_charging_station_max_profile_caps_every_evse() -> None:
    station = StationProfiles("CP001")
    station.set_profile(0, charging_profile(1, "ChargingStationMaxProfile", 0, [(0, 16)], unit="A", start=NOW))
    station.set_profile(0, _tx_default(2, 0, [(0, 20000), (1800, 6900)]))
    assert _periods(station) == [{"startPeriod": 0, "limit": 11040.0}, {"startPeriod": 1800, "limit": 6900.0}]
    assert _periods(station, unit="A") == [{"startPeriod": 0, "limit": 16.0}, {"startPeriod": 1800, "limit": 10.0}]


def test_amperes_convert_with_the_number_of_phases_of_the_period() -> None:
    station = _charging()
    station.set_profile(1, _tx(1, 0, [(0, 16, 1), (900, 10)], unit="A"))
    assert _periods(station, duration=1800) == [{"startPeriod": 0, "limit": 3680.0, "numberPhases": 1},
                                                {"startPeriod": 900, "limit": 6900.0}]
    assert _periods(station, unit="A", duration=1800) == [{"startPeriod": 0, "limit": 16.0, "numberPhases": 1},
                                                          {"startPeriod": 900, "limit": 10.0}]


def test_relative_and_recurring_schedules() -> None:
    relative = StationProfiles("CP001")
    relative.set_profile(1, charging_profile(1, "TxDefaultProfile", 0, [(0, 4000), (1200, 6000)],
                                             chargingProfileKind="Relative", validFrom=NOW - timedelta(minutes=10)))
    assert _periods(relative) == [{"startPeriod": 0, "limit": 4000.0}, {"startPeriod": 600, "limit": 6000.0}]
    daily = StationProfiles("CP002")
    daily.set_profile(1, charging_profile(1, "TxDefaultProfile", 0, [(0, 5000), (3600, 8000)],
                                          start=NOW - timedelta(days=3), chargingProfileKind="Recurring",
                                          recurrencyKind="Daily"))
    assert _periods(daily, duration=2 * HOUR) == [{"startPeriod": 0, "limit": 5000.0},
                                                  {"startPeriod": 3600, "limit": 8000.0}]


def test_citrineos_own_32a_tx_profile_is_outranked_by_a_stack_level_1_tx_profile() -> None:
    """CitrineOS 1.8.3 sends its own stack-level-0 TxProfile of 32 A after an accepted NotifyEVChargingNeeds.
    Ours at stack level 0 would be refused (K01.FR.39); at stack level 1 it wins while it runs."""
    station = _charging(max_power_w=50000.0)
    citrineos = citrineos_tx_profile_request("tx-1", 1, profile_id=12, schedule_id=3,
                                             now=NOW - timedelta(minutes=1))
    assert station.set_profile(1, citrineos["chargingProfile"]) == ("Accepted", None)
    assert _periods(station) == [{"startPeriod": 0, "limit": 22080.0, "numberPhases": 3}]  # 32 A x 230 V x 3
    assert station.set_profile(1, _tx(40, 0, [(0, 7000)])) == ("Rejected", "DuplicateProfile")
    assert station.set_profile(1, _tx(40, 1, [(0, 7000), (900, 3000)], duration=1800)) == ("Accepted", None)
    assert _periods(station) == [{"startPeriod": 0, "limit": 7000.0}, {"startPeriod": 900, "limit": 3000.0},
                                 {"startPeriod": 1800, "limit": 22080.0, "numberPhases": 3}]
    assert _periods(station, unit="A") == [{"startPeriod": 0, "limit": 10.1}, {"startPeriod": 900, "limit": 4.3},
                                           {"startPeriod": 1800, "limit": 32.0, "numberPhases": 3}]
    answer = {"status": "Accepted", "schedule": station.composite(1, HOUR, "W", NOW)}
    assert violations("GetCompositeSchedule", answer, "Response") == []


def test_clear_by_id_or_by_criteria() -> None:
    """K10: by id; by criteria, each one given narrowing (evseId 0: the station-wide profiles only);
    Unknown when nothing matched."""
    station = _charging()
    station.set_profile(0, _tx_default(1, 0, [(0, 11000)]))
    station.set_profile(1, _tx_default(2, 0, [(0, 9000)]))
    station.set_profile(1, _tx_default(3, 2, [(0, 8000)]))
    station.set_profile(1, _tx(4, 1, [(0, 4000)]))
    assert station.clear({"chargingProfileId": 4}) == "Accepted"
    assert station.clear({"chargingProfileId": 4}) == "Unknown"
    assert station.clear({"chargingProfileCriteria": {"evseId": 0}}) == "Accepted"
    assert [profile["id"] for _, profile in station.installed()] == [2, 3]
    assert station.clear({"chargingProfileCriteria": {"chargingProfilePurpose": "TxDefaultProfile",
                                                      "stackLevel": 2}}) == "Accepted"
    assert [profile["id"] for _, profile in station.installed()] == [2]
    assert station.clear({"chargingProfileCriteria": {"chargingProfilePurpose": "ChargingStationMaxProfile"}}) \
        == "Unknown"
    assert _periods(station) == [{"startPeriod": 0, "limit": 9000.0}]


_period_lists = st.lists(st.tuples(st.integers(1, 20), st.integers(0, 22000)), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(profiles=st.lists(st.tuples(st.integers(0, 3), st.integers(-4, 4), _period_lists), min_size=0, max_size=4),
       unit=st.sampled_from(["W", "A"]))
def test_composite_periods_start_at_zero_increase_and_never_repeat(profiles, unit) -> None:
    """Whatever the station holds: the first period starts at 0, starts increase, no two neighbours are equal,
    no limit exceeds the station's maximum, and CitrineOS's response schema passes the W answer."""
    station = StationProfiles("CP001")
    for index, (stack_level, start_slot, steps) in enumerate(profiles):
        offsets = [0]
        for gap, _ in steps[1:]:
            offsets.append(offsets[-1] + gap * 300)
        periods = list(zip(offsets, (limit for _, limit in steps), strict=True))
        station.set_profile(1, charging_profile(index + 1, "TxDefaultProfile", stack_level, periods,
                                                start=NOW + timedelta(minutes=15 * start_slot)))
    composite = station.composite(1, 4 * HOUR, unit, NOW)
    periods = composite["chargingSchedulePeriod"]
    assert periods[0]["startPeriod"] == 0
    assert all(a["startPeriod"] < b["startPeriod"] for a, b in pairwise(periods))
    assert all(a["limit"] != b["limit"] or a.get("numberPhases") != b.get("numberPhases")
               for a, b in pairwise(periods))
    assert max(p["limit"] for p in periods) <= (22000.0 if unit == "W" else 31.9)
    if unit == "W":
        assert violations("GetCompositeSchedule", {"status": "Accepted", "schedule": composite}, "Response") == []
