"""One dispatch run: collect answers, time out the silent, store profiles in the outbox, send them, collect the
answers, read back what the stations will do.

    report = dispatch_profiles(outbox, transport, profiles, site_id="pointe-simon", run_id="...")

Order matters for "nothing lost, nothing twice in effect":
1. answers already on the bus are recorded first; for entries whose delivery is uncertain (published, never
   confirmed, connection lost) the run waits up to `uncertain_grace` s for their answers, so that a profile
   the station did receive is not sent again;
2. entries sent longer than the policy's `answer_deadline` ago without an answer become `unanswered` (dropped by
   CitrineOS's schema check, lost with a broker restart, a station that never answered);
3. holding the site's dispatch lease (`lease.site_lease`: one run per site at a time, so two runs never send to a
   station out of order or supersede what the other is sending) through step 4, the run's profiles are stored as
   pending (ones identical in effect to the last accepted, to a rejected one the
   station has not since replaced, or to one awaiting its answer, skipped unless forced; see `equivalence`);
   a station's undelivered entries are superseded by its new profile, built from the current plan, after the
   policy's backoff - never re-sent stale;
4. the transport sends them; each outcome is written to the outbox;
5. answers are collected for up to `answer_timeout` s; later answers are recorded by the next run or sensor;
6. each accepted profile is read back with GetCompositeSchedule, and the station's answer compared with it.

A broker that cannot be reached marks the run's entries failed (with the reason, never the password); they stay
in the outbox and the next run sends the current plan in their place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cariflex_pipeline.dispatch.composite import composite_request
from cariflex_pipeline.dispatch.delivery import DeliveryPolicy
from cariflex_pipeline.dispatch.equivalence import DEFAULT_MIN_VALIDITY_AHEAD
from cariflex_pipeline.dispatch.lease import site_lease
from cariflex_pipeline.dispatch.outbox import Outbox, OutboxEntry
from cariflex_pipeline.dispatch.profiles import BuiltProfile
from cariflex_pipeline.dispatch.transports import Answer, Call, SendResult, Transport

LOG = logging.getLogger(__name__)

# how far ahead a read-back asks for the station's composite schedule (stations may cap it)
READBACK_HORIZON = timedelta(hours=24)


@dataclass
class DispatchReport:
    run_id: str
    transport: str
    sent: list[SendResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # station -> why nothing was sent to it
    unchanged: dict[str, int] = field(default_factory=dict)  # station -> outbox id it already follows
    repeat_rejected: dict[str, int] = field(default_factory=dict)  # station -> outbox id it refused before
    backing_off: dict[str, str] = field(default_factory=dict)  # station -> why its retry waits
    unanswered: list[OutboxEntry] = field(default_factory=list)  # entries this run found without an answer
    answers: list[Answer] = field(default_factory=list)
    entries: dict[str, OutboxEntry] = field(default_factory=dict)  # station -> final outbox entry of this run

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in self.entries.values():
            out[entry.status] = out.get(entry.status, 0) + 1
        out["skipped"] = len(self.skipped)  # every station left alone, whatever the reason
        out["skipped_unchanged"] = len(self.unchanged)  # same effect as the profile the station accepted
        out["skipped_rejected"] = len(self.repeat_rejected)  # same effect as the profile the station refused
        out["backing_off"] = len(self.backing_off)
        out["timed_out"] = len(self.unanswered)
        return out


def record_answers(outbox: Outbox, transport: Transport, *, expected: set[str] | None = None,
                   timeout: float = 0.0) -> list[Answer]:
    def record(answer: Answer) -> bool:
        known = outbox.apply_answer(answer)
        if not known:
            LOG.info("%s answer %s from station %s is not in our outbox (ignored)", answer.action,
                     answer.correlation_id, answer.station_id)
        return known

    return transport.collect_answers(record, expected=expected, timeout=timeout)


def dispatch_profiles(
    outbox: Outbox,
    transport: Transport,
    profiles: Sequence[BuiltProfile],
    *,
    site_id: str,
    run_id: str,
    force: bool = False,
    answer_timeout: float = 5.0,
    uncertain_grace: float = 3.0,
    now: datetime | None = None,
    min_validity_ahead: timedelta = DEFAULT_MIN_VALIDITY_AHEAD,
    policy: DeliveryPolicy | None = None,
    read_back: bool = True,
    clock: Callable[[], datetime] | None = None,
) -> DispatchReport:
    """Dispatch the profiles of `site_id`'s plan (its outbox entries carry that site) in the order above.

    `now` is the moment the run decides at (what has expired, what is still valid); `clock` stamps what happens
    later in the run, each when it happens: the send, a transport's outcome, the read-back request and its
    handover. The answer deadline counts from the send, so stamping it with the run's start would shorten it by
    however long the sending took. Default: the wall clock, or `now` itself when only `now` is given (a test's
    fixed time)."""
    if clock is None:
        clock = _utc_now if now is None else _frozen(now)
    now = now or clock()
    policy = policy or DeliveryPolicy()
    report = DispatchReport(run_id=run_id, transport=transport.name)
    uncertain = outbox.uncertain_correlation_ids()
    try:
        report.answers += record_answers(outbox, transport, expected=uncertain,
                                         timeout=uncertain_grace if uncertain else 0.0)
    except ConnectionError as error:
        # the broker is down: store the profiles anyway (below), they are retried by the next run
        LOG.warning("could not collect station answers: %s", error)
    report.unanswered = outbox.expire_unanswered(now, policy)
    with site_lease(outbox.engine, site_id, run_id):
        prepared = outbox.prepare(profiles, site_id=site_id, run_id=run_id, transport=transport.name, force=force,
                                  now=now, min_validity_ahead=min_validity_ahead, policy=policy)
        to_send = prepared.to_send
        if len({e.station_id for e in to_send}) != len(to_send):  # guaranteed by prepare(); a guard costs nothing
            raise AssertionError(f"a station was selected twice in run {run_id}")
        if to_send:
            report.sent = _send(transport, to_send, run_id)
            outbox.mark_sent([r.correlation_id for r in report.sent if r.status == "sent"], now=clock())
            for result in report.sent:
                if result.status != "sent":
                    outbox.mark(result.correlation_id, result.status, result.reason, uncertain=result.uncertain,
                                now=clock(), policy=policy)
    report.skipped = prepared.skipped
    report.unchanged = prepared.unchanged
    report.repeat_rejected = prepared.repeat_rejected
    report.backing_off = prepared.backing_off
    if to_send:
        waiting = {r.correlation_id for r in report.sent if r.status == "sent"}
        _collect(report, outbox, transport, waiting, answer_timeout)
    if read_back and to_send:
        _read_back(report, outbox, transport, [e.id for e in to_send], answer_timeout, clock)
    for entry in outbox.entries(ids=[e.id for e in to_send]):
        report.entries[entry.station_id] = entry
    return report


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _frozen(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def _send(transport: Transport, entries: Sequence[OutboxEntry], run_id: str) -> list[SendResult]:
    try:
        return transport.send(entries)
    except ConnectionError as error:
        LOG.error("dispatch run %s: nothing sent, every profile kept for the next run: %s", run_id, error)
        return [SendResult(e.correlation_id, e.station_id, "failed", str(error)) for e in entries]


def _collect(report: DispatchReport, outbox: Outbox, transport: Transport, waiting: set[str],
             timeout: float) -> None:
    if not waiting or timeout <= 0:
        return
    try:
        report.answers += record_answers(outbox, transport, expected=waiting, timeout=timeout)
    except ConnectionError as error:
        LOG.warning("could not collect station answers (next run or the answer sensor will): %s", error)


def _read_back(report: DispatchReport, outbox: Outbox, transport: Transport, entry_ids: list[int],
               timeout: float, clock: Callable[[], datetime]) -> None:
    """Ask each station that accepted its profile in this run for its composite schedule (K08)."""
    accepted = [e for e in outbox.entries(ids=entry_ids) if e.status == "accepted"]
    if not accepted:
        return
    calls = []
    now = clock()
    for entry in outbox.request_readbacks(accepted, now=now):
        assert entry.readback_correlation_id is not None  # just stored
        duration = max(1, int(min(entry.valid_to - now, READBACK_HORIZON).total_seconds()))
        calls.append(Call(entry.readback_correlation_id, entry.station_id, "GetCompositeSchedule",
                          composite_request(entry.evse_id, duration, entry.rate_unit)))
    try:
        results = transport.send_calls(calls)
    except ConnectionError as error:
        results = [SendResult(c.correlation_id, c.station_id, "failed", str(error)) for c in calls]
    for result in results:
        outbox.mark_readback(result.correlation_id, result.status, result.reason, now=clock())
    _collect(report, outbox, transport, {r.correlation_id for r in results if r.status == "sent"}, timeout)
