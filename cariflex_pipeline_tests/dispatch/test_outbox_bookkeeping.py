"""The outbox's record of what crossed the boundary, rule by rule, on SQLite and the real PostgreSQL: what the
transport reports (sent, failed with an uncertain delivery), what stations answer (SetChargingProfile,
ClearChargingProfile, GetCompositeSchedule), what times out, and which entry a station may still hold.

The flows these rules serve are tested end to end elsewhere (test_delivery, test_rest, test_composite); these
tests pin each rule down where the outbox keeps it, so that a changed comparison or a lost column is caught by a
test that runs in milliseconds (the mutation run of `outbox.py`, docs/mutation.md, judges by them)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from cariflex_pipeline.dispatch import Answer, DeliveryPolicy, Outbox
from cariflex_pipeline.dispatch.composite import compare_composite
from cariflex_pipeline_tests.dispatch.conftest import NOW, SITE_ID, START, profile_for, sent_entry

POLICY = DeliveryPolicy(answer_deadline=timedelta(minutes=2))
LATER = NOW + timedelta(minutes=1)


def _prepared(outbox: Outbox, *stations: str, kw: float = 5.0, transport: str = "amqp"):
    return outbox.prepare([profile_for(station, kw) for station in stations], site_id=SITE_ID,
                                                                              run_id="r1", transport=transport,
                          now=NOW).to_send


def _composite(periods: list[tuple[int, float]], status: str = "Accepted") -> dict:
    """A GetCompositeScheduleResponse payload for EVSE 1 over the two hours of `profile_for`."""
    return {"status": status, "schedule": {
        "evseId": 1, "duration": 7200, "scheduleStart": START.isoformat().replace("+00:00", "Z"),
        "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": at, "limit": kw} for at, kw in periods]}}


def _events(outbox: Outbox, entry) -> list[tuple[datetime, str, str]]:
    return outbox.events(entry.id)


def _by_id(answers: list[Answer]) -> list[Answer]:
    """`Outbox.answered` in a stable order: the rows' order is the database's."""
    return sorted(answers, key=lambda answer: answer.correlation_id)


def test_every_entry_handed_over_is_marked_sent_once_across_chunks(store) -> None:
    """mark_sent updates 500 entries per statement: 501 entries need two chunks, neither missing nor doubling
    the one at the seam."""
    outbox = Outbox(store.engine)
    entries = _prepared(outbox, *(f"CP{n:04d}" for n in range(501)))
    outbox.mark_sent([entry.correlation_id for entry in entries], now=LATER)
    assert {(entry.status, entry.sent_at, entry.updated_at) for entry in outbox.entries()} == {("sent", LATER, LATER)}
    for entry in (entries[0], entries[499], entries[500]):
        assert [event[1:] for event in _events(outbox, entry)] == [("pending", "attempt 1"), ("sent", "")]
        assert _events(outbox, entry)[-1][0] == LATER


def test_marked_sent_clears_an_earlier_failure_and_leaves_other_entries_alone(store) -> None:
    outbox = Outbox(store.engine)
    retried, untouched = _prepared(outbox, "CP001", "CP002")
    outbox.mark(untouched.correlation_id, "failed", "x" * 2500, now=NOW)  # an event keeps 2,000 characters
    assert _events(outbox, untouched)[-1][2] == "x" * 2000
    outbox.mark(untouched.correlation_id, "pending", now=NOW)
    outbox.mark(retried.correlation_id, "failed", "broker connection lost", uncertain=True, now=NOW)
    failed = outbox.get(retried.correlation_id)
    assert (failed.status, failed.status_reason, failed.delivery_uncertain) == ("failed", "broker connection lost",
                                                                                True)
    assert outbox.uncertain_correlation_ids() == {retried.correlation_id}
    outbox.mark_sent([retried.correlation_id], now=LATER)
    sent = outbox.get(retried.correlation_id)
    assert (sent.status, sent.status_reason, sent.delivery_uncertain, sent.sent_at) == ("sent", "", False, LATER)
    assert outbox.uncertain_correlation_ids() == set()
    other = outbox.get(untouched.correlation_id)
    assert (other.status, other.sent_at, other.updated_at) == ("pending", None, NOW)


def test_only_an_uncertain_failure_counts_as_uncertain(store) -> None:
    """The AMQP transport asks again about what may have reached the broker: failures marked uncertain, not
    certain failures, nor an uncertain entry the station has answered since, nor one the broker could not route."""
    outbox = Outbox(store.engine)
    uncertain, certain, answered, unroutable = _prepared(outbox, "CP001", "CP002", "CP003", "CP004")
    outbox.mark(uncertain.correlation_id, "failed", "no confirm", uncertain=True, now=NOW)
    outbox.mark(certain.correlation_id, "failed", "refused", now=NOW)
    outbox.mark(answered.correlation_id, "failed", "no confirm", uncertain=True, now=NOW)
    assert outbox.record_answer(answered.correlation_id, "Accepted", now=NOW)
    outbox.mark(unroutable.correlation_id, "unroutable", "no queue", uncertain=True, now=NOW)
    assert outbox.get(answered.correlation_id).delivery_uncertain is False
    assert outbox.uncertain_correlation_ids() == {uncertain.correlation_id}


def test_an_answer_before_the_transports_report_keeps_the_answer_and_gets_the_time_sent(store) -> None:
    outbox = Outbox(store.engine)
    fast, rejected, plain = _prepared(outbox, "CP001", "CP002", "CP003")
    assert outbox.record_answer(fast.correlation_id, "Accepted", now=NOW)
    assert outbox.record_answer(rejected.correlation_id, "Rejected", "TxProfileConflictingStackLevel", now=NOW)
    # an answer stands for a sending: its time sent is the answer's until the transport reports its own
    assert outbox.get(fast.correlation_id).sent_at == NOW
    outbox.mark(fast.correlation_id, "failed", "late error report", now=LATER)
    outbox.mark_sent([rejected.correlation_id, plain.correlation_id], now=LATER)
    outbox.mark(fast.correlation_id, "sent", now=LATER)
    kept = {entry.station_id: (entry.status, entry.sent_at, entry.answered_at) for entry in outbox.entries()}
    assert kept == {"CP001": ("accepted", NOW, NOW), "CP002": ("rejected", NOW, NOW),
                    "CP003": ("sent", LATER, None)}
    assert outbox.get(rejected.correlation_id).status_reason == "TxProfileConflictingStackLevel"
    assert [event[1] for event in _events(outbox, fast)] == ["pending", "accepted"]


def test_a_transport_report_without_a_time_is_stamped_now_in_utc(store) -> None:
    outbox = Outbox(store.engine)
    by_mark, by_batch = _prepared(outbox, "CP001", "CP002")
    before = datetime.now(UTC)
    outbox.mark(by_mark.correlation_id, "sent")
    outbox.mark_sent([by_batch.correlation_id])
    after = datetime.now(UTC)
    for entry in (by_mark, by_batch):
        sent_at = outbox.get(entry.correlation_id).sent_at
        assert before <= sent_at <= after
    assert _events(outbox, by_mark)[-1][1:] == ("sent", "") and outbox.get(by_mark.correlation_id).status_reason == ""
    assert outbox.mark("not-ours", "sent") is None and len(outbox.entries()) == 2


def test_answers_by_kind_and_what_is_not_ours(store) -> None:
    outbox = Outbox(store.engine)
    # a superseded entry's answer is history, not its status
    late = sent_entry(outbox, profile_for("CP003", 5.0), run_id="CP003")
    outbox.expire_unanswered(NOW + timedelta(minutes=3), POLICY)
    outbox.prepare([profile_for("CP003", 6.0)], site_id=SITE_ID,
                                                run_id="r2", transport="amqp", now=NOW + timedelta(minutes=3))
    assert outbox.get(late.correlation_id).status == "superseded"
    accepted, odd = (sent_entry(outbox, profile_for(station, 5.0), run_id=station) for station in ("CP001", "CP002"))
    assert outbox.apply_answer(Answer(accepted.correlation_id, "CP001", "Accepted", "NoReason"), now=LATER)
    # an answer that is neither Accepted nor Rejected is a failure that says what the station answered
    assert outbox.record_answer(odd.correlation_id, "Unknown", "EVSE busy", now=LATER)
    assert outbox.record_answer(late.correlation_id, "Rejected", "too late", now=LATER)
    assert not outbox.apply_answer(Answer("not-ours", "CP001", "Accepted"), now=LATER)
    assert not outbox.record_answer("not-ours", "Accepted", now=LATER)
    got = {entry.station_id: entry for entry in outbox.entries() if entry.run_id in ("CP001", "CP002", "CP003")}
    assert (got["CP001"].status, got["CP001"].status_reason, got["CP001"].answered_at) == ("accepted", "NoReason",
                                                                                           LATER)
    assert (got["CP002"].status, got["CP002"].status_reason) == ("failed", "station answered 'Unknown' EVSE busy")
    assert (got["CP003"].status, got["CP003"].answered_at) == ("superseded", LATER)
    assert _events(outbox, late)[-1] == (LATER, "late_rejected", "answer after it was superseded too late")
    assert _events(outbox, accepted)[-1] == (LATER, "accepted", "NoReason")


def test_an_answer_without_a_time_is_stamped_now(store) -> None:
    outbox = Outbox(store.engine)
    entry = sent_entry(outbox, profile_for("CP001", 5.0))
    before = datetime.now(UTC)
    assert outbox.apply_answer(Answer(entry.correlation_id, "CP001", "Accepted"))
    assert before <= outbox.get(entry.correlation_id).answered_at <= datetime.now(UTC)


def test_unanswered_after_the_deadline_exactly_and_only_what_was_sent(store) -> None:
    outbox = Outbox(store.engine)
    late, pending, answered = _prepared(outbox, "CP001", "CP002", "CP003")
    outbox.mark_sent([late.correlation_id, answered.correlation_id], now=NOW)
    outbox.record_answer(answered.correlation_id, "Accepted", now=NOW)
    deadline = NOW + POLICY.answer_deadline
    assert outbox.expire_unanswered(deadline - timedelta(microseconds=1), POLICY) == []
    [timed_out] = outbox.expire_unanswered(deadline, POLICY)
    assert (timed_out.id, timed_out.status, timed_out.retry_after, timed_out.updated_at) == (
        late.id, "unanswered", deadline, deadline)
    assert _events(outbox, late)[-1] == (deadline, "unanswered", f"no answer within 120 s of sending at "
                                                                 f"{NOW.isoformat()}")
    assert outbox.get(pending.correlation_id).status == "pending"
    assert outbox.get(answered.correlation_id).status == "accepted"
    assert outbox.expire_unanswered(deadline, POLICY) == []  # once


def test_an_entry_whose_validity_ran_out_before_delivery_expires(store) -> None:
    """profile_for's profiles are valid to START + 2 h: undelivered by then, they are expired (whatever their
    status among the undelivered), and a delivered one is left as it is."""
    outbox = Outbox(store.engine)
    pending, failed, sent = _prepared(outbox, "CP001", "CP002", "CP003")
    outbox.mark(failed.correlation_id, "failed", "refused", now=NOW)
    outbox.mark_sent([sent.correlation_id], now=NOW)
    outbox.record_answer(sent.correlation_id, "Accepted", now=NOW)
    valid_to = START + timedelta(hours=2)
    assert outbox.expire_unanswered(valid_to - timedelta(microseconds=1), POLICY) == []
    assert {entry.station_id: entry.status for entry in outbox.entries()} == {
        "CP001": "pending", "CP002": "failed", "CP003": "accepted"}
    assert outbox.expire_unanswered(valid_to, POLICY) == []  # what expires is not an unanswered sending
    statuses = {entry.station_id: (entry.status, entry.status_reason) for entry in outbox.entries()}
    assert statuses == {"CP001": ("expired", "validTo passed before delivery"),
                        "CP002": ("expired", "validTo passed before delivery"), "CP003": ("accepted", "")}
    assert _events(outbox, pending)[-1] == (valid_to, "expired", "validTo passed before delivery")


def test_a_read_back_is_asked_once_answered_once_and_times_out_unanswered(store) -> None:
    outbox = Outbox(store.engine)
    asked, silent, failed, answered_first = (sent_entry(outbox, profile_for(station, 5.0), run_id=station)
                                             for station in ("CP001", "CP002", "CP003", "CP004"))
    for entry in (asked, silent, failed, answered_first):
        outbox.record_answer(entry.correlation_id, "Accepted", now=NOW)  # what is read back was accepted
    entries = outbox.entries()
    requested = {entry.station_id: entry for entry in outbox.request_readbacks(entries, now=NOW)}
    assert sorted(requested) == ["CP001", "CP002", "CP003", "CP004"]
    for entry in requested.values():
        assert (entry.readback_status, entry.readback_at, entry.readback_detail) == ("pending", NOW, "")
        assert entry.readback_correlation_id not in (None, entry.correlation_id)
    assert len({entry.readback_correlation_id for entry in requested.values()}) == 4
    assert _events(outbox, asked)[-1] == (NOW, "readback_pending", "GetCompositeSchedule to be asked")

    rb = {station: entry.readback_correlation_id for station, entry in requested.items()}
    assert outbox.apply_answer(Answer(rb["CP004"], "CP004", "Accepted", action="GetCompositeSchedule",
                                      payload=_composite([(0, 5000.0)])), now=NOW)
    for station in ("CP001", "CP002", "CP004"):
        outbox.mark_readback(rb[station], "sent", "published", now=NOW)
    outbox.mark_readback(rb["CP003"], "failed", "no route to CP003", now=NOW)
    outbox.mark_readback(rb["CP001"], "failed", "reported after it was sent", now=NOW)  # only from pending
    state = {entry.station_id: (entry.readback_status, entry.readback_detail) for entry in outbox.entries()}
    assert state == {"CP001": ("requested", ""), "CP002": ("requested", ""),
                     "CP003": ("failed", "no route to CP003"),
                     "CP004": ("matches", "the station's composite schedule equals the plan")}
    assert _events(outbox, asked)[-1] == (NOW, "readback_sent", "published")

    assert outbox.apply_answer(Answer(rb["CP001"], "CP001", "Accepted", action="GetCompositeSchedule",
                                      payload=_composite([(0, 5000.0)])), now=LATER)
    deadline = NOW + POLICY.answer_deadline
    assert outbox.expire_unanswered(deadline - timedelta(microseconds=1), POLICY) == []
    assert outbox.get(silent.correlation_id).readback_status == "requested"
    assert outbox.expire_unanswered(deadline, POLICY) == []  # read-backs are not SetChargingProfile sendings
    state = {entry.station_id: (entry.readback_status, entry.readback_detail) for entry in outbox.entries()}
    assert state["CP002"] == ("unanswered", "the station did not answer GetCompositeSchedule")
    assert state["CP001"][0] == state["CP004"][0] == "matches" and state["CP003"][0] == "failed"
    assert _events(outbox, silent)[-1] == (deadline, "readback_unanswered",
                                           "no GetCompositeSchedule answer within the deadline")
    assert not outbox.apply_answer(Answer("not-ours", "CP001", "Accepted", action="GetCompositeSchedule",
                                          payload=_composite([(0, 5000.0)])))
    assert outbox.mark_readback("not-ours", "sent") is None
    # answered: each read-back's outcome under its own id only, whatever else the entry's other ids hold
    assert _by_id(outbox.answered({rb["CP004"], rb["CP003"], asked.correlation_id})) == _by_id([
        Answer(asked.correlation_id, "CP001", "Accepted", ""),
        Answer(rb["CP003"], "CP003", "failed", "no route to CP003", action="GetCompositeSchedule"),
        Answer(rb["CP004"], "CP004", "matches", "the station's composite schedule equals the plan",
               action="GetCompositeSchedule")])
    assert [entry.status for entry in (outbox.get(e.correlation_id) for e in (failed, answered_first))] == [
        "accepted", "accepted"]  # a read-back never changes the profile's own status


def test_a_read_back_that_differs_names_every_difference(store) -> None:
    outbox = Outbox(store.engine)
    differing, refused, empty = (sent_entry(outbox, profile_for(station, 5.0), run_id=station)
                                 for station in ("CP001", "CP002", "CP003"))
    for entry in (differing, refused, empty):
        outbox.record_answer(entry.correlation_id, "Accepted", now=NOW)
    rb = {entry.station_id: entry.readback_correlation_id
          for entry in outbox.request_readbacks(outbox.entries(), now=NOW)}
    station_schedule = _composite([(0, 7000.0), (900, 5000.0), (1800, 3000.0)])
    differences = compare_composite(differing.payload, station_schedule)
    assert len(differences) == 2
    for station, payload, status in (("CP001", station_schedule, "Accepted"),
                                     ("CP002", {"status": "Rejected"}, "Rejected"),
                                     ("CP003", {"status": "Accepted"}, "Accepted")):
        assert outbox.apply_answer(Answer(rb[station], station, status, action="GetCompositeSchedule",
                                          payload=payload), now=LATER)
    state = {entry.station_id: (entry.readback_status, entry.readback_detail) for entry in outbox.entries()}
    assert state == {"CP001": ("differs", "; ".join(differences)),
                     "CP002": ("failed", "station answered Rejected, no composite schedule"),
                     "CP003": ("failed", "station answered Accepted without a composite schedule")}
    assert _events(outbox, refused)[-1] == (LATER, "readback_failed",
                                            "station answered Rejected, no composite schedule")
    assert _events(outbox, empty)[-1][1] == "readback_failed"
    assert _by_id(outbox.answered(set(rb.values()))) == _by_id([
        Answer(rb["CP001"], "CP001", "differs", "; ".join(differences), action="GetCompositeSchedule"),
        Answer(rb["CP002"], "CP002", "failed", "station answered Rejected, no composite schedule",
               action="GetCompositeSchedule"),
        Answer(rb["CP003"], "CP003", "failed", "station answered Accepted without a composite schedule",
               action="GetCompositeSchedule")])


def test_the_answers_a_rest_transport_waits_for(store) -> None:
    """`answered` gives what is recorded for the correlation ids asked about, of each kind, and nothing that is
    still open or belongs to another id."""
    outbox = Outbox(store.engine)
    first = sent_entry(outbox, profile_for("CP007", 5.0, "tx-7"), transport="rest")
    outbox.record_answer(first.correlation_id, "Accepted", "fine", now=NOW)
    [update] = outbox.prepare([profile_for("CP007", 6.0, "tx-7")], site_id=SITE_ID, run_id="r2", transport="rest",
                              now=NOW).to_send
    waiting = {first.correlation_id, update.correlation_id, update.clear_correlation_id}
    assert outbox.answered(waiting) == [Answer(first.correlation_id, "CP007", "Accepted", "fine")]
    outbox.mark_clear(update.clear_correlation_id, "sent", "posted", now=NOW)
    assert outbox.get(update.correlation_id).clear_status == "sent"
    assert outbox.answered({update.clear_correlation_id}) == []  # sent, not answered
    assert _events(outbox, update)[-1] == (NOW, "clear_sent", "posted")
    assert outbox.apply_answer(Answer(update.clear_correlation_id, "CP007", "Rejected", "NoProfile",
                                      action="ClearChargingProfile"), now=LATER)
    assert _events(outbox, update)[-1] == (LATER, "clear_answered", "Rejected NoProfile")
    assert outbox.answered({update.clear_correlation_id, "not-ours"}) == [
        Answer(update.clear_correlation_id, "CP007", "Rejected", "", action="ClearChargingProfile")]
    outbox.mark_clear(update.clear_correlation_id, "failed", "reported late", now=LATER)
    assert outbox.get(update.correlation_id).clear_status == "rejected"
    assert outbox.answered(set()) == []
    assert outbox.mark_clear("not-ours", "sent") is None


def test_a_clear_goes_first_only_for_a_tx_profile_the_station_may_hold(store) -> None:
    """K01.FR.39: only an update of a TxProfile CitrineOS may hold as active (same station, profile id and
    transaction; sent, and not refused) needs a ClearChargingProfile first."""
    outbox = Outbox(store.engine)
    held = sent_entry(outbox, profile_for("CP001", 5.0, "tx-1"), transport="rest")
    sent_entry(outbox, profile_for("CP002", 5.0), transport="rest")  # a TxDefaultProfile: replaced in place
    refused = sent_entry(outbox, profile_for("CP003", 5.0, "tx-3"), transport="rest")
    outbox.record_answer(refused.correlation_id, "Rejected", now=NOW)
    outbox.prepare([profile_for("CP004", 5.0, "tx-4")], site_id=SITE_ID,
                                                        run_id="r1", transport="rest", now=NOW)  # never sent
    sent_entry(outbox, profile_for("CP005", 5.0, "tx-old"), transport="rest")
    outbox.record_answer(held.correlation_id, "Accepted", now=NOW)
    updates = outbox.prepare([profile_for("CP001", 6.0, "tx-1"), profile_for("CP002", 6.0),
                              profile_for("CP003", 6.0, "tx-3"), profile_for("CP004", 6.0, "tx-4"),
                              profile_for("CP005", 6.0, "tx-new"), profile_for("CP006", 6.0, "tx-1")],
                             site_id=SITE_ID, run_id="r2", transport="rest", now=NOW).to_send
    clears = {entry.station_id: entry.clear_status for entry in updates}
    assert clears == {"CP001": "pending", "CP002": None, "CP003": None, "CP004": None, "CP005": None,
                      "CP006": None}
    [clearing] = [entry for entry in updates if entry.station_id == "CP001"]
    assert uuid.UUID(clearing.clear_correlation_id) != uuid.UUID(clearing.correlation_id)
    assert _events(outbox, clearing)[-1][1:] == ("pending", "attempt 1, ClearChargingProfile first (TxProfile update)")


def test_what_a_station_may_hold_is_what_reached_it_and_runs_on(store) -> None:
    outbox = Outbox(store.engine)
    held = sent_entry(outbox, profile_for("CP001", 5.0))
    outbox.record_answer(held.correlation_id, "Accepted", now=NOW)
    sent_entry(outbox, profile_for("CP002", 5.0))
    refused = sent_entry(outbox, profile_for("CP003", 5.0))
    outbox.record_answer(refused.correlation_id, "Rejected", now=NOW)
    _prepared(outbox, "CP004")  # pending: never reached CitrineOS
    valid_to = START + timedelta(hours=2)
    assert sorted(outbox.last_in_force(NOW)) == ["CP001", "CP002"]
    assert outbox.last_in_force(valid_to) == {}  # run out at its validTo
    assert outbox.valid_to_to_outlast(valid_to - timedelta(microseconds=1)) == {
        ("CP001", "TxDefaultProfile", 1): valid_to, ("CP002", "TxDefaultProfile", 1): valid_to}
    assert outbox.valid_to_to_outlast(valid_to) == {}
    latest = outbox.latest_by_station()
    assert {station: entry.status for station, entry in latest.items()} == {
        "CP001": "accepted", "CP002": "sent", "CP003": "rejected", "CP004": "pending"}
    delivery = outbox.delivery(["CP001", "CP002", "CP009"], NOW)
    assert {station: state.state for station, state in delivery.items()} == {
        "CP001": "confirmed", "CP002": "unconfirmed", "CP009": "nothing_wanted"}
    assert delivery["CP001"].confirmed.id == held.id
    assert [entry.station_id for entry in outbox.entries(run_id="r1")] == ["CP001", "CP002", "CP003", "CP004"]
    assert outbox.entries(run_id="none") == []
    assert [entry.station_id for entry in outbox.entries(station_ids=["CP003", "CP001"])] == ["CP001", "CP003"]
    assert [time for time, _, _ in _events(outbox, held)] == [NOW, NOW, NOW]
    outbox.prepare([], site_id=SITE_ID, run_id="r9", transport="amqp", now=NOW)  # CP004's entry: superseded, never sent
    assert sorted(outbox.last_in_force(NOW)) == ["CP001", "CP002"]
    assert set(outbox.valid_to_to_outlast(NOW)) == {("CP001", "TxDefaultProfile", 1), ("CP002", "TxDefaultProfile", 1)}
    assert outbox.get("not-ours") is None


def test_read_backs_and_clears_reported_without_a_time_or_reason(store) -> None:
    outbox = Outbox(store.engine)
    first = sent_entry(outbox, profile_for("CP007", 5.0, "tx-7"), transport="rest")
    outbox.record_answer(first.correlation_id, "Rejected", now=NOW)
    before = datetime.now(UTC)
    [asked] = outbox.request_readbacks([first])
    assert before <= asked.readback_at <= datetime.now(UTC)
    outbox.mark_readback(asked.readback_correlation_id, "failed")
    assert _events(outbox, first)[-1][1:] == ("readback_failed", "")
    assert before <= _events(outbox, first)[-1][0] <= datetime.now(UTC)
    assert outbox.answered({asked.readback_correlation_id}) == [
        Answer(asked.readback_correlation_id, "CP007", "failed", "", action="GetCompositeSchedule")]
    assert outbox.answered({first.correlation_id}) == [Answer(first.correlation_id, "CP007", "Rejected", "")]
    held = sent_entry(outbox, profile_for("CP008", 5.0, "tx-8"), transport="rest")
    outbox.record_answer(held.correlation_id, "Accepted", now=NOW)
    [update] = outbox.prepare([profile_for("CP008", 6.0, "tx-8")], site_id=SITE_ID,
                                                                   run_id="r2", transport="rest", now=NOW).to_send
    outbox.mark_clear(update.clear_correlation_id, "sent")
    assert _events(outbox, update)[-1][1:] == ("clear_sent", "")
    assert before <= _events(outbox, update)[-1][0] <= datetime.now(UTC)
    assert not outbox.apply_answer(Answer("not-ours", "CP008", "Accepted", action="ClearChargingProfile"))


def test_the_latest_entry_of_a_station_is_its_newest_not_superseded_one(store) -> None:
    outbox = Outbox(store.engine)
    accepted = sent_entry(outbox, profile_for("CP001", 5.0))
    outbox.record_answer(accepted.correlation_id, "Accepted", now=NOW)
    _prepared(outbox, "CP001", kw=6.0)
    outbox.prepare([], site_id=SITE_ID, run_id="r2", transport="amqp", now=NOW)  # supersedes the pending 6 kW entry
    assert outbox.latest_by_station()["CP001"].id == accepted.id
    assert outbox.delivery(["CP001"], NOW)["CP001"].station_id == "CP001"
