"""Two writers of one outbox entry interleaving, on SQLite and the real PostgreSQL: a station's answer, a run that
supersedes the entry, the timeout that gives up on it.

Each writer reads the entry and then writes it. The tests stop one writer between its read and its write (a hook
on the outbox method that writes), let the other one run to its commit on another connection of the engine, and let
the first one go on: what the first one read is stale by then, and what it writes must not undo what the other one
committed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest

from cariflex_pipeline.dispatch import DeliveryPolicy, Outbox, dispatch_profiles
from cariflex_pipeline.dispatch.outbox import OutboxEntry
from cariflex_pipeline.dispatch.transports import SendResult
from cariflex_pipeline_tests.dispatch.conftest import NOW, SITE_ID, profile_for, sent_entry

POLICY = DeliveryPolicy(answer_deadline=timedelta(minutes=2))
PAST_DEADLINE = NOW + timedelta(minutes=3)


def _run_first(monkeypatch: pytest.MonkeyPatch, method: str, other_writer: Callable[[], Any],
               when: Callable[..., bool] = lambda *args: True) -> list[Any]:
    """Patch `Outbox.<method>` so that its first call for which `when(*args)` holds first runs `other_writer` to
    its commit (on its own connection: the patched call's is still open), once; what `other_writer` returned is in
    the list."""
    original = getattr(Outbox, method)
    results: list[Any] = []

    def patched(self: Outbox, *args: Any, **kwargs: Any) -> Any:
        if not results and when(*args):
            results.append(None)  # first, so the other writer's own calls pass through
            results[0] = other_writer()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Outbox, method, patched)
    return results


def _unanswered(outbox: Outbox, kw: float = 5.0):
    """CP001's entry, sent at NOW and past its deadline: what a new run rebuilds and supersedes."""
    entry = sent_entry(outbox, profile_for("CP001", kw))
    assert [e.id for e in outbox.expire_unanswered(PAST_DEADLINE, POLICY)] == [entry.id]
    return entry


def test_an_answer_that_read_its_entry_before_a_run_superseded_it_stays_an_event(store, monkeypatch) -> None:
    """The answer to an unanswered entry reads it; a new run supersedes it and commits; the answer writes. The
    superseded entry must stay superseded (its answer an event, `late_accepted`): the newer entry is what counts."""
    outbox = Outbox(store.engine)
    old = _unanswered(outbox)
    run = _run_first(monkeypatch, "_change", lambda: Outbox(store.engine).prepare(
        [profile_for("CP001", 7.0)], site_id=SITE_ID, run_id="r2", transport="amqp", now=PAST_DEADLINE),
        when=lambda connection, row, event, *rest: event == "accepted")
    assert outbox.record_answer(old.correlation_id, "Accepted", now=PAST_DEADLINE)
    [new] = run[0].to_send
    assert outbox.get(old.correlation_id).status == "superseded"
    assert [event for _, event, _ in outbox.events(old.id)][-2:] == ["superseded", "late_accepted"]
    assert outbox.get(new.correlation_id).status == "pending"


def test_a_run_that_read_an_entry_before_its_answer_came_does_not_supersede_the_answer(store, monkeypatch) -> None:
    """A run reads CP001's unanswered entry as undelivered; the station's Accepted for it commits; the run stores
    its own profile (the same plan) and supersedes the entry it read. The answer must not be lost: the entry stays
    accepted, and the run, redone from what the store holds now, sends nothing (identical to the accepted one)."""
    outbox = Outbox(store.engine)
    old = _unanswered(outbox)
    _run_first(monkeypatch, "_insert",
               lambda: Outbox(store.engine).record_answer(old.correlation_id, "Accepted", now=PAST_DEADLINE))
    prepared = outbox.prepare([profile_for("CP001", 5.0)], site_id=SITE_ID, run_id="r2", transport="amqp",
                              now=PAST_DEADLINE)
    assert outbox.get(old.correlation_id).status == "accepted"
    assert (prepared.to_send, prepared.unchanged) == ([], {"CP001": old.id})
    assert [e.id for e in outbox.entries()] == [old.id]  # the redone run left no entry behind


def test_a_late_confirm_that_beats_the_timeout_to_its_commit_is_kept(store, monkeypatch) -> None:
    """The timeout reads CP001's entry as sent past its deadline; the station's Accepted commits; the timeout
    writes. The entry must stay accepted (the answer is the truth), and the timeout must not report it."""
    outbox = Outbox(store.engine)
    entry = sent_entry(outbox, profile_for("CP001", 5.0))
    _run_first(monkeypatch, "_change",
               lambda: Outbox(store.engine).record_answer(entry.correlation_id, "Accepted", now=PAST_DEADLINE),
               when=lambda connection, row, event, *rest: event == "unanswered")
    assert outbox.expire_unanswered(PAST_DEADLINE, POLICY) == []
    kept = outbox.get(entry.correlation_id)
    assert (kept.status, kept.answered_at) == ("accepted", PAST_DEADLINE)
    assert [event for _, event, _ in outbox.events(entry.id)] == ["pending", "sent", "accepted"]


def test_an_entry_superseded_while_its_run_was_sending_it_stays_superseded(store) -> None:
    """A run stored CP001's entry; another run superseded it before the first one reported it sent. The report
    must not bring it back as sent beside its successor; the time it went out is kept (the station may hold it)."""
    outbox = Outbox(store.engine)
    [first] = outbox.prepare([profile_for("CP001", 5.0)], site_id=SITE_ID, run_id="r1", transport="amqp",
                             now=NOW).to_send
    [second] = outbox.prepare([profile_for("CP001", 7.0)], site_id=SITE_ID, run_id="r2", transport="amqp",
                              now=NOW).to_send
    outbox.mark_sent([first.correlation_id], now=NOW)
    late = outbox.get(first.correlation_id)
    assert (late.status, late.sent_at) == ("superseded", NOW)
    assert outbox.events(first.id)[-1][1:] == ("sent", "after it was superseded: the station may hold it")
    outbox.mark(first.correlation_id, "failed", "nack", now=NOW)
    assert outbox.get(first.correlation_id).status == "superseded"
    assert outbox.get(second.correlation_id).status == "pending"


class _Wire:
    """A transport that keeps what reached each station, in order; run A's send holds until run B is done or a
    second has passed, which lets B overtake A wherever nothing stops it."""

    name = "amqp"

    def __init__(self, received: list[tuple[str, float]], hold: threading.Event | None = None,
                 sending: threading.Event | None = None) -> None:
        self.received, self.hold, self.sending = received, hold, sending

    def send(self, entries: Sequence[OutboxEntry]) -> list[SendResult]:
        if self.sending is not None:
            self.sending.set()
            self.hold.wait(timeout=1.0)
        self.received += [(entry.station_id, entry.limits[0][1]) for entry in entries]
        return [SendResult(entry.correlation_id, entry.station_id, "sent") for entry in entries]

    def send_calls(self, calls: Sequence[Any]) -> list[SendResult]:
        raise AssertionError("no read-back in these runs")

    def collect_answers(self, record: Callable[..., bool], *, expected: set[str] | None = None,
                        timeout: float = 0.0) -> list[Any]:
        return []

    def close(self) -> None:
        return None


def _overlapping_runs(store, kw_a: float, kw_b: float) -> list[tuple[str, float]]:
    """Run A dispatches CP001's plan at `kw_a`; while it is sending, run B (a newer plan, `kw_b`) starts. What
    reached the station, in order."""
    received: list[tuple[str, float]] = []
    a_sending, b_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def run(run_id: str, kw: float, transport: _Wire, done: threading.Event | None = None) -> None:
        try:
            dispatch_profiles(Outbox(store.engine), transport, [profile_for("CP001", kw)], site_id=SITE_ID,
                              run_id=run_id, answer_timeout=0, uncertain_grace=0, now=NOW, read_back=False)
        except BaseException as error:  # the thread hands it to the test
            errors.append(error)
        finally:
            if done is not None:
                done.set()

    first = threading.Thread(target=run, args=("run-a", kw_a, _Wire(received, hold=b_done, sending=a_sending)))
    first.start()
    assert a_sending.wait(timeout=10)
    second = threading.Thread(target=run, args=("run-b", kw_b, _Wire(received), b_done))
    second.start()
    first.join(timeout=30)
    second.join(timeout=30)
    assert not errors
    return received


def test_a_newer_plan_overlapping_a_run_of_the_same_site_reaches_the_station_last(store) -> None:
    """A tick's run is sending 5 kW to CP001 when a session change's run plans 7 kW: the station must end up on
    the newer 7 kW, and the outbox's newest entry for it must be that one."""
    received = _overlapping_runs(store, 5.0, 7.0)
    assert received == [("CP001", 5000.0), ("CP001", 7000.0)]
    entries = Outbox(store.engine).entries(["CP001"])
    assert [(entry.run_id, entry.status, entry.limits[0][1]) for entry in entries] == [
        ("run-a", "sent", 5000.0), ("run-b", "sent", 7000.0)]


def test_two_overlapping_runs_with_the_same_plan_send_it_once(store) -> None:
    """Both runs plan 5 kW for CP001: the second must find the first one's profile awaiting its answer and send
    nothing, not supersede the entry the first one is sending and send it again."""
    received = _overlapping_runs(store, 5.0, 5.0)
    assert received == [("CP001", 5000.0)]
    [entry] = Outbox(store.engine).entries(["CP001"])
    assert (entry.run_id, entry.status) == ("run-a", "sent")
