"""Errors of the OpenADR VEN. Each names what it is about: the event, the VTN URL, the HTTP status."""

from __future__ import annotations

from typing import Any


class OpenAdrError(Exception):
    """Base class of every OpenADR error raised by this package."""


class UnsafeXmlError(OpenAdrError):
    """XML with a DOCTYPE, entity declarations or external entities: refused, nothing is expanded."""


class MalformedMessageError(OpenAdrError):
    """A message that is not well-formed XML/JSON, fails the 2.0b schema, or lacks required fields."""


class EventRejected(OpenAdrError):
    """One event cannot be ingested (bad value, unit, currency, time); nothing of it is written."""

    def __init__(self, event_id: str, reason: str, vtn_id: str | None = None) -> None:
        self.event_id = event_id
        self.reason = reason
        self.vtn_id = vtn_id
        where = f"VTN {vtn_id!r}: " if vtn_id is not None else ""
        super().__init__(f"{where}event {event_id!r} rejected: {reason}")


class VtnError(OpenAdrError):
    """The VTN could not be reached, kept failing, or answered with an error.

    `problem` holds an RFC 7807 body (type, title, status, detail, instance) when the VTN sent one.
    """

    def __init__(self, message: str, status: int | None = None, problem: dict[str, Any] | None = None) -> None:
        self.status = status
        self.problem = problem
        super().__init__(message)


class VtnAuthError(VtnError):
    """The VTN refused our client credentials or token."""


REDACTED = "[redacted]"


def redact(text: str, secrets: tuple[str | None, ...]) -> str:
    """`text` with every non-empty secret replaced: for messages built from what a server answered, which may
    echo what it was sent (a client secret, a token)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
