"""Outbox rules on SQLite and the real PostgreSQL: stored before sending, no resend of what was accepted,
retries of pending/failed entries, at most one entry per station and run."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cariflex_pipeline.dispatch import (
    Outbox,
    OutboxOnlyTransport,
    StationTarget,
    build_profile,
    dispatch_profiles,
)
from cariflex_pipeline_tests.dispatch.conftest import NOW

SLOT = timedelta(minutes=15)
START = NOW.replace(minute=0, second=0)


def _profile(station: str, kw: float):
    return build_profile(StationTarget(station, 1, 22.0), {START + SLOT * i: kw for i in range(8)}, now=NOW)


def test_profiles_stored_pending_before_sending_and_retried(store) -> None:
    outbox = Outbox(store.engine)
    report = dispatch_profiles(outbox, OutboxOnlyTransport(), [_profile("CP001", 5.0)], run_id="r1", now=NOW)
    [entry] = outbox.entries()
    assert (entry.station_id, entry.status, entry.attempts) == ("CP001", "pending", 1)
    assert report.entries["CP001"].correlation_id == entry.correlation_id
    # the next run without a new profile retries the pending one, same correlation id
    prepared = outbox.prepare([], run_id="r2", transport="amqp", now=NOW)
    assert [(e.correlation_id, e.attempts) for e in prepared.to_send] == [(entry.correlation_id, 2)]


def test_identical_to_last_accepted_not_resent_unless_forced(store) -> None:
    outbox = Outbox(store.engine)
    [first] = outbox.prepare([_profile("CP001", 5.0)], run_id="r1", transport="amqp", now=NOW).to_send
    outbox.mark(first.correlation_id, "sent")
    assert outbox.record_answer(first.correlation_id, "Accepted")
    # validFrom moves with the clock; the profile is still identical
    later = build_profile(StationTarget("CP001", 1, 22.0), {START + SLOT * i: 5.0 for i in range(8)},
                          now=NOW + timedelta(minutes=5))
    prepared = outbox.prepare([later], run_id="r2", transport="amqp", now=NOW)
    assert prepared.to_send == []
    assert "identical to last accepted" in prepared.skipped["CP001"]
    forced = outbox.prepare([later], run_id="r3", transport="amqp", force=True, now=NOW)
    assert [e.station_id for e in forced.to_send] == ["CP001"]
    assert forced.to_send[0].correlation_id != first.correlation_id
    # a different profile is sent
    changed = outbox.prepare([_profile("CP001", 6.0)], run_id="r4", transport="amqp", now=NOW)
    assert [e.station_id for e in changed.to_send] == ["CP001"]


def test_failed_retried_and_superseded_by_a_newer_profile(store) -> None:
    outbox = Outbox(store.engine)
    [old] = outbox.prepare([_profile("CP002", 5.0)], run_id="r1", transport="amqp", now=NOW).to_send
    outbox.mark(old.correlation_id, "failed", "connection lost")
    [retry] = outbox.prepare([_profile("CP002", 5.0)], run_id="r2", transport="amqp", now=NOW).to_send
    assert retry.correlation_id == old.correlation_id and retry.attempts == 2
    outbox.mark(retry.correlation_id, "unroutable", "offline")
    [new] = outbox.prepare([_profile("CP002", 9.0)], run_id="r3", transport="amqp", now=NOW).to_send
    assert new.correlation_id != old.correlation_id
    statuses = {e.correlation_id: e.status for e in outbox.entries(["CP002"])}
    assert statuses == {old.correlation_id: "superseded", new.correlation_id: "pending"}


def test_one_entry_per_station_per_run(store) -> None:
    outbox = Outbox(store.engine)
    with pytest.raises(ValueError, match="CP003"):
        outbox.prepare([_profile("CP003", 1.0), _profile("CP003", 2.0)], run_id="r1", transport="amqp", now=NOW)
    # several open entries for one station: only the newest is retried, the rest superseded
    [a] = outbox.prepare([_profile("CP003", 1.0)], run_id="r1", transport="amqp", now=NOW).to_send
    outbox.mark(a.correlation_id, "failed")
    [b] = outbox.prepare([_profile("CP003", 2.0)], run_id="r2", transport="amqp", now=NOW).to_send
    outbox.mark(b.correlation_id, "failed")
    prepared = outbox.prepare([], run_id="r3", transport="amqp", now=NOW)
    assert [e.correlation_id for e in prepared.to_send] == [b.correlation_id]


def test_sent_awaiting_answer_not_resent_and_answer_not_overwritten(store) -> None:
    outbox = Outbox(store.engine)
    [entry] = outbox.prepare([_profile("CP004", 4.0)], run_id="r1", transport="amqp", now=NOW).to_send
    # a fast station answers before the transport reports the confirm
    outbox.record_answer(entry.correlation_id, "Rejected", "InvalidSchedule")
    outbox.mark(entry.correlation_id, "sent")
    assert outbox.get(entry.correlation_id).status == "rejected"
    [again] = outbox.prepare([_profile("CP004", 4.5)], run_id="r2", transport="amqp", now=NOW).to_send
    outbox.mark(again.correlation_id, "sent")
    prepared = outbox.prepare([_profile("CP004", 4.5)], run_id="r3", transport="amqp", now=NOW)
    assert prepared.to_send == [] and "awaiting answer" in prepared.skipped["CP004"]
    assert outbox.record_answer("not-ours", "Accepted") is False


def test_identical_to_a_rejected_profile_not_resent_unless_forced_or_changed(store) -> None:
    """A station that refused a profile refuses the same bytes again: resending it every run only floods the
    station and the operator's log. It is sent again when forced or when the plan changes."""
    outbox = Outbox(store.engine)
    [first] = outbox.prepare([_profile("CP005", 5.0)], run_id="r1", transport="amqp", now=NOW).to_send
    outbox.mark(first.correlation_id, "sent")
    assert outbox.record_answer(first.correlation_id, "Rejected", "InvalidSchedule")
    later = build_profile(StationTarget("CP005", 1, 22.0), {START + SLOT * i: 5.0 for i in range(8)},
                          now=NOW + timedelta(minutes=5))
    prepared = outbox.prepare([later], run_id="r2", transport="amqp", now=NOW)
    assert prepared.to_send == []
    assert prepared.skipped["CP005"] == (f"identical to profile rejected by the station (outbox #{first.id}: "
                                         "InvalidSchedule); not resent unless forced or the plan changes")
    assert prepared.repeat_rejected == {"CP005": first.id}
    report = dispatch_profiles(outbox, OutboxOnlyTransport(), [later], run_id="r3", now=NOW)
    assert report.counts()["skipped_rejected"] == 1 and report.entries == {}
    forced = outbox.prepare([later], run_id="r4", transport="amqp", force=True, now=NOW)
    assert [e.station_id for e in forced.to_send] == ["CP005"]
    assert forced.to_send[0].correlation_id != first.correlation_id
    outbox.record_answer(forced.to_send[0].correlation_id, "Rejected", "InvalidSchedule")
    changed = outbox.prepare([_profile("CP005", 6.0)], run_id="r5", transport="amqp", now=NOW)
    assert [e.station_id for e in changed.to_send] == ["CP005"]
    # a profile accepted after the rejection is what the station follows: the rejected one may be tried again
    outbox.record_answer(changed.to_send[0].correlation_id, "Accepted")
    back = outbox.prepare([_profile("CP005", 5.0)], run_id="r6", transport="amqp", now=NOW)
    assert [e.station_id for e in back.to_send] == ["CP005"]


def test_nothing_planned_replaces_a_stale_profile_with_limit_zero_once(store, site) -> None:
    """A station whose plan disappeared must not keep following the last profile it got: it gets a zero-limit
    profile under the same id (which replaces it) until the stale one's validTo, recorded in the outbox."""
    import pandas as pd

    from cariflex_pipeline.dispatch import profiles_from_plan
    from cariflex_pipeline_tests.dispatch.conftest import plan_frame

    outbox = Outbox(store.engine)
    built = profiles_from_plan(site, plan_frame(site, START, {"CP001": [11.0] * 8, "CP002": [0.0] * 8}), now=NOW)
    first = dispatch_profiles(outbox, OutboxOnlyTransport(), built.profiles, run_id="r1", now=NOW)
    outbox.mark(first.entries["CP001"].correlation_id, "sent")
    outbox.record_answer(first.entries["CP001"].correlation_id, "Accepted")
    later = NOW + timedelta(minutes=20)
    in_force = outbox.last_in_force(later)
    assert set(in_force) == {"CP001", "CP002"}
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
    second = dispatch_profiles(outbox, OutboxOnlyTransport(), nothing.profiles, run_id="r2", now=later)
    assert second.entries["CP001"].limits == [(0, 0.0)]
    # CP002's pending zero profile is retried as usual; once CP001's zero profile is the latest, nothing more
    assert profiles_from_plan(site, pd.DataFrame(), now=later, in_force=outbox.last_in_force(later)).profiles == []
    # a stale profile that has run out needs no clearing
    assert outbox.last_in_force(NOW + timedelta(hours=3)) == {}


def test_a_stale_profile_whose_charging_is_over_needs_no_zero_profile(store, site) -> None:
    import pandas as pd

    from cariflex_pipeline.dispatch import profiles_from_plan
    from cariflex_pipeline_tests.dispatch.conftest import plan_frame

    outbox = Outbox(store.engine)
    built = profiles_from_plan(site, plan_frame(site, START, {"CP003": [7.0, 7.0] + [0.0] * 6}), now=NOW)
    dispatch_profiles(outbox, OutboxOnlyTransport(), built.profiles, run_id="r1", now=NOW)
    # 13:29: the 7 kW periods still run until 13:30 -> replaced; 13:31: only zeros remain -> left alone
    assert [p.station_id for p in profiles_from_plan(
        site, pd.DataFrame(), now=NOW + timedelta(minutes=21, seconds=30),
        in_force=outbox.last_in_force(NOW)).profiles] == ["CP003"]
    assert profiles_from_plan(site, pd.DataFrame(), now=NOW + timedelta(minutes=23, seconds=30),
                              in_force=outbox.last_in_force(NOW)).profiles == []
