"""A station gets a new profile only when what it should do changes: re-plans every 15 minutes move
startSchedule and validTo, but a profile with the same limits over the time both cover is not sent again while
the one the station has stays in force long enough. Hand-built profiles, outbox on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cariflex_pipeline.dispatch import (
    Answer,
    BuiltProfile,
    Call,
    Outbox,
    OutboxEntry,
    SendResult,
    compare_effect,
    dispatch_profiles,
    payload_hash,
)
from cariflex_pipeline.dispatch.equivalence import EffectComparison, coverage
from cariflex_pipeline.dispatch.profiles import iso
from cariflex_pipeline_tests.dispatch.conftest import SITE_ID

SLOT = timedelta(minutes=15)
T0 = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
# a day of planned limits (W) per 15-minute slot from T0, repeated: charge, taper, pause, charge
PATTERN = [11000.0] * 8 + [4200.0] * 40 + [0.0] * 20 + [7400.0] * 28


def at(slot: int) -> datetime:
    """When the re-plan of `slot` runs: 2.5 minutes into the slot."""
    return T0 + slot * SLOT + timedelta(minutes=2, seconds=30)


def hand_profile(station: str, start: datetime, slot_limits: Sequence[float], *, purpose: str = "TxDefaultProfile",
                 transaction_id: str | None = None, stack_level: int = 1, evse_id: int = 1, unit: str = "W",
                 profile_id: int = 101) -> BuiltProfile:
    """A SetChargingProfileRequest written by hand: one limit per slot from `start`, equal neighbours merged,
    validTo at the end of the last slot."""
    periods: list[tuple[int, float]] = []
    for index, limit in enumerate(slot_limits):
        if not periods or periods[-1][1] != limit:
            periods.append((index * 900, limit))
    end = start + len(slot_limits) * SLOT
    profile: dict = {
        "id": profile_id, "stackLevel": stack_level, "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute", "validFrom": iso(start), "validTo": iso(end),
        "chargingSchedule": [{"id": profile_id, "startSchedule": iso(start),
                              "duration": int((end - start).total_seconds()), "chargingRateUnit": unit,
                              "chargingSchedulePeriod": [{"startPeriod": s, "limit": v} for s, v in periods]}]}
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return BuiltProfile(station_id=station, payload={"evseId": evse_id, "chargingProfile": profile},
                        purpose=purpose, profile_id=profile_id, stack_level=stack_level, limits=tuple(periods),
                        rate_unit=unit)


def replan(station: str, slot: int, *, change: dict[int, float] | None = None, **kwargs) -> BuiltProfile:
    """The 24-hour plan as re-planned in `slot`: the day's limits from that slot on, `change` (absolute slot ->
    W) applied."""
    limits = [PATTERN[k % len(PATTERN)] for k in range(slot, slot + 96)]
    for k, watts in (change or {}).items():
        limits[k - slot] = watts
    return hand_profile(station, T0 + slot * SLOT, limits, **kwargs)


def idle(station: str, slot: int) -> BuiltProfile:
    return hand_profile(station, T0 + slot * SLOT, [0.0] * 96)


class StationsTransport:
    """Sends every entry and has each station answer `answer` (None: no answer, the entry stays sent)."""

    name = "test"

    def __init__(self, answer: str | None = "Accepted", outcome: str = "sent") -> None:
        self.answer, self.outcome = answer, outcome
        self.received: list[OutboxEntry] = []
        self._answers: list[Answer] = []

    def send(self, entries: Sequence[OutboxEntry]) -> list[SendResult]:
        self.received += entries
        if self.answer and self.outcome == "sent":
            self._answers += [Answer(e.correlation_id, e.station_id, self.answer, "InvalidSchedule"
                                     if self.answer == "Rejected" else "") for e in entries]
        return [SendResult(e.correlation_id, e.station_id, self.outcome) for e in entries]

    def send_calls(self, calls: Sequence[Call]) -> list[SendResult]:
        return [SendResult(c.correlation_id, c.station_id, "failed", "no composite schedules in this test")
                for c in calls]

    def collect_answers(self, record: Callable[[Answer], bool], *, expected: set[str] | None = None,
                        timeout: float = 0.0) -> list[Answer]:
        answers, self._answers = [a for a in self._answers if record(a)], []
        return answers

    def close(self) -> None:
        return None

    def count(self, station: str) -> int:
        return sum(entry.station_id == station for entry in self.received)


def test_a_replan_15_minutes_later_with_the_same_limits_is_skipped(store) -> None:
    outbox, stations = Outbox(store.engine), StationsTransport()
    first = dispatch_profiles(outbox, stations, [replan("CP001", 0)], site_id=SITE_ID, run_id="r0", now=at(0))
    assert first.entries["CP001"].status == "accepted"
    later = replan("CP001", 1)
    # not a byte comparison: startSchedule, validFrom, validTo and every startPeriod moved
    assert payload_hash(later.payload) != payload_hash(first.entries["CP001"].payload)
    second = dispatch_profiles(outbox, stations, [later], site_id=SITE_ID, run_id="r1", now=at(1))
    assert second.entries == {} and stations.count("CP001") == 1
    assert second.unchanged == {"CP001": first.entries["CP001"].id}
    assert second.skipped["CP001"] == (
        f"identical to last accepted profile (outbox #{first.entries['CP001'].id}) in effect: same limits until "
        "2026-11-29T13:00:00Z; it runs until 2026-11-29T13:00:00Z (23.7 h ahead, margin 12 h)")
    counts = second.counts()
    assert (counts["skipped"], counts["skipped_unchanged"], counts["skipped_rejected"]) == (1, 1, 0)


def test_a_change_in_any_slots_limit_is_sent(store) -> None:
    """Every slot both profiles cover, changed by 100 W alone, makes the profile go out (one station per
    slot); the unchanged re-plan does not, nor a change after the old profile's end while it still runs
    for more than the margin (it goes out with the extension)."""
    outbox, stations = Outbox(store.engine), StationsTransport()
    overlap = range(1, 96)  # the re-plan of slot 1 and the plan of slot 0 both cover slots 1..95
    names = {k: f"S{k:02d}" for k in overlap}
    everyone = [*names.values(), "UNCHANGED", "AFTER_END"]
    dispatch_profiles(outbox, stations, [replan(s, 0) for s in everyone], site_id=SITE_ID, run_id="r0", now=at(0))
    assert len(stations.received) == len(everyone)
    changed = [replan(names[k], 1, change={k: PATTERN[k % 96] + 100.0}) for k in overlap]
    report = dispatch_profiles(outbox, stations, [*changed, replan("UNCHANGED", 1),
                                                  replan("AFTER_END", 1, change={96: 22000.0})],
                               site_id=SITE_ID, run_id="r1", now=at(1))
    assert sorted(report.entries) == sorted(names.values())
    assert {e.status for e in report.entries.values()} == {"accepted"}
    assert sorted(report.skipped) == ["AFTER_END", "UNCHANGED"]


def test_an_idle_stations_zero_profile_is_sent_once_then_skipped(store) -> None:
    """Twelve hours of re-plans every 15 minutes, nothing planned for the station: one message, not 48."""
    outbox, stations = Outbox(store.engine), StationsTransport()
    for slot in range(48):
        report = dispatch_profiles(outbox, stations, [idle("CP004", slot)], site_id=SITE_ID,
                                                                            run_id=f"r{slot}", now=at(slot))
        if slot:
            assert "identical to last accepted" in report.skipped["CP004"], slot
    assert stations.count("CP004") == 1
    assert [e.limits for e in outbox.entries(["CP004"])] == [[(0, 0.0)]]


def test_the_new_profile_is_sent_when_the_old_one_gets_within_the_margin(store) -> None:
    """The profile the station follows ends at T0 + 24 h: with the default 12 h margin the unchanged plan is
    sent again (extending it) at T0 + 12 h, and then not before T0 + 24 h; with a 2 h margin at T0 + 22 h."""
    outbox = Outbox(store.engine)
    for station, margin, expected in (("CP001", None, [0, 48]), ("CP002", timedelta(hours=2), [0, 88])):
        stations = StationsTransport()
        sent_in = []
        for slot in range(96):
            options = {} if margin is None else {"min_validity_ahead": margin}
            report = dispatch_profiles(outbox, stations, [replan(station, slot)], site_id=SITE_ID,
                                                                                  run_id=f"{station}-{slot}",
                                       now=at(slot), **options)
            if report.entries:
                sent_in.append(slot)
        assert sent_in == expected, station
    # just before: skipped, and the reason says until when the old one runs
    prepared = outbox.prepare([replan("CP003", 0)], site_id=SITE_ID, run_id="x", transport="test", now=at(0))
    outbox.record_answer(prepared.to_send[0].correlation_id, "Accepted")
    just_before = outbox.prepare([replan("CP003", 47)], site_id=SITE_ID, run_id="y", transport="test", now=at(47))
    assert "it runs until 2026-11-29T13:00:00Z (12.2 h ahead, margin 12 h)" in just_before.skipped["CP003"]
    assert [e.station_id for e in outbox.prepare([replan("CP003", 48)], site_id=SITE_ID, run_id="z", transport="test",
                                                 now=at(48)).to_send] == ["CP003"]


@pytest.mark.parametrize("different", [
    {"purpose": "TxProfile", "transaction_id": "tx-1"},
    {"stack_level": 2},
    {"evse_id": 2},
    {"unit": "A"},
    {"profile_id": 202},
], ids=lambda d: ",".join(d))
def test_a_different_transaction_purpose_stack_level_evse_or_unit_is_sent(store, different) -> None:
    outbox, stations = Outbox(store.engine), StationsTransport()
    dispatch_profiles(outbox, stations, [replan("SAME", 0), replan("OTHER", 0)], site_id=SITE_ID,
                                                                                 run_id="r0", now=at(0))
    report = dispatch_profiles(outbox, stations, [replan("SAME", 1), replan("OTHER", 1, **different)],
                               site_id=SITE_ID, run_id="r1", now=at(1))
    assert list(report.entries) == ["OTHER"] and list(report.skipped) == ["SAME"]


def test_a_new_transaction_id_is_sent(store) -> None:
    outbox, stations = Outbox(store.engine), StationsTransport()
    dispatch_profiles(outbox, stations, [replan("CP006", 0, purpose="TxProfile", transaction_id="tx-1")],
                      site_id=SITE_ID, run_id="r0", now=at(0))
    same = dispatch_profiles(outbox, stations, [replan("CP006", 1, purpose="TxProfile", transaction_id="tx-1")],
                             site_id=SITE_ID, run_id="r1", now=at(1))
    assert same.entries == {} and "identical to last accepted" in same.skipped["CP006"]
    new_car = dispatch_profiles(outbox, stations, [replan("CP006", 2, purpose="TxProfile", transaction_id="tx-2")],
                                site_id=SITE_ID, run_id="r2", now=at(2))
    assert new_car.entries["CP006"].transaction_id == "tx-2" and stations.count("CP006") == 2
    # the car leaves: back to the default profile, same limits, still a change
    left = dispatch_profiles(outbox, stations, [replan("CP006", 3)], site_id=SITE_ID, run_id="r3", now=at(3))
    assert left.entries["CP006"].purpose == "TxDefaultProfile" and stations.count("CP006") == 3


def test_a_rejected_plan_is_offered_once_per_change_not_once_per_slot(store) -> None:
    outbox, refusing = Outbox(store.engine), StationsTransport(answer="Rejected")
    for slot in range(8):
        report = dispatch_profiles(outbox, refusing, [replan("CP005", slot)], site_id=SITE_ID,
                                                                              run_id=f"r{slot}", now=at(slot))
        if slot:
            assert report.counts()["skipped_rejected"] == 1 and report.counts()["skipped_unchanged"] == 0
            assert "rejected by the station" in report.skipped["CP005"]
    assert refusing.count("CP005") == 1
    changed = dispatch_profiles(outbox, refusing, [replan("CP005", 8, change={20: 3000.0})], site_id=SITE_ID,
                                                                                             run_id="r8",
                                now=at(8))
    assert changed.entries["CP005"].status == "rejected" and refusing.count("CP005") == 2


def test_same_limits_awaiting_an_answer_or_a_retry_keep_their_outbox_entry(store) -> None:
    """A profile sent and not yet answered is not sent again for a re-plan with the same limits; one that
    failed is followed by the re-plan, under the same profile id (the station replaces what it may hold)."""
    outbox = Outbox(store.engine)
    silent = StationsTransport(answer=None)
    first = dispatch_profiles(outbox, silent, [replan("CP007", 0)], site_id=SITE_ID, run_id="r0", now=at(0))
    again = dispatch_profiles(outbox, silent, [replan("CP007", 0)], site_id=SITE_ID,
                                                                    run_id="r1", now=at(0) + timedelta(seconds=90))
    assert again.entries == {} and "awaiting answer" in again.skipped["CP007"]
    assert silent.count("CP007") == 1
    # past the answer deadline (2 min) the silent entry is unanswered and the re-plan goes out in its place
    timed_out = dispatch_profiles(outbox, silent, [replan("CP007", 1)], site_id=SITE_ID, run_id="r2", now=at(1))
    assert [e.id for e in timed_out.unanswered] == [first.entries["CP007"].id]
    assert (timed_out.entries["CP007"].attempts, silent.count("CP007")) == (2, 2)

    failing = StationsTransport(outcome="failed")
    failed = dispatch_profiles(outbox, failing, [replan("CP008", 0)], site_id=SITE_ID, run_id="r0", now=at(0))
    retried = dispatch_profiles(outbox, StationsTransport(), [replan("CP008", 1)], site_id=SITE_ID,
                                                                                   run_id="r1", now=at(1))
    entry, old = retried.entries["CP008"], failed.entries["CP008"]
    assert (entry.profile_id, entry.attempts, entry.status) == (old.profile_id, 2, "accepted")
    assert [e.status for e in outbox.entries(["CP008"])] == ["superseded", "accepted"]
    assert first.entries["CP007"].status == "sent"


def test_force_sends_a_profile_with_the_same_effect(store) -> None:
    outbox, stations = Outbox(store.engine), StationsTransport()
    dispatch_profiles(outbox, stations, [replan("CP009", 0)], site_id=SITE_ID, run_id="r0", now=at(0))
    assert dispatch_profiles(outbox, stations, [replan("CP009", 1)], site_id=SITE_ID,
                                                                     run_id="r1", now=at(1)).entries == {}
    forced = dispatch_profiles(outbox, stations, [replan("CP009", 1)], site_id=SITE_ID,
                                                                       run_id="r2", now=at(1), force=True)
    assert forced.entries["CP009"].status == "accepted" and stations.count("CP009") == 2


def test_compare_effect_reads_absolute_time_not_offsets() -> None:
    old = replan("X", 0).payload
    # starts an hour from now: the old profile limits the station now, the new one would not yet
    assert not compare_effect(replan("X", 4).payload, old, now=at(0)).same
    # ends before the old one with the same limits: nothing to extend, nothing to send
    shorter = hand_profile("X", T0 + SLOT, [PATTERN[k] for k in range(1, 40)]).payload
    assert compare_effect(shorter, old, now=at(1)).skip
    # the old one has run out: nothing in common to compare
    assert not compare_effect(replan("X", 100).payload, old, now=at(100)).same
    # numberPhases is part of the limit
    phased = replan("X", 1).payload
    phased["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["numberPhases"] = 1
    comparison = compare_effect(phased, old, now=at(1))
    assert not comparison.same and "numberPhases=1" in comparison.reason


def _periods(payload: dict) -> list[dict]:
    return payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]


def _endless(payload: dict) -> dict:
    """The profile without validTo and duration: it imposes its last limit for ever."""
    del payload["chargingProfile"]["validTo"]
    del payload["chargingProfile"]["chargingSchedule"][0]["duration"]
    return payload


def test_a_changed_limit_is_named_with_its_moment_phases_and_phase_to_use() -> None:
    """The whole reason an operator reads on a row that is sent: when, the new limit, the old one, each with
    numberPhases and phaseToUse where the profile gives them, and "none" where a profile imposes nothing."""
    old = replan("X", 0).payload
    _periods(old)[0]["numberPhases"] = 3
    phased = replan("X", 1).payload
    _periods(phased)[0].update(numberPhases=1, phaseToUse=2)
    assert compare_effect(phased, old, now=at(1)).reason == (
        "limit at 2026-11-28T13:17:30Z: 11000 numberPhases=1 phaseToUse=2 instead of 11000 numberPhases=3")
    # phaseToUse alone; a fraction of a watt; a change at a later breakpoint, not at `now`
    later = replan("X", 1, change={5: 4200.5})
    _periods(later.payload)[0]["numberPhases"] = 3
    _periods(later.payload)[1]["phaseToUse"] = 1
    comparison = compare_effect(later.payload, old, now=at(1))
    assert (comparison.same, comparison.skip, comparison.old_valid_to) == (False, False, T0 + 96 * SLOT)
    assert comparison.reason == (
        "limit at 2026-11-28T14:15:00Z: 4200.5 phaseToUse=1 instead of 11000 numberPhases=3")
    # starts an hour from now: nothing imposed by the new one yet
    assert compare_effect(replan("X", 4).payload, replan("X", 0).payload, now=at(0)).reason == (
        "limit at 2026-11-28T13:02:30Z: none instead of 11000")


def test_the_reasons_give_the_hours_ahead_and_the_margin() -> None:
    """The margin and the hours the old profile still runs, as the operator reads them: each reason whole."""
    old = replan("X", 0).payload
    extend = compare_effect(replan("X", 1).payload, old, now=at(1), min_validity_ahead=timedelta(hours=36))
    assert (extend.same, extend.skip, extend.old_valid_to) == (True, False, T0 + 96 * SLOT)
    assert extend.reason == ("same limits until 2026-11-29T13:00:00Z, but the old one ends at "
                             "2026-11-29T13:00:00Z, within the 36 h margin: sent to extend it")
    # ten days ahead: 240 h, not 239.9 (hours are 3600 s)
    ten_days = hand_profile("X", T0, [5000.0] * 960).payload
    longer = hand_profile("X", T0, [5000.0] * 961).payload
    kept = compare_effect(longer, ten_days, now=T0, min_validity_ahead=timedelta(hours=36))
    assert (kept.same, kept.skip) == (True, True)
    assert kept.reason == ("same limits until 2026-12-08T13:00:00Z; it runs until 2026-12-08T13:00:00Z "
                           "(240 h ahead, margin 36 h)")
    # within the margin, but the new one would add nothing
    shorter = hand_profile("X", T0 + 60 * SLOT, [PATTERN[k] for k in range(60, 90)]).payload
    assert compare_effect(shorter, old, now=at(60)).reason == (
        "same limits until 2026-11-29T11:30:00Z; the new one would not run longer")
    # the old one has run out
    ran_out = compare_effect(replan("X", 100).payload, old, now=at(100))
    assert (ran_out.same, ran_out.reason) == (False, "the old profile ran out at 2026-11-29T13:00:00Z")
    # neither ends: no hours ahead to give
    endless = compare_effect(_endless(hand_profile("X", T0 + SLOT, [5000.0]).payload),
                             _endless(hand_profile("X", T0, [5000.0]).payload), now=at(1))
    assert (endless.skip, endless.reason) == (True, "same limits until never; it has no end")


def test_a_time_without_a_time_zone_is_refused_by_name() -> None:
    naive = replan("X", 0).payload
    naive["chargingProfile"]["chargingSchedule"][0]["startSchedule"] = "2026-11-28T13:00:00"
    with pytest.raises(ValueError) as caught:
        coverage(naive)
    assert str(caught.value) == "time '2026-11-28T13:00:00' has no time zone"
    with pytest.raises(ValueError) as caught:
        compare_effect(replan("X", 1).payload, replan("X", 0).payload, now=datetime(2026, 11, 28, 13, 17, 30))
    assert str(caught.value) == "comparing profiles at 2026-11-28T13:17:30: that time has no time zone"


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


def test_times_with_an_offset_are_read_and_given_in_utc_whatever_the_machines_zone(martinique_machine) -> None:
    assert datetime(2026, 11, 28, tzinfo=UTC).astimezone().utcoffset() == timedelta(hours=-4)
    old = replan("X", 0).payload
    charging = old["chargingProfile"]
    charging["validFrom"] = "2026-11-28T17:00:00+04:00"
    charging["validTo"] = "2026-11-29T17:00:00+04:00"
    charging["chargingSchedule"][0]["startSchedule"] = "2026-11-28T17:00:00+04:00"
    cover = coverage(old)
    assert cover is not None
    assert (cover.start, cover.end, cover.steps[0][0]) == (T0, T0 + 96 * SLOT, T0)
    assert {moment.utcoffset() for moment in cover.breakpoints()} == {timedelta(0)}
    assert cover.end.isoformat() == "2026-11-29T13:00:00+00:00"
    extend = compare_effect(replan("X", 1).payload, old, now=at(1).astimezone(timezone(timedelta(hours=-4))))
    assert extend.reason == ("same limits until 2026-11-29T13:00:00Z; it runs until 2026-11-29T13:00:00Z "
                             "(23.7 h ahead, margin 12 h)")
    assert extend.old_valid_to is not None and extend.old_valid_to.isoformat() == "2026-11-29T13:00:00+00:00"


def test_a_coverage_imposes_its_limits_from_its_start_until_just_before_its_end() -> None:
    """[start, end): the first instant has the first limit, the end none; before a first period that starts late
    (a hand-made profile) nothing is imposed either."""
    payload = hand_profile("X", T0, [11000.0, 4200.0]).payload
    _periods(payload)[0]["startPeriod"] = 60
    cover = coverage(payload)
    assert cover is not None and (cover.start, cover.end) == (T0, T0 + 2 * SLOT)
    second = timedelta(seconds=1)
    assert [cover.value_at(moment) for moment in (T0 - second, T0, T0 + 60 * second, T0 + SLOT,
                                                  T0 + 2 * SLOT - second, T0 + 2 * SLOT)] == [
        None, None, (11000.0, None, None), (4200.0, None, None), (4200.0, None, None), None]
    assert cover.breakpoints() == {T0, T0 + 60 * second, T0 + SLOT, T0 + 2 * SLOT}


def test_a_new_profile_starting_exactly_now_is_compared_from_its_first_instant() -> None:
    comparison = compare_effect(replan("X", 1).payload, replan("X", 0).payload, now=T0 + SLOT)
    assert (comparison.same, comparison.skip) == (True, True)
    late = replan("X", 1).payload
    _periods(late)[0]["startPeriod"] = 60
    assert compare_effect(late, replan("X", 0).payload, now=T0 + SLOT).reason == (
        "limit at 2026-11-28T13:15:00Z: none instead of 11000")


def test_a_coverage_spans_the_later_start_and_the_earlier_end_of_its_window_and_schedule() -> None:
    """start = max(startSchedule, validFrom), end = min(validTo, startSchedule + duration); a missing validFrom,
    validTo or duration bounds nothing."""
    second = timedelta(seconds=1)

    def span(valid_from: datetime | None, valid_to: datetime | None, duration: int | None) -> tuple:
        payload = hand_profile("X", T0, [5000.0] * 8).payload  # startSchedule T0, 2 h
        charging = payload["chargingProfile"]
        for key, value in (("validFrom", valid_from), ("validTo", valid_to)):
            if value is None:
                del charging[key]
            else:
                charging[key] = iso(value)
        if duration is None:
            del charging["chargingSchedule"][0]["duration"]
        else:
            charging["chargingSchedule"][0]["duration"] = duration
        cover = coverage(payload)
        assert cover is not None
        return cover.start, cover.end

    late, early = T0 + 30 * SLOT, T0 + 3 * SLOT
    assert span(T0 - SLOT, early, 7200) == (T0, early)  # validFrom before startSchedule, validTo first
    assert span(T0 + SLOT, T0 + 8 * SLOT, 3600) == (T0 + SLOT, T0 + 4 * SLOT)  # validFrom later, duration first
    assert span(None, late, None) == (T0, late)
    assert span(None, None, 600) == (T0, T0 + 600 * second)
    assert span(T0 + SLOT, None, None) == (T0 + SLOT, datetime.max.replace(tzinfo=UTC))


def test_only_one_absolute_schedule_is_compared_by_limits() -> None:
    """A Relative profile, or an Absolute one with two schedules, has no coverage: compared by its bytes without
    validFrom; a second schedule is itself a difference in identity."""
    relative = replan("X", 0).payload
    relative["chargingProfile"]["chargingProfileKind"] = "Relative"
    assert coverage(relative) is None
    moved = copy.deepcopy(relative)
    moved["chargingProfile"]["validFrom"] = iso(T0 + SLOT)
    same = compare_effect(moved, relative, now=at(0))
    assert (same.same, same.skip, same.reason) == (True, True, "identical payload (without validFrom)")
    later = replan("X", 1).payload
    later["chargingProfile"]["chargingProfileKind"] = "Relative"
    different = compare_effect(later, relative, now=at(1))
    assert (different.same, different.skip, different.reason) == (
        False, False, "different payload (not an Absolute one-schedule profile)")

    two = replan("X", 1).payload
    schedules = two["chargingProfile"]["chargingSchedule"]
    schedules.append({**copy.deepcopy(schedules[0]), "id": 102})
    assert coverage(two) is None
    assert compare_effect(two, replan("X", 0).payload, now=at(1)).reason == (
        "different chargingSchedule count, chargingSchedule[1].chargingRateUnit, chargingSchedule[1].id")
    unanchored = replan("X", 1).payload  # Absolute without startSchedule: not comparable by limits either
    del unanchored["chargingProfile"]["chargingSchedule"][0]["startSchedule"]
    assert compare_effect(unanchored, replan("X", 0).payload, now=at(1)).reason == (
        "different payload (not an Absolute one-schedule profile)")
    both = copy.deepcopy(two)
    both["chargingProfile"]["validFrom"] = iso(T0)
    assert compare_effect(both, two, now=at(1)).reason == "identical payload (without validFrom)"


def test_a_field_only_one_of_the_profiles_has_is_a_difference() -> None:
    old = replan("X", 0, purpose="TxProfile").payload
    with_tx = replan("X", 1, purpose="TxProfile", transaction_id="tx-1").payload
    comparison = compare_effect(with_tx, old, now=at(1))
    assert (comparison.same, comparison.skip, comparison.reason, comparison.old_valid_to) == (
        False, False, "different chargingProfile.transactionId", None)
    assert compare_effect(old, with_tx, now=at(1)).reason == "different chargingProfile.transactionId"
    floor = replan("X", 1).payload
    floor["chargingProfile"]["chargingSchedule"][0]["minChargingRate"] = 1380.0
    floor["evseId"] = 2
    assert compare_effect(floor, replan("X", 0).payload, now=at(1)).reason == (
        "different chargingSchedule[0].minChargingRate, evseId")


def test_limits_equal_to_six_decimals_are_the_same_limit() -> None:
    """Floating-point noise in a limit (15.9 A computed as 15.9000004) is no change; a hundred-thousandth is."""
    old = replan("X", 0, unit="A").payload
    noisy = replan("X", 1, unit="A").payload
    _periods(noisy)[0]["limit"] = 11000.0000004
    assert compare_effect(noisy, old, now=at(1)).same
    _periods(noisy)[0]["limit"] = 11000.00001
    assert not compare_effect(noisy, old, now=at(1)).same


def test_the_outcomes_at_their_boundaries_whole() -> None:
    """Each comparison at the instant its outcome changes, compared whole (same, skip, reason, old validTo)."""
    old = hand_profile("X", T0, [5000.0] * 8).payload  # runs 13:00-15:00
    end = T0 + 8 * SLOT
    assert compare_effect(copy.deepcopy(old), old, now=end) == EffectComparison(
        False, False, "the old profile ran out at 2026-11-28T15:00:00Z", end)
    # exactly the margin ahead is enough
    assert compare_effect(copy.deepcopy(old), old, now=T0, min_validity_ahead=timedelta(hours=2)) == (
        EffectComparison(True, True, "same limits until 2026-11-28T15:00:00Z; it runs until 2026-11-28T15:00:00Z "
                                     "(2 h ahead, margin 2 h)", end))
    shorter = hand_profile("X", T0, [5000.0] * 4).payload
    assert compare_effect(shorter, old, now=T0, min_validity_ahead=timedelta(hours=3)) == EffectComparison(
        True, True, "same limits until 2026-11-28T14:00:00Z; the new one would not run longer", end)


def test_the_payload_hash_ignores_valid_from_and_key_order_and_is_stable_across_releases() -> None:
    """The outbox stores it with every entry: the same payload must give the same text to hash, whichever order
    its keys were built in, and the digest of a known payload stays what earlier entries hold."""
    payload = hand_profile("X", T0, [5000.0, 7000.0]).payload
    moved = copy.deepcopy(payload)
    moved["chargingProfile"]["validFrom"] = iso(T0 - SLOT)
    reordered = {"chargingProfile": dict(reversed(list(payload["chargingProfile"].items()))),
                 "evseId": payload["evseId"]}
    without = copy.deepcopy(payload)
    del without["chargingProfile"]["validFrom"]
    assert payload_hash(payload) == payload_hash(moved) == payload_hash(reordered) == payload_hash(without)
    # the digest the outbox stores for this payload today (compact JSON, sorted keys): a change shows here
    assert payload_hash(payload) == "50b4f63ca68dd9a718c6a122b490da90890065f8190d8799de0681d30c588d89"
    assert payload_hash({"evseId": 1}) != payload_hash({"evseId": 2})  # no chargingProfile at all: hashed as is


def test_each_step_of_a_run_is_stamped_when_it_happens(store) -> None:
    """Found on a real CitrineOS 1.8.3: the send and the read-back request carried the run's start, so the answer
    deadline (which counts from the send) shrank by however long sending took, and the event log put the read-back
    request before the accept it follows. A clock ticking a second per reading shows each stamp is its own."""
    readings = iter(at(0) + timedelta(seconds=second) for second in range(1, 100))
    outbox = Outbox(store.engine)
    report = dispatch_profiles(outbox, StationsTransport(), [replan("CP001", 0)], site_id=SITE_ID, run_id="r0",
                               now=at(0), clock=lambda: next(readings))
    entry = report.entries["CP001"]
    assert entry.created_at == at(0) and entry.sent_at == at(0) + timedelta(seconds=1)
    stamps = {event: moment for moment, event, _reason in outbox.events(entry.id)}
    assert stamps["sent"] == at(0) + timedelta(seconds=1)
    assert stamps["readback_pending"] >= at(0) + timedelta(seconds=2)  # asked after the accept came
