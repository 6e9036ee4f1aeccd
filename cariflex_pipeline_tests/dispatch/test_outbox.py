"""Outbox rules on SQLite and the real PostgreSQL: stored before sending, no resend of what was accepted,
timeouts, backoff, attempts rebuilt from the current plan, a clear before a TxProfile update over REST, the
history of every change, at most one entry per station and run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from cariflex_pipeline.dispatch import (
    Answer,
    DeliveryPolicy,
    Outbox,
    OutboxOnlyTransport,
    StationTarget,
    build_profile,
    dispatch_profiles,
    profiles_from_plan,
)
from cariflex_pipeline_tests.dispatch.conftest import NOW, SITE_ID, SLOT, START, plan_frame, profile_for, sent_entry


def test_profiles_stored_pending_before_sending_and_never_resent_stale(store) -> None:
    outbox = Outbox(store.engine)
    report = dispatch_profiles(outbox, OutboxOnlyTransport(), [profile_for("CP001", 5.0)], site_id=SITE_ID,
                                                                                           run_id="r1", now=NOW)
    [entry] = outbox.entries()
    assert (entry.station_id, entry.status, entry.attempts) == ("CP001", "pending", 1)
    assert report.entries["CP001"].correlation_id == entry.correlation_id
    # the next run has the current plan: the pending entry (never handed over) is replaced, not re-sent
    [fresh] = outbox.prepare([profile_for("CP001", 6.0)], site_id=SITE_ID,
                                                          run_id="r2", transport="amqp", now=NOW).to_send
    assert fresh.correlation_id != entry.correlation_id and fresh.attempts == 1
    assert fresh.limits == [(0, 6000.0)] and fresh.profile_id == entry.profile_id
    replaced = outbox.get(entry.correlation_id)
    assert replaced.status_reason == f"superseded by #{fresh.id} (rebuilt from the current plan)"
    # a run with no profile for the station (nothing planned) supersedes what was not delivered
    assert outbox.prepare([], site_id=SITE_ID, run_id="r3", transport="amqp", now=NOW).to_send == []
    assert outbox.get(fresh.correlation_id).status == "superseded"


def test_identical_to_last_accepted_not_resent_unless_forced(store) -> None:
    outbox = Outbox(store.engine)
    first = sent_entry(outbox, profile_for("CP001", 5.0))
    assert outbox.record_answer(first.correlation_id, "Accepted")
    # validFrom moves with the clock; the profile is still identical
    later = build_profile(StationTarget("CP001", 1, 22.0), {START + SLOT * i: 5.0 for i in range(8)},
                          now=NOW + timedelta(minutes=5))
    prepared = outbox.prepare([later], site_id=SITE_ID, run_id="r2", transport="amqp", now=NOW)
    assert prepared.to_send == []
    assert "identical to last accepted" in prepared.skipped["CP001"]
    forced = outbox.prepare([later], site_id=SITE_ID, run_id="r3", transport="amqp", force=True, now=NOW)
    assert [e.station_id for e in forced.to_send] == ["CP001"]
    assert forced.to_send[0].correlation_id != first.correlation_id
    # a different profile is sent
    changed = outbox.prepare([profile_for("CP001", 6.0)], site_id=SITE_ID, run_id="r4", transport="amqp", now=NOW)
    assert [e.station_id for e in changed.to_send] == ["CP001"]


def test_failed_attempts_back_off_and_are_rebuilt_from_the_current_plan(store) -> None:
    policy = DeliveryPolicy(retry_base=timedelta(seconds=30), retry_max=timedelta(minutes=2), max_attempts=3)
    outbox = Outbox(store.engine)
    [old] = outbox.prepare([profile_for("CP002", 5.0)], site_id=SITE_ID, run_id="r1", transport="amqp", now=NOW,
                           policy=policy).to_send
    outbox.mark(old.correlation_id, "failed", "connection lost", now=NOW, policy=policy)
    assert outbox.get(old.correlation_id).retry_after == NOW + timedelta(seconds=30)
    # within the backoff: the station is left alone, and the reason says until when
    early = outbox.prepare([profile_for("CP002", 5.0)], site_id=SITE_ID, run_id="r2", transport="amqp",
                           now=NOW + timedelta(seconds=29), policy=policy)
    assert early.to_send == []
    assert early.backing_off["CP002"] == (f"retry after {(NOW + timedelta(seconds=30)).isoformat()} "
                                          "(attempt 1 failed: connection lost)")
    # after it: the current plan (now 7 kW), a new correlation id, the same profile id, attempt 2
    later = NOW + timedelta(seconds=31)
    [second] = outbox.prepare([profile_for("CP002", 7.0)], site_id=SITE_ID, run_id="r3", transport="amqp", now=later,
                              policy=policy).to_send
    assert (second.attempts, second.profile_id, second.limits) == (2, old.profile_id, [(0, 7000.0)])
    assert second.correlation_id != old.correlation_id
    assert outbox.get(old.correlation_id).status == "superseded"
    outbox.mark(second.correlation_id, "unroutable", "offline", now=later, policy=policy)
    assert outbox.get(second.correlation_id).retry_after == later + timedelta(seconds=60)  # doubled
    third_at = later + timedelta(seconds=61)
    [third] = outbox.prepare([profile_for("CP002", 7.0)], site_id=SITE_ID, run_id="r4", transport="amqp", now=third_at,
                             policy=policy).to_send
    outbox.mark(third.correlation_id, "unroutable", "offline", now=third_at, policy=policy)
    assert outbox.get(third.correlation_id).retry_after == third_at + timedelta(minutes=2)  # capped
    # three attempts for the same effect: given up until the plan changes (or force)
    done_at = third_at + timedelta(minutes=3)
    gave_up = outbox.prepare([profile_for("CP002", 7.0)], site_id=SITE_ID,
                                                          run_id="r5", transport="amqp", now=done_at, policy=policy)
    assert gave_up.to_send == [] and gave_up.backing_off["CP002"].startswith("gave up after 3 attempts")
    [changed] = outbox.prepare([profile_for("CP002", 9.0)], site_id=SITE_ID, run_id="r6", transport="amqp", now=done_at,
                               policy=policy).to_send
    assert changed.attempts == 4
    assert [event for _, event, _ in outbox.events(second.id)] == ["pending", "unroutable", "superseded"]


def test_a_sent_profile_without_an_answer_times_out_and_is_rebuilt(store) -> None:
    """CitrineOS drops a payload its schema refuses (or a broker restart loses it): no answer ever comes. After
    the deadline the entry is unanswered and the next run sends the current plan under the same profile id."""
    policy = DeliveryPolicy(answer_deadline=timedelta(minutes=2))
    outbox = Outbox(store.engine)
    sent = sent_entry(outbox, profile_for("CP006", 5.0))
    assert outbox.expire_unanswered(NOW + timedelta(seconds=119), policy) == []
    waiting = outbox.prepare([profile_for("CP006", 5.0)], site_id=SITE_ID, run_id="r2", transport="amqp",
                             now=NOW + timedelta(seconds=119), policy=policy)
    assert waiting.skipped["CP006"] == f"identical profile awaiting answer (outbox #{sent.id})"
    late = NOW + timedelta(seconds=121)
    [timed_out] = outbox.expire_unanswered(late, policy)
    assert (timed_out.id, timed_out.status) == (sent.id, "unanswered")
    assert timed_out.status_reason == f"no answer within 120 s of sending at {NOW.isoformat()}"
    [again] = outbox.prepare([profile_for("CP006", 5.0)], site_id=SITE_ID, run_id="r3", transport="amqp", now=late,
                             policy=policy).to_send
    assert (again.attempts, again.profile_id) == (2, sent.profile_id)
    # the first one's answer arrives after all: kept in its history, the newer entry is what counts
    assert outbox.record_answer(sent.correlation_id, "Accepted", now=late)
    assert outbox.get(sent.correlation_id).status == "superseded"
    assert [event for _, event, _ in outbox.events(sent.id)] == [
        "pending", "sent", "unanswered", "superseded", "late_accepted"]


def test_a_tx_profile_update_over_rest_clears_the_held_one_first(store) -> None:
    """CitrineOS's REST side refuses a second TxProfile of the same transaction and stack level while the first
    is active (K01.FR.39): such an update carries a ClearChargingProfile. On the bus the same id replaces it."""
    outbox = Outbox(store.engine)
    first = sent_entry(outbox, profile_for("CP007", 5.0, "tx-7"), transport="rest")
    assert first.clear_correlation_id is None  # nothing held yet
    outbox.record_answer(first.correlation_id, "Accepted", now=NOW)
    [update] = outbox.prepare([profile_for("CP007", 6.0, "tx-7")], site_id=SITE_ID,
                                                                   run_id="r2", transport="rest", now=NOW).to_send
    assert (update.clear_status, update.profile_id) == ("pending", first.profile_id)
    assert update.clear_correlation_id not in (None, update.correlation_id)
    assert outbox.apply_answer(Answer(update.clear_correlation_id, "CP007", "Accepted",
                                      action="ClearChargingProfile"))
    assert outbox.get(update.correlation_id).clear_status == "accepted"
    outbox.mark(update.correlation_id, "sent", now=NOW)
    outbox.record_answer(update.correlation_id, "Accepted", now=NOW)
    [bus] = outbox.prepare([profile_for("CP007", 7.0, "tx-7")], site_id=SITE_ID,
                                                                run_id="r3", transport="amqp", now=NOW).to_send
    assert bus.clear_correlation_id is None


def test_validity_to_outlast_counts_what_reached_citrineos(store) -> None:
    outbox = Outbox(store.engine)
    [entry] = outbox.prepare([profile_for("CP008", 5.0)], site_id=SITE_ID,
                                                          run_id="r1", transport="rest", now=NOW).to_send
    assert outbox.valid_to_to_outlast(NOW) == {}  # pending: CitrineOS holds nothing yet
    outbox.mark(entry.correlation_id, "sent", now=NOW)
    assert outbox.valid_to_to_outlast(NOW) == {("CP008", "TxDefaultProfile", 1): entry.valid_to}
    outbox.record_answer(entry.correlation_id, "Rejected", now=NOW)
    assert outbox.valid_to_to_outlast(NOW) == {}
    # the station's answer (a REST callback) may come before the transport reports the send: it still counts
    # (seen on a real CitrineOS 1.8.3, whose refusal of the next re-plan this prevents)
    [fast] = outbox.prepare([profile_for("CP009", 5.0)], site_id=SITE_ID,
                                                         run_id="r2", transport="rest", now=NOW).to_send
    outbox.record_answer(fast.correlation_id, "Accepted", now=NOW)
    outbox.mark(fast.correlation_id, "sent", now=NOW)
    assert outbox.valid_to_to_outlast(NOW) == {("CP009", "TxDefaultProfile", 1): fast.valid_to}


def test_one_entry_per_station_per_run(store) -> None:
    outbox = Outbox(store.engine)
    with pytest.raises(ValueError, match="CP003"):
        outbox.prepare([profile_for("CP003", 1.0), profile_for("CP003", 2.0)], site_id=SITE_ID,
                                                                               run_id="r1", transport="amqp", now=NOW)
    # several undelivered entries for one station: one new entry, every older one superseded
    [a] = outbox.prepare([profile_for("CP003", 1.0)], site_id=SITE_ID, run_id="r1", transport="amqp", now=NOW).to_send
    outbox.mark(a.correlation_id, "failed", now=NOW)
    [b] = outbox.prepare([profile_for("CP003", 2.0)], site_id=SITE_ID,
                                                      run_id="r2", transport="amqp", now=NOW + SLOT).to_send
    assert outbox.get(a.correlation_id).status == "superseded"
    assert [e.correlation_id for e in outbox.entries(["CP003"]) if e.status != "superseded"] == [b.correlation_id]


def test_sent_awaiting_answer_not_resent_and_answer_not_overwritten(store) -> None:
    outbox = Outbox(store.engine)
    [entry] = outbox.prepare([profile_for("CP004", 4.0)], site_id=SITE_ID,
                                                          run_id="r1", transport="amqp", now=NOW).to_send
    # a fast station answers before the transport reports the confirm
    outbox.record_answer(entry.correlation_id, "Rejected", "InvalidSchedule")
    outbox.mark(entry.correlation_id, "sent", now=NOW)
    assert outbox.get(entry.correlation_id).status == "rejected"
    sent_entry(outbox, profile_for("CP004", 4.5), run_id="r2")
    prepared = outbox.prepare([profile_for("CP004", 4.5)], site_id=SITE_ID, run_id="r3", transport="amqp", now=NOW)
    assert prepared.to_send == [] and "awaiting answer" in prepared.skipped["CP004"]
    assert outbox.record_answer("not-ours", "Accepted") is False


def test_identical_to_a_rejected_profile_not_resent_unless_forced_or_changed(store) -> None:
    """A station that refused a profile refuses the same bytes again: resending it every run only floods the
    station and the operator's log. It is sent again when forced or when the plan changes."""
    outbox = Outbox(store.engine)
    first = sent_entry(outbox, profile_for("CP005", 5.0))
    assert outbox.record_answer(first.correlation_id, "Rejected", "InvalidSchedule")
    later = build_profile(StationTarget("CP005", 1, 22.0), {START + SLOT * i: 5.0 for i in range(8)},
                          now=NOW + timedelta(minutes=5))
    prepared = outbox.prepare([later], site_id=SITE_ID, run_id="r2", transport="amqp", now=NOW)
    assert prepared.to_send == []
    assert prepared.skipped["CP005"] == (f"identical to profile rejected by the station (outbox #{first.id}: "
                                         "InvalidSchedule); not resent unless forced or the plan changes")
    assert prepared.repeat_rejected == {"CP005": first.id}
    report = dispatch_profiles(outbox, OutboxOnlyTransport(), [later], site_id=SITE_ID, run_id="r3", now=NOW)
    assert report.counts()["skipped_rejected"] == 1 and report.entries == {}
    forced = outbox.prepare([later], site_id=SITE_ID, run_id="r4", transport="amqp", force=True, now=NOW)
    assert [e.station_id for e in forced.to_send] == ["CP005"]
    assert forced.to_send[0].correlation_id != first.correlation_id
    outbox.record_answer(forced.to_send[0].correlation_id, "Rejected", "InvalidSchedule")
    changed = outbox.prepare([profile_for("CP005", 6.0)], site_id=SITE_ID, run_id="r5", transport="amqp", now=NOW)
    assert [e.station_id for e in changed.to_send] == ["CP005"]
    # a profile accepted after the rejection is what the station follows: the rejected one may be tried again
    outbox.record_answer(changed.to_send[0].correlation_id, "Accepted")
    back = outbox.prepare([profile_for("CP005", 5.0)], site_id=SITE_ID, run_id="r6", transport="amqp", now=NOW)
    assert [e.station_id for e in back.to_send] == ["CP005"]


def test_nothing_planned_replaces_a_stale_profile_with_limit_zero_once(store, site) -> None:
    """A station whose plan disappeared must not keep following the last profile it got: it gets a zero-limit
    profile under the same id (which replaces it) until the stale one's validTo, recorded in the outbox."""
    outbox = Outbox(store.engine)
    built = profiles_from_plan(site, plan_frame(site, START, {"CP001": [11.0] * 8, "CP002": [0.0] * 8}), now=NOW)
    first = dispatch_profiles(outbox, OutboxOnlyTransport(), built.profiles, site_id=SITE_ID, run_id="r1", now=NOW)
    for station in ("CP001", "CP002"):
        outbox.mark(first.entries[station].correlation_id, "sent", now=NOW)
    outbox.record_answer(first.entries["CP001"].correlation_id, "Accepted")
    later = NOW + timedelta(minutes=20)
    in_force = outbox.last_in_force(later)
    assert set(in_force) == {"CP001", "CP002"}  # CP002's awaits its answer: the station may hold it
    nothing = profiles_from_plan(site, pd.DataFrame(), now=later, in_force=in_force)
    # CP002's last profile already says 0 kW: nothing to clear there
    assert [p.station_id for p in nothing.profiles] == ["CP001"]
    [zero] = nothing.profiles
    assert nothing.cleared == {"CP001": first.entries["CP001"].id}
    assert zero.profile_id == first.entries["CP001"].profile_id
    assert zero.limits == ((0, 0.0),)
    charging = zero.payload["chargingProfile"]
    assert (charging["chargingSchedule"][0]["startSchedule"], charging["validTo"]) == (
        "2026-11-28T13:15:00Z", "2026-11-28T15:15:00Z")  # one slot past the stale 15:00: outlasts it
    assert "nothing planned" in zero.notes[0]
    second = dispatch_profiles(outbox, OutboxOnlyTransport(), nothing.profiles, site_id=SITE_ID, run_id="r2", now=later)
    assert second.entries["CP001"].limits == [(0, 0.0)]
    outbox.mark(second.entries["CP001"].correlation_id, "sent", now=later)
    # once CP001 may hold the zero profile, nothing more to clear
    assert profiles_from_plan(site, pd.DataFrame(), now=later, in_force=outbox.last_in_force(later)).profiles == []
    # a stale profile that has run out needs no clearing
    assert outbox.last_in_force(NOW + timedelta(hours=3)) == {}


def test_a_stale_profile_whose_charging_is_over_needs_no_zero_profile(store, site) -> None:
    outbox = Outbox(store.engine)
    built = profiles_from_plan(site, plan_frame(site, START, {"CP003": [7.0, 7.0] + [0.0] * 6}), now=NOW)
    report = dispatch_profiles(outbox, OutboxOnlyTransport(), built.profiles, site_id=SITE_ID, run_id="r1", now=NOW)
    outbox.mark(report.entries["CP003"].correlation_id, "sent", now=NOW)
    # 13:29: the 7 kW periods still run until 13:30 -> replaced; 13:31: only zeros remain -> left alone
    assert [p.station_id for p in profiles_from_plan(
        site, pd.DataFrame(), now=NOW + timedelta(minutes=21, seconds=30),
        in_force=outbox.last_in_force(NOW)).profiles] == ["CP003"]
    assert profiles_from_plan(site, pd.DataFrame(), now=NOW + timedelta(minutes=23, seconds=30),
                              in_force=outbox.last_in_force(NOW)).profiles == []


def test_answers_that_beat_the_transports_report_are_kept(store) -> None:
    """Over REST CitrineOS may post the station's answer to our callback before its HTTP response reaches us (seen
    on a real CitrineOS 1.8.3): the transport's later "sent" must not overwrite the answer."""
    outbox = Outbox(store.engine)
    first = sent_entry(outbox, profile_for("CP010", 5.0, "tx-10"), transport="rest")
    outbox.record_answer(first.correlation_id, "Accepted", now=NOW)
    [update] = outbox.prepare([profile_for("CP010", 6.0, "tx-10")], site_id=SITE_ID,
                                                                    run_id="r2", transport="rest", now=NOW).to_send
    assert outbox.apply_answer(Answer(update.clear_correlation_id, "CP010", "Accepted",
                                      action="ClearChargingProfile"))
    outbox.mark_clear(update.clear_correlation_id, "sent", now=NOW)
    assert outbox.get(update.correlation_id).clear_status == "accepted"
    outbox.record_answer(update.correlation_id, "Accepted", now=NOW)
    [asked] = outbox.request_readbacks(outbox.entries(ids=[update.id]), now=NOW)
    schedule = {"evseId": 1, "duration": 3600, "scheduleStart": "2026-11-28T13:07:30Z", "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6000.0}]}
    assert outbox.apply_answer(Answer(asked.readback_correlation_id, "CP010", "Accepted",
                                      action="GetCompositeSchedule",
                                      payload={"status": "Accepted", "schedule": schedule}))
    outbox.mark_readback(asked.readback_correlation_id, "sent", now=NOW)
    final = outbox.get(update.correlation_id)
    assert (final.readback_status, final.readback_detail) == ("matches",
                                                              "the station's composite schedule equals the plan")


def test_marking_many_entries_sent_at_once_keeps_answers_and_records_each(store) -> None:
    outbox = Outbox(store.engine)
    prepared = outbox.prepare([profile_for(f"CP{n:03d}", 5.0) for n in range(1, 4)], site_id=SITE_ID,
                                                                                     run_id="r1", transport="amqp",
                              now=NOW)
    first, _, third = prepared.to_send
    outbox.record_answer(third.correlation_id, "Accepted", now=NOW)  # the station was faster than the confirm
    outbox.mark_sent([e.correlation_id for e in prepared.to_send], now=NOW)
    marked = {e.station_id: (e.status, e.sent_at) for e in outbox.entries()}
    assert marked == {"CP001": ("sent", NOW), "CP002": ("sent", NOW), "CP003": ("accepted", NOW)}
    assert [event for _, event, _ in outbox.events(first.id)] == ["pending", "sent"]
    assert [event for _, event, _ in outbox.events(third.id)] == ["pending", "accepted"]


def test_what_a_run_sends_is_recorded_as_it_was_asked(store) -> None:
    outbox = Outbox(store.engine)
    [plain] = outbox.prepare([profile_for("CP001", 5.0)], site_id=SITE_ID,
                                                          run_id="r1", transport="amqp", now=NOW).to_send
    [forced] = outbox.prepare([profile_for("CP002", 5.0)], site_id=SITE_ID, run_id="r2", transport="rest", force=True,
                              now=NOW).to_send
    assert (plain.run_id, plain.transport, plain.forced, plain.status, plain.status_reason,
            plain.delivery_uncertain) == ("r1", "amqp", False, "pending", "", False)
    assert (forced.run_id, forced.transport, forced.forced) == ("r2", "rest", True)
    assert (plain.valid_to, plain.created_at, plain.updated_at) == (START + 8 * SLOT, NOW, NOW)
    before = datetime.now(UTC)
    [stamped] = outbox.prepare([profile_for("CP003", 5.0)], site_id=SITE_ID, run_id="r3", transport="amqp").to_send
    assert before <= stamped.created_at <= datetime.now(UTC)


def test_a_run_without_a_profile_for_a_station_says_why_it_leaves_it(store) -> None:
    outbox = Outbox(store.engine)
    awaiting = sent_entry(outbox, profile_for("CP001", 5.0))
    [pending] = outbox.prepare([profile_for("CP002", 5.0)], site_id=SITE_ID,
                                                            run_id="r2", transport="amqp", now=NOW).to_send
    prepared = outbox.prepare([], site_id=SITE_ID, run_id="r3", transport="amqp", now=NOW)
    assert prepared.skipped == {"CP001": "awaiting the station's answer"}
    assert outbox.get(awaiting.correlation_id).status == "sent"
    assert outbox.get(pending.correlation_id).status_reason == (
        "run r3 has no profile for CP002 (nothing planned): not re-sent stale")


def test_a_profile_never_handed_over_is_rebuilt_whatever_the_attempt_limit(store) -> None:
    """A pending entry was never tried: it does not count towards `max_attempts`, nor does it back off."""
    policy = DeliveryPolicy(max_attempts=1)
    outbox = Outbox(store.engine)
    [first] = outbox.prepare([profile_for("CP001", 5.0)], site_id=SITE_ID, run_id="r1", transport="amqp", now=NOW,
                             policy=policy).to_send
    [again] = outbox.prepare([profile_for("CP001", 5.0)], site_id=SITE_ID, run_id="r2", transport="amqp", now=NOW,
                             policy=policy).to_send
    assert (again.attempts, outbox.get(first.correlation_id).status) == (1, "superseded")


def test_unchanged_and_repeat_rejected_name_the_twin_they_compare_with(store) -> None:
    outbox = Outbox(store.engine)
    old = sent_entry(outbox, profile_for("CP001", 5.0))
    outbox.record_answer(old.correlation_id, "Accepted", now=NOW)
    newer = sent_entry(outbox, profile_for("CP001", 6.0), run_id="r2")
    outbox.record_answer(newer.correlation_id, "Accepted", now=NOW)
    mine = sent_entry(outbox, profile_for("CP002", 5.0), run_id="r3")
    outbox.record_answer(mine.correlation_id, "Accepted", now=NOW)
    other = sent_entry(outbox, profile_for("CP003", 5.0), run_id="r4")  # a newer acceptance, another station
    outbox.record_answer(other.correlation_id, "Accepted", now=NOW)
    refused = sent_entry(outbox, profile_for("CP004", 5.0), run_id="r5")
    outbox.record_answer(refused.correlation_id, "Rejected", now=NOW)  # no reason given
    prepared = outbox.prepare([profile_for(station, 5.0) for station in ("CP001", "CP002", "CP004")],
                              site_id=SITE_ID, run_id="r6", transport="amqp", now=NOW)
    # CP001's last accepted profile is the newer 6 kW one: 5 kW is a change
    assert [entry.station_id for entry in prepared.to_send] == ["CP001"]
    assert prepared.unchanged == {"CP002": mine.id}
    assert prepared.repeat_rejected == {"CP004": refused.id}
    assert prepared.skipped["CP004"] == (f"identical to profile rejected by the station (outbox #{refused.id}); "
                                         "not resent unless forced or the plan changes")


def test_the_margin_a_held_profile_must_still_run_is_the_runs_own(store) -> None:
    """The same limits for longer: within the run's margin the profile goes out to extend the one held, beyond
    it the station is left alone."""
    outbox = Outbox(store.engine)
    held = sent_entry(outbox, profile_for("CP001", 5.0))  # runs to START + 2 h, 1 h 52 min ahead of NOW
    outbox.record_answer(held.correlation_id, "Accepted", now=NOW)
    longer = build_profile(StationTarget("CP001", 1, 22.0), {START + SLOT * i: 5.0 for i in range(12)}, now=NOW)
    relaxed = outbox.prepare([longer], site_id=SITE_ID,
                                       run_id="r2", transport="amqp", now=NOW, min_validity_ahead=timedelta(hours=1))
    assert (relaxed.to_send, relaxed.unchanged) == ([], {"CP001": held.id})
    strict = outbox.prepare([longer], site_id=SITE_ID,
                                      run_id="r3", transport="amqp", now=NOW, min_validity_ahead=timedelta(hours=2))
    assert [entry.station_id for entry in strict.to_send] == ["CP001"]
