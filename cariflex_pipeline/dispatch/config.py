"""Dispatch configuration from the environment, with embedded defaults (outbox-only, nothing leaves).

CARIFLEX_DISPATCH_TRANSPORT   outbox (default) | amqp | rest
CARIFLEX_AMQP_URL             amqp://user:pass@host:5672/vhost or amqps://... (TLS)
CARIFLEX_CITRINEOS_EXCHANGE   default citrineos
CARIFLEX_CITRINEOS_ENVELOPE   1.8 (stationId, default) | 1.9 (ocppConnectionName)
CARIFLEX_CITRINEOS_TENANT     default 1
CARIFLEX_CITRINEOS_URL        http(s)://host:8080 for the REST transport
CARIFLEX_CITRINEOS_TOKEN      Bearer token for REST (optional)
CARIFLEX_CITRINEOS_CALLBACK_URL  base URL CitrineOS posts the stations' REST answers to (our callback receiver,
                              python -m cariflex_pipeline.dispatch.callbacks); required with the REST transport
CARIFLEX_DISPATCH_ANSWER_QUEUE   default cariflex.dispatch.answers
CARIFLEX_SESSION_QUEUE        default cariflex.sessions (dead letters: <queue>.dead)
CARIFLEX_DISPATCH_CA_FILE     PEM file of a private CA for amqps:// and https:// (default: the system CAs)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from cariflex_pipeline.dispatch.amqp_transport import AmqpTransport
from cariflex_pipeline.dispatch.connections import safe_url
from cariflex_pipeline.dispatch.rest_transport import AnswerBook, RestTransport
from cariflex_pipeline.dispatch.transports import OutboxOnlyTransport, Transport

TRANSPORTS = ("outbox", "amqp", "rest")


@dataclass(frozen=True)
class DispatchSettings:
    """Where and how profiles go. The repr shows the URLs without credentials and never the token."""

    transport: str = "outbox"
    amqp_url: str = field(default="", repr=False)
    exchange: str = "citrineos"
    envelope_version: str = "1.8"
    tenant_id: str = "1"
    rest_url: str = field(default="", repr=False)
    rest_token: str = field(default="", repr=False)
    callback_url: str = ""
    answer_queue: str = "cariflex.dispatch.answers"
    session_queue: str = "cariflex.sessions"
    ca_file: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DispatchSettings:
        env = os.environ if env is None else env
        return cls(
            transport=env.get("CARIFLEX_DISPATCH_TRANSPORT", "outbox") or "outbox",
            amqp_url=env.get("CARIFLEX_AMQP_URL", ""),
            exchange=env.get("CARIFLEX_CITRINEOS_EXCHANGE", "citrineos") or "citrineos",
            envelope_version=env.get("CARIFLEX_CITRINEOS_ENVELOPE", "1.8") or "1.8",
            tenant_id=env.get("CARIFLEX_CITRINEOS_TENANT", "1") or "1",
            rest_url=env.get("CARIFLEX_CITRINEOS_URL", ""),
            rest_token=env.get("CARIFLEX_CITRINEOS_TOKEN", ""),
            callback_url=env.get("CARIFLEX_CITRINEOS_CALLBACK_URL", ""),
            answer_queue=env.get("CARIFLEX_DISPATCH_ANSWER_QUEUE", "cariflex.dispatch.answers")
            or "cariflex.dispatch.answers",
            session_queue=env.get("CARIFLEX_SESSION_QUEUE", "cariflex.sessions") or "cariflex.sessions",
            ca_file=env.get("CARIFLEX_DISPATCH_CA_FILE", ""),
        )

    def __repr__(self) -> str:
        shown = {"transport": self.transport, "amqp_url": safe_url(self.amqp_url) if self.amqp_url else "",
                 "exchange": self.exchange, "envelope_version": self.envelope_version, "tenant_id": self.tenant_id,
                 "rest_url": safe_url(self.rest_url) if self.rest_url else "",
                 "rest_token": "***" if self.rest_token else "", "callback_url": self.callback_url,
                 "answer_queue": self.answer_queue,
                 "session_queue": self.session_queue, "ca_file": self.ca_file}
        return "DispatchSettings(" + ", ".join(f"{key}={value!r}" for key, value in shown.items()) + ")"

    def make_transport(self, answer_book: AnswerBook | None = None) -> Transport:
        """The configured transport; the REST one reads its answers from `answer_book` (the outbox)."""
        if self.transport not in TRANSPORTS:
            raise ValueError(f"dispatch transport {self.transport!r}: expected one of {TRANSPORTS}")
        if self.transport == "amqp":
            if not self.amqp_url:
                raise ValueError("dispatch transport amqp needs CARIFLEX_AMQP_URL")
            return AmqpTransport(self.amqp_url, exchange=self.exchange, tenant_id=self.tenant_id,
                                 envelope_version=self.envelope_version, answer_queue=self.answer_queue,
                                 ca_file=self.ca_file or None)
        if self.transport == "rest":
            if not self.rest_url:
                raise ValueError("dispatch transport rest needs CARIFLEX_CITRINEOS_URL")
            return RestTransport(self.rest_url, callback_base_url=self.callback_url, answer_book=answer_book,
                                 tenant_id=self.tenant_id, token=self.rest_token or None,
                                 ca_file=self.ca_file or None)
        return OutboxOnlyTransport()
