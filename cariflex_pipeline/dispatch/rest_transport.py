"""The REST transport: CitrineOS's documented way in, one POST per call over httpx, answers by callback.

POST /ocpp/2.0.1/smartcharging/setChargingProfile?identifier=..&tenantId=..&callbackUrl=..; `success: true` only
means "handed to the bus" (status sent); "No connection found" means the station is offline (unroutable).
CitrineOS POSTs the station's answer to the callbackUrl; ours carries the station, the action and our correlation
id (`callbacks.callback_url`), and the receiver (`python -m cariflex_pipeline.dispatch.callbacks`, a service beside
Dagster) records it in the outbox. A run waits for answers by reading the outbox.

CitrineOS's REST side refuses a TxProfile update while the first one of that transaction is active (K01.FR.39):
such an entry carries a ClearChargingProfile (by profile id), sent first; the profile follows once the station
has answered it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import httpx

from cariflex_pipeline.dispatch.callbacks import callback_url
from cariflex_pipeline.dispatch.connections import safe_url, tls_context
from cariflex_pipeline.dispatch.outbox import OutboxEntry
from cariflex_pipeline.dispatch.transports import Answer, Call, SendResult

API = "/ocpp/2.0.1/smartcharging"


class AnswerBook(Protocol):
    """Where the callback receiver records answers (the outbox)."""

    def answered(self, correlation_ids: set[str]) -> list[Answer]: ...

    def mark_clear(self, correlation_id: str, status: str, reason: str = "") -> None: ...


class RestTransport:
    """CitrineOS REST: one POST per call; answers come back through the callback receiver into the outbox."""

    name = "rest"

    def __init__(self, base_url: str, *, callback_base_url: str, answer_book: AnswerBook | None = None,
                 tenant_id: str = "1", token: str | None = None, timeout: float = 10.0, clear_timeout: float = 10.0,
                 ca_file: str | None = None, client: httpx.Client | None = None) -> None:
        if not callback_base_url:
            raise ValueError("the REST transport needs a callback URL for the stations' answers "
                             "(CARIFLEX_CITRINEOS_CALLBACK_URL, served by "
                             "python -m cariflex_pipeline.dispatch.callbacks)")
        self.base_url = base_url.rstrip("/")
        self.callback_base_url = callback_base_url
        self.answer_book = answer_book
        self.tenant_id = str(tenant_id)
        self.clear_timeout = clear_timeout
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = client or httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers,
                                              verify=tls_context(ca_file))

    def send(self, entries: Sequence[OutboxEntry]) -> list[SendResult]:
        out = []
        for entry in entries:
            if entry.clear_correlation_id and entry.clear_status == "pending":
                problem = self._clear_first(entry)
                if problem:
                    out.append(SendResult(entry.correlation_id, entry.station_id, "failed", problem))
                    continue
            out.append(self._post(Call(entry.correlation_id, entry.station_id, "SetChargingProfile", entry.payload)))
        return out

    def send_calls(self, calls: Sequence[Call]) -> list[SendResult]:
        return [self._post(call) for call in calls]

    def _clear_first(self, entry: OutboxEntry) -> str:
        """ClearChargingProfile for the entry's profile id, and its answer; '' when the update may follow."""
        assert entry.clear_correlation_id is not None  # checked by the caller
        corr = entry.clear_correlation_id
        result = self._post(Call(corr, entry.station_id, "ClearChargingProfile",
                                 {"chargingProfileId": entry.profile_id}))
        if self.answer_book is not None:
            self.answer_book.mark_clear(corr, result.status, result.reason)
        if result.status != "sent":
            return f"ClearChargingProfile before the TxProfile update: {result.status} {result.reason}".strip()
        answers = self._wait({corr}, self.clear_timeout)
        if not answers:
            return (f"no answer to the ClearChargingProfile before the TxProfile update within "
                    f"{self.clear_timeout:g} s (CitrineOS refuses the update while the old one is active)")
        if answers[0].status not in ("Accepted", "Unknown"):
            return f"ClearChargingProfile before the TxProfile update answered {answers[0].status}"
        return ""

    def _post(self, call: Call) -> SendResult:
        params = {"identifier": call.station_id, "tenantId": self.tenant_id,
                  "callbackUrl": callback_url(self.callback_base_url, call.station_id, call.action,
                                              call.correlation_id)}
        path = f"{API}/{call.action[0].lower()}{call.action[1:]}"
        try:
            response = self._client.post(path, params=params, json=call.payload)
        except httpx.HTTPError as error:
            return SendResult(call.correlation_id, call.station_id, "failed",
                              f"{call.action} to CitrineOS at {safe_url(self.base_url)}: {type(error).__name__}")
        return _result(call, response, self.tenant_id)

    def collect_answers(self, record: Callable[[Answer], bool], *, expected: set[str] | None = None,
                        timeout: float = 0.0) -> list[Answer]:
        """The answers the callback receiver has recorded for `expected`, waiting up to `timeout` s for them all.
        (`record` is not needed: the receiver records them as they come.)"""
        return self._wait(set(expected or ()), timeout)

    def _wait(self, expected: set[str], timeout: float) -> list[Answer]:
        if not expected or self.answer_book is None:
            return []
        deadline = time.monotonic() + timeout
        while True:
            answers = self.answer_book.answered(expected)
            if {a.correlation_id for a in answers} >= expected or time.monotonic() >= deadline:
                return answers
            time.sleep(0.05)

    def close(self) -> None:
        self._client.close()


def _result(call: Call, response: httpx.Response, tenant_id: str) -> SendResult:
    corr, station = call.correlation_id, call.station_id
    try:
        body = response.json()
    except (json.JSONDecodeError, ValueError):
        body = response.text[:300]
    if response.status_code != 200:
        return SendResult(corr, station, "failed", f"{call.action}: HTTP {response.status_code}: "
                                                   f"{json.dumps(body)[:300]}")
    first = body[0] if isinstance(body, list) and body else body
    if isinstance(first, dict) and first.get("success") is True:
        return SendResult(corr, station, "sent")
    detail = str(first.get("payload", "")) if isinstance(first, dict) else str(first)
    if "No connection found" in detail:
        return SendResult(corr, station, "unroutable", f"{detail}; likely causes: station {station} is not "
                                                       f"connected to CitrineOS, or belongs to another tenant "
                                                       f"than {tenant_id} (CARIFLEX_CITRINEOS_TENANT)")
    return SendResult(corr, station, "failed", f"{call.action} refused by CitrineOS: {detail or 'success false'}")
