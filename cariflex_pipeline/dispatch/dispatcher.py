"""One dispatch run: collect answers, store profiles in the outbox, send them, collect the answers.

    report = dispatch_profiles(outbox, transport, profiles, run_id="...")

Order matters for "nothing lost, nothing twice":
1. answers already on the bus are recorded first; for entries whose delivery is uncertain (published, never
   confirmed, connection lost) the run waits up to `uncertain_grace` s for their answers, so that a profile
   the station did receive is not sent again;
2. the run's profiles are stored as pending (ones identical in effect to the last accepted, or to a rejected
   one the station has not since replaced, skipped unless forced; see `equivalence`) and the
   open entries of other stations are picked up for retry — at most one entry per station;
3. the transport sends them; each outcome is written to the outbox;
4. answers are collected for up to `answer_timeout` s; later answers are recorded by the next run or sensor.

A broker that cannot be reached marks the run's entries failed (with the reason, never the password); they stay
in the outbox and the next run sends them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cariflex_pipeline.dispatch.equivalence import DEFAULT_MIN_VALIDITY_AHEAD
from cariflex_pipeline.dispatch.outbox import Outbox, OutboxEntry
from cariflex_pipeline.dispatch.profiles import BuiltProfile
from cariflex_pipeline.dispatch.transports import Answer, SendResult, Transport

LOG = logging.getLogger(__name__)


@dataclass
class DispatchReport:
    run_id: str
    transport: str
    sent: list[SendResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # station -> why nothing was sent to it
    unchanged: dict[str, int] = field(default_factory=dict)  # station -> outbox id it already follows
    repeat_rejected: dict[str, int] = field(default_factory=dict)  # station -> outbox id it refused before
    answers: list[Answer] = field(default_factory=list)
    entries: dict[str, OutboxEntry] = field(default_factory=dict)  # station -> final outbox entry of this run

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in self.entries.values():
            out[entry.status] = out.get(entry.status, 0) + 1
        out["skipped"] = len(self.skipped)  # every station left alone, whatever the reason
        out["skipped_unchanged"] = len(self.unchanged)  # same effect as the profile the station accepted
        out["skipped_rejected"] = len(self.repeat_rejected)  # same effect as the profile the station refused
        return out


def record_answers(outbox: Outbox, transport: Transport, *, expected: set[str] | None = None,
                   timeout: float = 0.0) -> list[Answer]:
    def record(answer: Answer) -> bool:
        known = outbox.record_answer(answer.correlation_id, answer.status, answer.reason)
        if not known:
            LOG.info("answer %s from station %s is not in our outbox (ignored)", answer.correlation_id,
                     answer.station_id)
        return known

    return transport.collect_answers(record, expected=expected, timeout=timeout)


def dispatch_profiles(
    outbox: Outbox,
    transport: Transport,
    profiles: Sequence[BuiltProfile],
    *,
    run_id: str,
    force: bool = False,
    answer_timeout: float = 5.0,
    uncertain_grace: float = 3.0,
    now: datetime | None = None,
    min_validity_ahead: timedelta = DEFAULT_MIN_VALIDITY_AHEAD,
) -> DispatchReport:
    now = now or datetime.now(UTC)
    report = DispatchReport(run_id=run_id, transport=transport.name)
    uncertain = outbox.uncertain_correlation_ids()
    try:
        report.answers += record_answers(outbox, transport, expected=uncertain,
                                         timeout=uncertain_grace if uncertain else 0.0)
    except ConnectionError as error:
        # the broker is down: store the profiles anyway (below), they are retried by the next run
        LOG.warning("could not collect station answers: %s", error)
    prepared = outbox.prepare(profiles, run_id=run_id, transport=transport.name, force=force, now=now,
                              min_validity_ahead=min_validity_ahead)
    report.skipped = prepared.skipped
    report.unchanged = prepared.unchanged
    report.repeat_rejected = prepared.repeat_rejected
    seen: set[str] = set()
    to_send: list[OutboxEntry] = []
    for entry in prepared.to_send:
        if entry.station_id in seen:  # guaranteed by prepare(); a second guard costs nothing
            raise AssertionError(f"station {entry.station_id} selected twice in run {run_id}")
        seen.add(entry.station_id)
        to_send.append(entry)
    if to_send:
        try:
            report.sent = transport.send(to_send)
        except ConnectionError as error:
            LOG.error("dispatch run %s: nothing sent, every profile kept for the next run: %s", run_id, error)
            report.sent = [SendResult(e.correlation_id, e.station_id, "failed", str(error)) for e in to_send]
        for result in report.sent:
            outbox.mark(result.correlation_id, result.status, result.reason, uncertain=result.uncertain)
        waiting = {r.correlation_id for r in report.sent if r.status == "sent"}
        if waiting and answer_timeout > 0:
            try:
                report.answers += record_answers(outbox, transport, expected=waiting, timeout=answer_timeout)
            except ConnectionError as error:
                LOG.warning("could not collect station answers (next run or the answer sensor will): %s", error)
    for entry in to_send:
        final = outbox.get(entry.correlation_id)
        if final is not None:
            report.entries[entry.station_id] = final
    return report
