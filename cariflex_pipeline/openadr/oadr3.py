"""An OpenADR 3.0.1 VEN over httpx (REST + JSON), and the parser of its events.

- OAuth2 client credentials: `POST {token_url}` form-encoded -> Bearer token, fetched again when it expires
  (`expires_in`, with a margin) or when the VTN answers 401 (once per request);
- `GET {base}/events?programID=..&targetType=..&targetValues=..&skip=..&limit=..` page by page (limit <= 50)
  until a short page, de-duplicated by `id` (the VTN promises no order);
- intervals inherit the event's `intervalPeriod`: an interval without its own period starts where the
  previous one ended (the first at the event's start) and lasts the event's duration; its own period overrides;
- RFC 7807 problem bodies are surfaced in VtnError messages; timeouts and 5xx are retried with backoff.

Modification number: 3.0.1 has none, so the version of an event is its `modificationDateTime` (epoch
seconds), or a CRC32 of its canonical JSON when the VTN sends no modification time.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from cariflex_pipeline.openadr.durations import parse_duration, parse_moment
from cariflex_pipeline.openadr.errors import MalformedMessageError, VtnAuthError, VtnError, redact
from cariflex_pipeline.openadr.http import RetryPolicy, describe_failure, problem_of, redact_problem, send
from cariflex_pipeline.openadr.ingest import IngestReport, ingest_events, withdraw_absent
from cariflex_pipeline.openadr.model import EventSignal, OpenAdrEvent, SignalInterval
from cariflex_pipeline.site_model import Site
from cariflex_pipeline.store import TimeSeriesStore

log = logging.getLogger(__name__)

MAX_PAGE = 50
_UNIT_NAMES = {"KWH": "kWh", "MWH": "MWh", "PERCENT": "%", "KW": "kW", "MW": "MW"}


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
            raise ValueError(f"page_size must be in 1..{MAX_PAGE}")
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


def parse_events_json(data: bytes | str, vtn_id: str) -> list[OpenAdrEvent]:
    """Parse a JSON array of 3.0.1 events (e.g. a saved GET /events answer)."""
    try:
        items = json.loads(data)
    except ValueError as error:
        raise MalformedMessageError(f"OpenADR 3.0.1 events: malformed JSON ({error})") from None
    if not isinstance(items, list):
        raise MalformedMessageError("OpenADR 3.0.1 events: expected a JSON array")
    return [parse_event(item, vtn_id, index) for index, item in enumerate(items)]


def parse_event(item: Any, vtn_id: str, index: int = 0) -> OpenAdrEvent:
    """One 3.0.1 event object; problems found are kept on the event, which normalization then rejects."""
    problems: list[str] = []
    if not isinstance(item, dict):
        return OpenAdrEvent(protocol="3.0.1", vtn_id=vtn_id, event_id=f"#{index}", modification_number=0,
                            status="active", program=None, response_required=False, signals=(),
                            raw_payload=json.dumps(item, default=str),
                            problems=(f"event #{index} is not a JSON object",))
    raw = json.dumps(item, sort_keys=True, default=str)
    event_id = str(item.get("id") or f"#{index}")
    if item.get("id") is None:
        problems.append("event has no id")
    program = item.get("programID")
    if not program:
        problems.append("event has no programID")
    created = parse_moment(item.get("createdDateTime"), "createdDateTime", problems)
    modified = parse_moment(item.get("modificationDateTime"), "modificationDateTime", problems)
    modification = int(modified.timestamp()) if modified and modified.tzinfo else zlib.crc32(raw.encode())
    descriptors = {}
    for descriptor in item.get("payloadDescriptors") or []:
        if isinstance(descriptor, dict) and descriptor.get("payloadType"):
            descriptors[descriptor["payloadType"]] = descriptor
    event_period = item.get("intervalPeriod")
    default_start, default_duration = _period(event_period, None, None, "event intervalPeriod", problems)
    intervals = item.get("intervals")
    by_type: dict[str, list[SignalInterval]] = {}
    if not isinstance(intervals, list):
        problems.append("intervals is not a list")
        intervals = []
    cursor = default_start
    for position, interval in enumerate(intervals):
        if not isinstance(interval, dict):
            problems.append(f"interval #{position} is not an object")
            continue
        uid = str(interval.get("id", position))
        start, duration = _period(interval.get("intervalPeriod"), cursor, default_duration,
                                  f"interval {uid} intervalPeriod", problems)
        if start is None:
            problems.append(f"interval {uid} has no start (neither its own nor the event's intervalPeriod)")
        if duration is None:
            duration = timedelta(0)
        cursor = start + duration if isinstance(start, datetime) else None
        payloads = interval.get("payloads")
        if not isinstance(payloads, list):
            problems.append(f"interval {uid}: payloads is not a list")
            continue
        for payload in payloads:
            if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
                problems.append(f"interval {uid}: payload without a type")
                continue
            values = payload.get("values")
            if not isinstance(values, list) or len(values) != 1:
                problems.append(f"interval {uid}: payload {payload['type']} needs exactly one value, got {values!r}")
                continue
            by_type.setdefault(payload["type"], []).append(
                SignalInterval(start=start, duration=duration, value=values[0], uid=uid)
            )
    signals = []
    for payload_type, signal_intervals in by_type.items():
        descriptor = descriptors.get(payload_type, {})
        unit, currency = _unit(descriptor)
        signals.append(EventSignal(intervals=tuple(signal_intervals), payload_type=payload_type, unit=unit,
                                   currency=currency))
    return OpenAdrEvent(
        protocol="3.0.1", vtn_id=vtn_id, event_id=event_id, modification_number=modification, status="active",
        program=program, response_required=False, signals=tuple(signals), raw_payload=raw, created=created,
        modified=modified, problems=tuple(problems),
    )


def _unit(descriptor: dict[str, Any]) -> tuple[str | None, str | None]:
    """(unit, currency) from a payloadDescriptor: KWH + EUR -> EUR/kWh; a bare KWH price -> `/kWh`
    (normalization supplies the program's currency); PERCENT -> %; unknown units verbatim."""
    units = descriptor.get("units")
    currency = descriptor.get("currency")
    if units is None:
        return (None, currency)
    name = _UNIT_NAMES.get(str(units).upper(), str(units))
    if name in ("kWh", "MWh"):
        return f"{currency or ''}/{name}", currency
    return name, currency


def _period(period: Any, default_start: datetime | None, default_duration: timedelta | None, what: str,
            problems: list[str]) -> tuple[datetime | None, timedelta | None]:
    if period is None:
        return default_start, default_duration
    if not isinstance(period, dict):
        problems.append(f"{what} is not an object")
        return default_start, default_duration
    start = parse_moment(period.get("start"), f"{what}.start", problems) if "start" in period else default_start
    duration = default_duration
    if "duration" in period:
        try:
            duration = parse_duration(period["duration"])
        except ValueError as error:
            problems.append(f"{what}.duration: {error}")
    elif default_duration is None:
        duration = timedelta(0)  # the spec's default PT0S
    return start, duration


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
