"""An OpenADR 3.0.1 VEN over httpx (REST + JSON); its events are parsed by `oadr3`.

- OAuth2 client credentials: `POST {token_url}` form-encoded -> Bearer token, fetched again when it expires
  (`expires_in`, with a margin) or when the VTN answers 401 (once per request);
- `GET {base}/events?programID=..&targetType=..&targetValues=..&skip=..&limit=..` page by page (limit <= 50), one
  walk per program and target (the spec takes one targetType per request; a site's targets are its own, so two
  sites of one VEN name each list what targets them: reading events takes nothing from the other)
  until a short page, de-duplicated by `id` (the VTN promises no order); a page repeating an earlier one (a VTN
  ignoring `skip`) or more than `max_pages` pages stop the listing with a VtnError;
- RFC 7807 problem bodies are surfaced in VtnError messages; timeouts and 5xx are retried with backoff; the
  client secret and the token are redacted from whatever the VTN echoes; token answers are type-checked.
`sync()` glues it to `ingest_events` for one site, and withdraws the future values of events the VTN deleted:
events that the site's complete listings (every item an event with an id) have not held for `delete_after`
(`deleted_events`).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from cariflex_pipeline.openadr.errors import MalformedMessageError, VtnAuthError, VtnError, redact
from cariflex_pipeline.openadr.http import RetryPolicy, describe_failure, problem_of, redact_problem, send
from cariflex_pipeline.openadr.ingest import IngestReport, ingest_events, withdraw_deleted
from cariflex_pipeline.openadr.limits import MAX_DURATION, MAX_ID, load_json, shown, text_problem
from cariflex_pipeline.openadr.model import OpenAdrEvent
from cariflex_pipeline.openadr.oadr3 import parse_items
from cariflex_pipeline.openadr.repository import AbsenceLog, EventLog, EventRecord
from cariflex_pipeline.site_model import Site
from cariflex_pipeline.store import TimeSeriesStore

log = logging.getLogger(__name__)

MAX_PAGE = 50
MAX_PAGES = 2000  # 100,000 events at 50 a page: beyond that a VTN is not paging, it is looping
DELETE_AFTER = timedelta(minutes=10)
_BEARER = re.compile(r"[A-Za-z0-9\-._~+/]{1,4096}=*")  # RFC 6750 b64token: nothing that could break a header


@dataclass(frozen=True)
class Listing:
    """Every event of one GET /events walk; `complete` when each item was an event with an id, so that an
    event missing from it is really not listed (a page of junk says nothing about the events it displaced)."""

    events: list[OpenAdrEvent]
    complete: bool


class Ven301:
    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        vtn_id: str | None = None,
        programs: list[str | None] | None = None,
        targets: Sequence[tuple[str, Sequence[str]]] = (),
        token_url: str | None = None,
        client: httpx.Client | None = None,
        timeout_seconds: float = 10.0,
        retry: RetryPolicy | None = None,
        page_size: int = MAX_PAGE,
        max_pages: int = MAX_PAGES,
        delete_after: timedelta = DELETE_AFTER,
        clock: Callable[[], float] = time.monotonic,
        token_margin_seconds: float = 30.0,
    ) -> None:
        if not 0 < page_size <= MAX_PAGE:
            raise ValueError(f"OpenADR 3.0.1 VTN {base_url}: page_size {page_size} is not in 1..{MAX_PAGE}")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.vtn_id = vtn_id or httpx.URL(self.base_url).host
        self.programs = programs or [None]
        self.targets = [(target_type, list(values)) for target_type, values in targets]
        self.token_url = token_url or f"{self.base_url}/auth/token"
        self.client = client or httpx.Client(timeout=timeout_seconds)
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.max_pages = max_pages
        self.delete_after = delete_after
        self.clock = clock
        self.token_margin_seconds = token_margin_seconds
        self._token: str | None = None
        self._token_expires_at: float | None = None

    def __repr__(self) -> str:  # never show the secret
        return f"Ven301({self.base_url!r}, client_id={self.client_id!r})"

    # --- auth --------------------------------------------------------------------------------------------
    def token(self) -> str:
        if self._token and (self._token_expires_at is None or self.clock() < self._token_expires_at):
            return self._token
        secrets = (self._client_secret,)
        response = send(
            self.client, "POST", self.token_url, policy=self.retry, what="OpenADR 3.0.1 token", secrets=secrets,
            data={"grant_type": "client_credentials", "client_id": self.client_id,
                  "client_secret": self._client_secret},
        )
        if response.status_code != 200:
            body = problem_of(response) or _json_or_none(response) or {}
            reason = body.get("error_description") or body.get("error") or describe_failure(response)
            raise VtnAuthError(f"OpenADR 3.0.1 token at {self.token_url} refused for client {self.client_id!r}: "
                               f"{redact(str(reason), secrets)}", status=response.status_code,
                               problem=redact_problem(problem_of(response), secrets))
        body = _json_or_none(response)
        token, expires_in = self._checked_token(body)
        self._token = token
        self._token_expires_at = (
            None if expires_in is None else self.clock() + max(expires_in - self.token_margin_seconds, 0.0)
        )
        log.info("OpenADR 3.0.1: token for client %r obtained (expires in %s s)", self.client_id, expires_in)
        return self._token

    def _checked_token(self, body: Any) -> tuple[str, float | None]:
        """(access_token, expires_in seconds or None) of a token answer, or VtnAuthError naming the field (never
        the token itself)."""
        where = f"OpenADR 3.0.1 token at {self.token_url}"
        if not isinstance(body, dict) or not body.get("access_token"):
            raise VtnAuthError(f"{where}: answer without access_token")
        token = body["access_token"]
        if not isinstance(token, str) or not _BEARER.fullmatch(token):
            raise VtnAuthError(f"{where}: access_token is not a bearer token (a {type(token).__name__} of "
                               "other characters than RFC 6750 allows)")
        token_type = body.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise VtnAuthError(f"{where}: token_type {shown(token_type)} is not Bearer")
        expires_in = body.get("expires_in")
        if expires_in is None:
            return token, None
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or not (
                math.isfinite(expires_in) and 0 <= expires_in <= MAX_DURATION.total_seconds()):
            raise VtnAuthError(f"{where}: expires_in {shown(expires_in)} is not a number of seconds in "
                               f"0..{MAX_DURATION.total_seconds():.0f}")
        return token, float(expires_in)

    def _get(self, path: str, params: list[tuple[str, str | int]]) -> Any:
        url = f"{self.base_url}/{path.lstrip('/')}"
        for attempt in (1, 2):
            token = self.token()
            response = send(self.client, "GET", url, policy=self.retry, what="OpenADR 3.0.1", secrets=(token,),
                            params=params, headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 401 and attempt == 1:
                log.info("OpenADR 3.0.1: %s answered 401, fetching a new token", url)
                self._token = None
                continue
            break
        if response.status_code != 200:
            secrets = (token, self._client_secret)
            error = VtnAuthError if response.status_code == 401 else VtnError
            raise error(f"OpenADR 3.0.1 GET {url}: {redact(describe_failure(response), secrets)}",
                        status=response.status_code, problem=redact_problem(problem_of(response), secrets))
        return load_json(response.content, f"OpenADR 3.0.1 GET {url}: answer")

    # --- events ------------------------------------------------------------------------------------------
    def fetch_event_objects(self) -> list[Any]:
        """Every event of the configured programs (and targets: an event of any of them), all pages, de-duplicated
        by id; items without a valid id are kept (parsing rejects them)."""
        seen: dict[str, dict[str, Any]] = {}
        anonymous: list[Any] = []
        walks = [(program, target) for program in self.programs for target in self.targets or [None]]
        for program, target in walks:
            skip = 0
            pages: set[tuple[str, ...]] = set()
            while True:
                params: list[tuple[str, str | int]] = []
                if program is not None:
                    params.append(("programID", program))
                if target is not None:
                    params.append(("targetType", target[0]))
                    params.extend(("targetValues", value) for value in target[1])
                params += [("skip", skip), ("limit", self.page_size)]
                page = self._get("events", params)
                if not isinstance(page, list):
                    raise MalformedMessageError(f"OpenADR 3.0.1 GET {self.base_url}/events: expected a JSON "
                                                f"array, got {type(page).__name__}")
                self._check_paging(page, pages, program, skip)
                for item in page:
                    if _valid_id(item):
                        seen.setdefault(item["id"], item)
                    else:
                        anonymous.append(item)
                if len(page) < self.page_size:
                    break
                skip += len(page)
        return list(seen.values()) + anonymous

    def _check_paging(self, page: list[Any], pages: set[tuple[str, ...]], program: str | None, skip: int) -> None:
        """Stop a walk that would never end: a page seen before (the VTN ignores `skip`), or too many pages."""
        where = f"OpenADR 3.0.1 GET {self.base_url}/events (programID {program!r})"
        fingerprint = tuple(item["id"] if _valid_id(item) else type(item).__name__ for item in page)
        if fingerprint and fingerprint in pages:
            raise VtnError(f"{where}: the page at skip={skip} repeats an earlier page (the VTN ignores skip?); "
                           "listing stopped")
        pages.add(fingerprint)
        if len(pages) > self.max_pages:
            raise VtnError(f"{where}: more than {self.max_pages} pages of {self.page_size}; listing stopped")

    def listing(self) -> Listing:
        items = self.fetch_event_objects()
        complete = all(_valid_id(item) for item in items)
        return Listing(parse_items(items, self.vtn_id), complete=complete)

    def events(self) -> list[OpenAdrEvent]:
        return self.listing().events


def _valid_id(item: Any) -> bool:
    return isinstance(item, dict) and text_problem(item.get("id"), "id", MAX_ID) is None


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return load_json(response.content, "token answer")
    except MalformedMessageError:
        return None


def deleted_events(ven: Ven301, listing: Listing, store: TimeSeriesStore, now: datetime, *,
                   site_id: str) -> list[EventRecord]:
    """The events `site_id` stored of the VTN (of its programs) with values still ahead that the site's complete
    listings have not held for `ven.delete_after`: deleted. Past values are kept (a VTN purging old events does
    not rewrite history). One listing without an event starts its clock; a listing with it stops the clock; an
    incomplete listing changes nothing."""
    absences = AbsenceLog(store.engine, site_id=site_id)
    listed = {event.event_id for event in listing.events}
    absences.forget_listed(ven.vtn_id, sorted(listed & set(absences.of(ven.vtn_id))))
    if not listing.complete:
        log.warning("OpenADR 3.0.1 VTN %r: the listing holds items that are not events with an id; no event is "
                    "taken for deleted on it", ven.vtn_id)
        return []
    known = absences.of(ven.vtn_id)
    missing = [
        record for (_vtn, event_id), record in EventLog(store.engine, site_id=site_id).latest_versions(
            ven.vtn_id).items()
        if event_id not in listed and record.status != "cancelled"
        and (None in ven.programs or record.program in ven.programs)
        and record.covered_end is not None and record.covered_end > now
        and (event_id not in known or known[event_id].withdrawn_at is None)
    ]
    absences.note_absent(ven.vtn_id, [record.event_id for record in missing], now)
    since = absences.of(ven.vtn_id)
    return [record for record in missing if now - since[record.event_id].absent_since >= ven.delete_after]


def sync(ven: Ven301, site: Site, store: TimeSeriesStore, now: datetime | None = None, *,
         site_id: str) -> IngestReport:
    """Fetch every event of the configured programs (and the site's targets), ingest for `site_id`, and withdraw
    future values of its deleted events."""
    now = now or datetime.now(UTC)
    listing = ven.listing()
    report = ingest_events(listing.events, site, store, site_id=site_id)
    report.merge(withdraw_deleted(deleted_events(ven, listing, store, now, site_id=site_id), site, store, now,
                                  site_id=site_id))
    return report
