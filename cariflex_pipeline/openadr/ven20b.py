"""An OpenADR 2.0b VEN in pull mode over httpx (simpleHttp, no XML signature).

- `register()`: oadrQueryRegistration, then oadrCreatePartyRegistration; venID, registrationID and the poll
  frequency the VTN requests are stored in `openadr_ven_state` under (VTN URL, VEN name), so a restarted process
  does not register again, and sites sharing a VEN name are one VEN at the VTN: one registration, one poll;
- `poll()`: oadrPoll -> an oadrDistributeEvent (events), an empty oadrResponse (nothing new), or an
  oadrRequestReregistration (registers again, then resyncs);
- `request_events()`: oadrRequestEvent, the VTN's full list of events (resync after a restart);
- `respond()`: oadrCreatedEvent with optIn/optOut per event where the VTN requires a response and the event
  is not completed; only ever after the events' values are committed (an optIn is a promise to follow them);
- `fetch()`: what a periodic caller (the Dagster sensor, `run_loop`) asks instead of `poll()`: a poll, or a full
  resync (oadrRequestEvent) when one is due (`resync_interval`) or when the previous fetch was never committed.
  The VTN hands an event over once, so a fetch is recorded (`open_poll`) before it is sent and cleared by
  `commit()` once what it brought is committed: a crash in between costs one tick, not the change.
`sync()` and `poll_and_ingest()` glue these to `ingest_events` for one site.

A fleet: the VTN addresses events to a venID, and its oadrPoll hands each event over once, so the sites sharing a
VEN name must not each poll (the first would take the others' events). The Dagster sensor polls once per VEN and
requests a run per affected site; each site's run resyncs (oadrRequestEvent, which hands over every event the
VTN holds for the VEN, however often asked) and ingests for itself. Each answers, in oadrCreatedEvent, only the
events its mappings follow (`answered_by`), so a site that ignores an event never opts in for the site that
rejected it; an event no site of the VEN follows is answered by each alike (optIn, as for one site).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Engine

from cariflex_pipeline.openadr.errors import VtnError
from cariflex_pipeline.openadr.http import RetryPolicy, describe_failure, send
from cariflex_pipeline.openadr.ingest import IngestReport, ingest_events
from cariflex_pipeline.openadr.model import OpenAdrEvent
from cariflex_pipeline.openadr.normalize import find_mapping
from cariflex_pipeline.openadr.oadr20b import create_message, events_from_distribute, new_request_id, parse_vtn_message
from cariflex_pipeline.openadr.repository import VenState, VenStateStore
from cariflex_pipeline.site_model import Site
from cariflex_pipeline.store import TimeSeriesStore

log = logging.getLogger(__name__)

DEFAULT_POLL_FREQ = timedelta(seconds=10)
DEFAULT_RESYNC = timedelta(minutes=15)


@dataclass(frozen=True)
class Distribution:
    """The events of one oadrDistributeEvent (empty when the VTN had nothing)."""

    request_id: str | None
    vtn_id: str | None
    events: tuple[OpenAdrEvent, ...]


class Ven20b:
    def __init__(
        self,
        vtn_url: str,
        ven_name: str,
        engine: Engine,
        *,
        client: httpx.Client | None = None,
        timeout_seconds: float = 10.0,
        retry: RetryPolicy | None = None,
        resync_interval: timedelta = DEFAULT_RESYNC,
    ) -> None:
        self.vtn_url = vtn_url.rstrip("/")
        self.resync_interval = resync_interval
        self.ven_name = ven_name
        self.states = VenStateStore(engine)
        self._owns_client = client is None
        self.client = client or httpx.Client(timeout=timeout_seconds)
        self.retry = retry or RetryPolicy()

    def close(self) -> None:
        """Close the HTTP connection pool this VEN opened (a client handed in stays its owner's)."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Ven20b:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- state -------------------------------------------------------------------------------------------
    @property
    def state(self) -> VenState:
        return (self.states.load(self.vtn_url, self.ven_name)
                or VenState(vtn_url=self.vtn_url, ven_name=self.ven_name, protocol="2.0b"))

    @property
    def poll_frequency(self) -> timedelta:
        seconds = self.state.poll_freq_seconds
        return timedelta(seconds=seconds) if seconds is not None else DEFAULT_POLL_FREQ

    def poll_due(self, now: datetime) -> bool:
        """True when the VTN's requested poll frequency has passed since the last poll."""
        last = self.state.last_poll_at
        return last is None or now - last >= self.poll_frequency

    # --- messages ----------------------------------------------------------------------------------------
    def _post(self, service: str, message: str) -> tuple[str | None, dict, object]:
        url = f"{self.vtn_url}/{service}"
        response = send(self.client, "POST", url, policy=self.retry, what=f"OpenADR 2.0b {service}",
                        content=message.encode("utf-8"), headers={"Content-Type": "application/xml"})
        if response.status_code != 200:
            raise VtnError(f"OpenADR 2.0b {service} at {url}: {describe_failure(response)}",
                           status=response.status_code)
        if not response.content.strip():
            return None, {}, None
        message_type, payload, tree = parse_vtn_message(response.content, f"answer of {url}")
        code = (payload.get("response") or {}).get("response_code")
        if code is not None and int(code) != 200 and message_type != "oadrDistributeEvent":
            description = (payload.get("response") or {}).get("response_description")
            raise VtnError(f"OpenADR 2.0b {service} at {url}: VTN answered {code} {description}")
        return message_type, payload, tree

    def register(self, force: bool = False) -> VenState:
        """Registered state, from the database or by registering now."""
        state = self.state
        if state.registration_id and state.ven_id and not force:
            return state
        _, query, _ = self._post("EiRegisterParty", create_message("oadrQueryRegistration",
                                                                    request_id=new_request_id()))
        message_type, payload, _ = self._post(
            "EiRegisterParty",
            create_message(
                "oadrCreatePartyRegistration",
                request_id=new_request_id(),
                ven_name=self.ven_name,
                ven_id=state.ven_id,
                http_pull_model=True,
                xml_signature=False,
                report_only=False,
                profile_name="2.0b",
                transport_name="simpleHttp",
                transport_address=None,
                registration_id=None,
            ),
        )
        if message_type != "oadrCreatedPartyRegistration" or not payload.get("registration_id"):
            raise VtnError(f"OpenADR 2.0b registration at {self.vtn_url} refused: no registrationID "
                           f"(answer {message_type})")
        poll_freq = payload.get("requested_oadr_poll_freq") or query.get("requested_oadr_poll_freq")
        state = replace(
            state,
            vtn_id=payload.get("vtn_id"),
            ven_id=str(payload.get("ven_id") or state.ven_id),
            registration_id=str(payload["registration_id"]),
            poll_freq_seconds=poll_freq.total_seconds() if isinstance(poll_freq, timedelta) else None,
        )
        self.states.save(state)
        log.info("registered at %s as venID %s (poll every %s)", self.vtn_url, state.ven_id, self.poll_frequency)
        return state

    def poll(self, now: datetime | None = None) -> Distribution:
        state = self.register()
        message_type, payload, tree = self._post("OadrPoll", create_message("oadrPoll", ven_id=state.ven_id))
        self.states.save(replace(self.state, last_poll_at=now or datetime.now(UTC)))
        if message_type == "oadrDistributeEvent":
            return self._distribution(payload, tree)
        if message_type == "oadrRequestReregistration":
            log.warning("VTN %s asks venID %s to register again", self.vtn_url, state.ven_id)
            self.states.save(replace(self.state, registration_id=None))
            self.register()
            return self.request_events()
        if message_type not in (None, "oadrResponse"):
            log.warning("OpenADR 2.0b poll at %s: %s not handled by this VEN", self.vtn_url, message_type)
        return Distribution(request_id=None, vtn_id=state.vtn_id, events=())

    def fetch(self, now: datetime, committed: str | None = None) -> tuple[Distribution, str]:
        """A poll, or a full resync when one is due or the last fetch was not committed; returns what it
        brought and its mark, to hand to `commit()` (or, for the sensor, back as `committed` on the next tick:
        the tick's cursor is where its outcome is committed)."""
        state = self.register()
        lost = state.open_poll is not None and state.open_poll != committed
        due = state.last_resync_at is None or now - state.last_resync_at >= self.resync_interval
        mark = f"{now.isoformat()}/{uuid.uuid4().hex[:8]}"
        self.states.save(replace(state, open_poll=mark))  # before the VTN hands anything over
        if not (lost or due):
            return self.poll(now), mark
        if lost:
            log.warning("OpenADR 2.0b %s: the fetch %s was never committed; resyncing", self.vtn_url, state.open_poll)
        distribution = self.request_events()
        self.states.save(replace(self.state, last_poll_at=now, last_resync_at=now))
        return distribution, mark

    def commit(self, mark: str) -> None:
        """What the fetch `mark` brought is committed: the next fetch need not resync for it."""
        state = self.state
        if state.open_poll == mark:
            self.states.save(replace(state, open_poll=None))

    def request_events(self) -> Distribution:
        state = self.register()
        message_type, payload, tree = self._post(
            "EiEvent", create_message("oadrRequestEvent", request_id=new_request_id(), ven_id=state.ven_id,
                                      reply_limit=None)
        )
        if message_type == "oadrDistributeEvent":
            return self._distribution(payload, tree)
        return Distribution(request_id=None, vtn_id=state.vtn_id, events=())

    def _distribution(self, payload: dict, tree: object) -> Distribution:
        events = tuple(events_from_distribute(payload, tree))
        if events and self.state.vtn_id is None:
            self.states.save(replace(self.state, vtn_id=events[0].vtn_id))
        return Distribution(request_id=payload.get("request_id"), vtn_id=payload.get("vtn_id"), events=events)

    def respond(self, distribution: Distribution, opt: Mapping[tuple[str, int], str],
                now: datetime | None = None, answers: Callable[[OpenAdrEvent], bool] | None = None) -> int:
        """oadrCreatedEvent for every event that needs an answer (and that `answers` accepts: the site's share of a
        shared VEN's events), with its optIn/optOut from `opt` (keyed by event id and modification; an event
        missing there is answered optOut); returns how many were answered."""
        now = now or datetime.now(UTC)
        responses = []
        for event in distribution.events:
            if not event.response_required or event.status == "completed" or _is_over(event, now):
                continue
            if answers is not None and not answers(event):
                continue
            opt_type = opt.get(event.key, "optOut")
            responses.append({
                "response_code": 200, "response_description": "OK", "request_id": distribution.request_id,
                "event_id": event.event_id, "modification_number": event.modification_number, "opt_type": opt_type,
            })
        if not responses:
            return 0
        state = self.register()
        self._post("EiEvent", create_message(
            "oadrCreatedEvent",
            response={"response_code": 200, "response_description": "OK", "request_id": distribution.request_id},
            event_responses=responses,
            ven_id=state.ven_id,
        ))
        return len(responses)


def _is_over(event: OpenAdrEvent, now: datetime) -> bool:
    ends = [
        interval.start + interval.duration
        for signal in event.signals
        for interval in signal.intervals
        if isinstance(interval.start, datetime) and interval.start.tzinfo is not None
    ]
    return bool(ends) and max(ends) <= now


def follows(site: Site, event: OpenAdrEvent) -> bool:
    """True when one of the site's mappings names a signal of `event` (its values, or its rejection, are the
    site's)."""
    return any(find_mapping(site, event, signal) is not None for signal in event.signals)


def answered_by(site: Site, peers: Sequence[Site]) -> Callable[[OpenAdrEvent], bool]:
    """Which events `site` answers for the VEN it shares with `peers` (the other sites of its VEN name): those it
    follows, and those no site of the VEN follows. Without peers: every event, as one site always did."""

    def answers(event: OpenAdrEvent) -> bool:
        return not peers or follows(site, event) or not any(follows(peer, event) for peer in peers)

    return answers


def sync(ven: Ven20b, site: Site, store: TimeSeriesStore, *, site_id: str, peers: Sequence[Site] = ()) -> IngestReport:
    """Resync every event the VTN holds for the VEN (oadrRequestEvent), ingest for `site_id`, answer its share."""
    distribution = ven.request_events()
    report = ingest_events(distribution.events, site, store, site_id=site_id)
    ven.respond(distribution, report.opt, answers=answered_by(site, peers))
    return report


def poll_and_ingest(ven: Ven20b, site: Site, store: TimeSeriesStore, now: datetime | None = None, *,
                    site_id: str) -> IngestReport:
    """Fetch (poll or resync), ingest, answer, commit: the answers follow the committed values. One site per VEN:
    a poll hands an event over once, so a VEN shared by sites is polled by the Dagster sensor, not here."""
    distribution, mark = ven.fetch(now or datetime.now(UTC))
    report = ingest_events(distribution.events, site, store, site_id=site_id)
    ven.respond(distribution, report.opt)
    ven.commit(mark)
    return report


def run_loop(
    ven: Ven20b,
    site: Site,
    store: TimeSeriesStore,
    *,
    site_id: str,
    max_polls: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
) -> IngestReport:
    """A long-running VEN: resync once (after a restart), then poll at the VTN's requested frequency.

    A failing VTN (VtnError after retries) is logged and polled again at the next period; values already stored
    stay. Returns the merged report (for tests and `--max-polls`).
    """
    total = sync(ven, site, store, site_id=site_id)
    polls = 0
    while (max_polls is None or polls < max_polls) and not (stop is not None and stop.is_set()):
        sleep(ven.poll_frequency.total_seconds())
        try:
            total.merge(poll_and_ingest(ven, site, store, site_id=site_id))
        except VtnError as error:
            log.error("%s; polling again in %s", error, ven.poll_frequency)
        polls += 1
    return total
