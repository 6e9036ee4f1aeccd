"""HTTP to a VTN over httpx: timeouts and 5xx retried with exponential backoff, then a clear VtnError.

RFC 7807 problem bodies ({type, title, status, detail, instance}) are parsed whether the VTN labels them
application/json (as the 3.0.1 spec does) or application/problem+json, and surfaced in the error message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from cariflex_pipeline.openadr.errors import MalformedMessageError, VtnError, redact
from cariflex_pipeline.openadr.limits import load_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def delay(self, attempt: int) -> float:
        return min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)


def problem_of(response: httpx.Response) -> dict[str, Any] | None:
    """The RFC 7807 body of a response, if it has one."""
    try:
        body = load_json(response.content, "problem body")
    except MalformedMessageError:
        return None
    if isinstance(body, dict) and ({"title", "detail"} & body.keys() or ("status" in body and "type" in body)):
        return body
    return None


def describe_failure(response: httpx.Response) -> str:
    problem = problem_of(response)
    if problem is not None:
        parts = [str(problem[key]) for key in ("title", "detail") if problem.get(key)]
        text = ": ".join(parts) or "problem without title"
        extra = f" [type {problem['type']}]" if problem.get("type") else ""
        instance = f" [instance {problem['instance']}]" if problem.get("instance") else ""
        return f"HTTP {response.status_code}: {text}{extra}{instance}"
    body = response.text.strip().replace("\n", " ")
    return f"HTTP {response.status_code}: {body[:200] or response.reason_phrase}"


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    what: str,
    secrets: tuple[str | None, ...] = (),
    **kwargs: Any,
) -> httpx.Response:
    """Send with retries on timeouts, connection errors and 5xx; any other answer is returned as it is.

    `secrets` (what the request carries: a client secret, a token) are redacted from what is logged and raised,
    in case the server echoes them in an error body.
    """
    last_failure = "no attempt made"
    status: int | None = None
    problem: dict[str, Any] | None = None
    for attempt in range(1, policy.attempts + 1):
        try:
            response = client.request(method, url, **kwargs)
        except httpx.TimeoutException as error:
            last_failure, status, problem = f"timed out ({type(error).__name__})", None, None
        except httpx.TransportError as error:
            last_failure, status, problem = f"connection failed ({type(error).__name__}: {error})", None, None
        else:
            if response.status_code < 500:
                return response
            last_failure, status, problem = describe_failure(response), response.status_code, problem_of(response)
        last_failure = redact(last_failure, secrets)
        if attempt < policy.attempts:
            delay = policy.delay(attempt)
            log.warning("%s: %s %s: %s; retry %d/%d in %.1fs", what, method, url, last_failure, attempt,
                        policy.attempts - 1, delay)
            policy.sleep(delay)
    raise VtnError(f"{what}: {method} {url} failed after {policy.attempts} attempts: {last_failure}",
                   status=status, problem=redact_problem(problem, secrets))


def redact_problem(problem: dict[str, Any] | None, secrets: tuple[str | None, ...]) -> dict[str, Any] | None:
    """An RFC 7807 body with `secrets` redacted from its text fields."""
    if problem is None:
        return None
    return {key: redact(value, secrets) if isinstance(value, str) else value for key, value in problem.items()}
