"""The CEM service's configuration from the environment, with embedded defaults (loopback, no TLS).

CARIFLEX_S2_HOST                  address the endpoint binds (default 127.0.0.1)
CARIFLEX_S2_PORT                  its port (default 8765)
CARIFLEX_S2_CERT_FILE, _KEY_FILE  PEM certificate chain and key: with both, the endpoint is wss:// (TLS)
CARIFLEX_S2_ANSWER_TIMEOUT_SECONDS  how long a sent instruction may wait for its ReceptionStatus (default 30)
CARIFLEX_S2_POLL_SECONDS          how often each connection looks for staged instructions (default 1)
CARIFLEX_S2_MAX_ATTEMPTS          attempts at one planned setpoint before it is left unanswered (default 3)
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_PORT = 8765


class CemConfigError(ValueError):
    """A CEM setting that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class CemSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    cert_file: str = ""
    key_file: str = ""
    answer_timeout_seconds: float = 30.0
    poll_seconds: float = 1.0
    max_attempts: int = 3

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CemSettings:
        env = os.environ if env is None else env

        def number(name: str, default: float, kind: type = float) -> float:
            raw = env.get(name)
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise CemConfigError(f"{name}={raw!r} is not a {kind.__name__}") from None
            if value <= 0:
                raise CemConfigError(f"{name}={raw!r} must be positive")
            return value

        return cls(host=env.get("CARIFLEX_S2_HOST") or "127.0.0.1",
                   port=int(number("CARIFLEX_S2_PORT", DEFAULT_PORT, int)),
                   cert_file=env.get("CARIFLEX_S2_CERT_FILE", ""), key_file=env.get("CARIFLEX_S2_KEY_FILE", ""),
                   answer_timeout_seconds=number("CARIFLEX_S2_ANSWER_TIMEOUT_SECONDS", 30.0),
                   poll_seconds=number("CARIFLEX_S2_POLL_SECONDS", 1.0),
                   max_attempts=int(number("CARIFLEX_S2_MAX_ATTEMPTS", 3, int)))

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS when a certificate and key are configured; both or neither."""
        if bool(self.cert_file) != bool(self.key_file):
            raise CemConfigError("CARIFLEX_S2_CERT_FILE and CARIFLEX_S2_KEY_FILE go together: set both or neither")
        if not self.cert_file:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as error:
            raise CemConfigError(f"CARIFLEX_S2_CERT_FILE {self.cert_file}: cannot load with its key: "
                                 f"{type(error).__name__}") from None
        return context

    @property
    def url(self) -> str:
        return f"{'wss' if self.cert_file else 'ws'}://{self.host}:{self.port}/"
