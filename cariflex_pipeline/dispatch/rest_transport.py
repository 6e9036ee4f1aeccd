"""The REST transport: CitrineOS's documented way in, one POST per profile over httpx.

POST /ocpp/2.0.1/smartcharging/setChargingProfile?identifier=..&tenantId=..; `success: true` only means "handed
to the bus" (status sent); "No connection found" means the station is offline (unroutable).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import httpx

from cariflex_pipeline.dispatch.connections import safe_url, tls_context
from cariflex_pipeline.dispatch.outbox import OutboxEntry
from cariflex_pipeline.dispatch.transports import Answer, SendResult


class RestTransport:
    """CitrineOS REST: one POST per profile; `success: true` only means 'handed to the bus' (status sent)."""

    name = "rest"

    def __init__(self, base_url: str, *, tenant_id: str = "1", token: str | None = None,
                 callback_url: str | None = None, timeout: float = 10.0, ca_file: str | None = None,
                 client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.tenant_id = str(tenant_id)
        self.callback_url = callback_url
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = client or httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers,
                                              verify=tls_context(ca_file))

    def send(self, entries: Sequence[OutboxEntry]) -> list[SendResult]:
        out = []
        for entry in entries:
            params: dict[str, str] = {"identifier": entry.station_id, "tenantId": self.tenant_id}
            if self.callback_url:
                params["callbackUrl"] = self.callback_url
            try:
                response = self._client.post("/ocpp/2.0.1/smartcharging/setChargingProfile", params=params,
                                             json=entry.payload)
            except httpx.HTTPError as error:
                out.append(SendResult(entry.correlation_id, entry.station_id, "failed",
                                      f"CitrineOS at {safe_url(self.base_url)}: {type(error).__name__}"))
                continue
            out.append(self._result(entry, response))
        return out

    def _result(self, entry: OutboxEntry, response: httpx.Response) -> SendResult:
        corr, station = entry.correlation_id, entry.station_id
        try:
            body = response.json()
        except (json.JSONDecodeError, ValueError):
            body = response.text[:300]
        if response.status_code != 200:
            return SendResult(corr, station, "failed", f"HTTP {response.status_code}: {json.dumps(body)[:300]}")
        first = body[0] if isinstance(body, list) and body else body
        if isinstance(first, dict) and first.get("success") is True:
            return SendResult(corr, station, "sent")
        detail = str(first.get("payload", "")) if isinstance(first, dict) else str(first)
        if "No connection found" in detail:
            return SendResult(corr, station, "unroutable", detail)
        return SendResult(corr, station, "failed", detail or "success false")

    def collect_answers(self, record: Callable[[Answer], bool], *, expected: set[str] | None = None,
                        timeout: float = 0.0) -> list[Answer]:
        return []  # answers come to callbackUrl when configured; CitrineOS keeps its own correlation ids

    def close(self) -> None:
        self._client.close()
