"""An OpenADR 3.0.1 VEN over httpx (REST + JSON); its events are parsed by `oadr3`.

- OAuth2 client credentials: `POST {token_url}` form-encoded -> Bearer token, fetched again when it expires
  (`expires_in`, with a margin) or when the VTN answers 401 (once per request);
- `GET {base}/events?programID=..&targetType=..&targetValues=..&skip=..&limit=..` page by page (limit <= 50)
  until a short page, de-duplicated by `id` (the VTN promises no order);
- RFC 7807 problem bodies are surfaced in VtnError messages; timeouts and 5xx are retried with backoff; the
  client secret and the token are redacted from whatever the VTN echoes.
`sync()` glues it to `ingest_events`, and withdraws the future values of events the VTN no longer lists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from cariflex_pipeline.openadr.errors import MalformedMessageError, VtnAuthError, VtnError, redact
from cariflex_pipeline.openadr.http import RetryPolicy, describe_failure, problem_of, redact_problem, send
from cariflex_pipeline.openadr.ingest import IngestReport, ingest_events, withdraw_absent
from cariflex_pipeline.openadr.model import OpenAdrEvent
from cariflex_pipeline.openadr.oadr3 import parse_event
from cariflex_pipeline.site_model import Site
from cariflex_pipeline.store import TimeSeriesStore

log = logging.getLogger(__name__)

MAX_PAGE = 50


class Ven301:
    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        vtn_id: str | None = None,
        programs: list[str | None] | None = None,
        target_type: str | None = None,
        target_values: list[str] | None = None,
        token_url: str | None = None,
        client: httpx.Client | None = None,
        timeout_seconds: float = 10.0,
        retry: RetryPolicy | None = None,
        page_size: int = MAX_PAGE,
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
        self.target_type = target_type
        self.target_values = target_values or []
        self.token_url = token_url or f"{self.base_url}/auth/token"
        self.client = client or httpx.Client(timeout=timeout_seconds)
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
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
        if not isinstance(body, dict) or not body.get("access_token"):
            raise VtnAuthError(f"OpenADR 3.0.1 token at {self.token_url}: answer without access_token")
        if str(body.get("token_type", "Bearer")).lower() != "bearer":
            raise VtnAuthError(f"OpenADR 3.0.1 token at {self.token_url}: token_type {body['token_type']!r}")
        self._token = str(body["access_token"])
        expires_in = body.get("expires_in")
        self._token_expires_at = (
            self.clock() + max(float(expires_in) - self.token_margin_seconds, 0.0)
            if isinstance(expires_in, int | float) else None
        )
        log.info("OpenADR 3.0.1: token for client %r obtained (expires in %s s)", self.client_id, expires_in)
        return self._token

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
        secrets = (token, self._client_secret)
        failure = redact(describe_failure(response), secrets)
        if response.status_code == 401:
            raise VtnAuthError(f"OpenADR 3.0.1 GET {url}: {failure}", status=401,
                               problem=redact_problem(problem_of(response), secrets))
        if response.status_code != 200:
            raise VtnError(f"OpenADR 3.0.1 GET {url}: {failure}", status=response.status_code,
                           problem=redact_problem(problem_of(response), secrets))
        try:
            return response.json()
        except ValueError:
            raise MalformedMessageError(f"OpenADR 3.0.1 GET {url}: answer is not JSON") from None

    # --- events ------------------------------------------------------------------------------------------
    def fetch_event_objects(self) -> list[dict[str, Any]]:
        """Every event of the configured programs (and targets), all pages, de-duplicated by id."""
        seen: dict[str, dict[str, Any]] = {}
        anonymous: list[dict[str, Any]] = []
        for program in self.programs:
            skip = 0
            while True:
                params: list[tuple[str, str | int]] = []
                if program is not None:
                    params.append(("programID", program))
                if self.target_type:
                    params.append(("targetType", self.target_type))
                    params.extend(("targetValues", value) for value in self.target_values)
                params += [("skip", skip), ("limit", self.page_size)]
                page = self._get("events", params)
                if not isinstance(page, list):
                    raise MalformedMessageError(f"OpenADR 3.0.1 GET {self.base_url}/events: expected a JSON "
                                                f"array, got {type(page).__name__}")
                for item in page:
                    if isinstance(item, dict) and item.get("id") is not None:
                        seen.setdefault(str(item["id"]), item)
                    else:
                        anonymous.append(item)
                if len(page) < self.page_size:
                    break
                skip += len(page)
        return list(seen.values()) + anonymous

    def events(self) -> list[OpenAdrEvent]:
        return [parse_event(item, self.vtn_id, index) for index, item in enumerate(self.fetch_event_objects())]


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def sync(ven: Ven301, site: Site, store: TimeSeriesStore, now: datetime | None = None) -> IngestReport:
    """Fetch every event of the configured programs, ingest, and withdraw future values of deleted events."""
    now = now or datetime.now(UTC)
    events = ven.events()
    report = ingest_events(events, site, store)
    report.merge(withdraw_absent(events, ven.vtn_id, set(ven.programs), site, store, now))
    return report
