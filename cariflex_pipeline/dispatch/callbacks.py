"""The receiver of CitrineOS's REST callbacks: a small HTTP service run beside Dagster, meeting it through the store.

CitrineOS 1.8.3 answers a REST call (`?callbackUrl=...`) by POSTing the station's response payload, as JSON and
nothing else, to that URL once the station has answered (`AbstractModule.handleMessageApiCallback`). The payload
carries no station id and no correlation id of ours, so the URL does: `callback_url` builds
`/citrineos/answers/{station_id}/{action}/{correlation_id}`, and `AnswerReceiver` turns each POST into an `Answer`
(checked against CitrineOS's own response schema) and hands it to `record`, which stores it (`Outbox.apply_answer`).

CitrineOS ignores the status we answer and never retries, so a lost callback is only seen as an entry still awaiting
its answer; every request is logged with its station and correlation id for that reason.

Run it with `python -m cariflex_pipeline.dispatch.callbacks`: CARIFLEX_DATABASE_URL names the store (default: the
SQLite file under the Dagster home), CARIFLEX_CALLBACK_LISTEN the address to listen on (default 127.0.0.1:8091).
SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from cariflex_pipeline.dispatch.outbox import Outbox
from cariflex_pipeline.dispatch.peer_schemas import violations
from cariflex_pipeline.dispatch.transports import ANSWERED_ACTIONS, Answer
from cariflex_pipeline.store import StoreUnavailableError, TimeSeriesStore, default_database_url

logger = logging.getLogger(__name__)

PATH_PREFIX = "/citrineos/answers"
LISTEN_ENV = "CARIFLEX_CALLBACK_LISTEN"
DEFAULT_LISTEN = "127.0.0.1:8091"
# a GetCompositeScheduleResponse with 1024 periods is about 60 kB; anything far larger is not CitrineOS
MAX_BODY_BYTES = 1 << 20


class BadAnswerError(ValueError):
    """A callback body that is not the station's response payload; the message names the field."""


def callback_url(base_url: str, station_id: str, action: str, correlation_id: str) -> str:
    """The URL handed to CitrineOS as `callbackUrl` for one call, under the receiver's base URL."""
    if action not in ANSWERED_ACTIONS:
        raise ValueError(f"no callback for action {action!r}; one of {', '.join(ANSWERED_ACTIONS)}")
    parts = (quote(station_id, safe=""), action, quote(correlation_id, safe=""))
    return f"{base_url.rstrip('/')}{PATH_PREFIX}/{'/'.join(parts)}"


def parse_callback_path(path: str) -> tuple[str, str, str] | None:
    """(station_id, action, correlation_id) from a callback path (no query), or None when it is not one."""
    segments = path.split("/")
    prefix = PATH_PREFIX.split("/")
    if len(segments) != len(prefix) + 3 or segments[: len(prefix)] != prefix:
        return None
    station_id, action, correlation_id = (unquote(s) for s in segments[len(prefix):])
    if action not in ANSWERED_ACTIONS or not station_id or not correlation_id:
        return None
    return station_id, action, correlation_id


def answer_reason(payload: dict[str, Any]) -> str:
    """The station's reason, as the AMQP transport words it: statusInfo's reasonCode and additionalInfo."""
    info = payload.get("statusInfo") or {}
    return " ".join(str(info[k]) for k in ("reasonCode", "additionalInfo") if info.get(k)).strip()


def parse_answer(station_id: str, action: str, correlation_id: str, body: bytes) -> Answer:
    """The Answer in a callback body; BadAnswerError naming the field when CitrineOS's response schema refuses it."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadAnswerError(f"body is not JSON: {error}") from None
    problems = violations(action, payload, "Response")
    if problems:
        raise BadAnswerError("; ".join(problems))
    return Answer(correlation_id, station_id, payload["status"], answer_reason(payload), action, payload)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        target = parse_callback_path(path)
        if target is None:
            logger.warning("callback to unknown path %s refused", path)
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no callback route {path}"})
            return
        station_id, action, correlation_id = target
        where = f"{action} answer from station {station_id}, correlation id {correlation_id}"
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            logger.warning("%s refused: Content-Length %r", where, length)
            self._reply(HTTPStatus.LENGTH_REQUIRED,
                        {"error": f"a body of at most {MAX_BODY_BYTES} bytes with Content-Length is required"})
            return
        try:
            answer = parse_answer(station_id, action, correlation_id, self.rfile.read(int(length)))
        except BadAnswerError as error:
            logger.warning("%s refused: %s", where, error)
            self._reply(HTTPStatus.BAD_REQUEST, {"error": str(error)})
            return
        self._record(where, answer)

    def _record(self, where: str, answer: Answer) -> None:
        try:
            recorded = self.server.record(answer)
        except Exception as error:
            # the store is down or the record function broke: CitrineOS never retries, so say so loudly
            first_line = next(iter(str(error).splitlines()), "")
            logger.error("%s (%s) not recorded: %s: %s", where, answer.status, type(error).__name__, first_line)
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "answer not recorded"})
            return
        if not recorded:
            logger.warning("%s (%s): unknown correlation id, not recorded", where, answer.status)
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"unknown correlation id {answer.correlation_id}"})
            return
        logger.info("%s recorded: %s%s", where, answer.status, f" ({answer.reason})" if answer.reason else "")
        self._reply(HTTPStatus.NO_CONTENT)

    def do_GET(self) -> None:
        logger.warning("GET %s refused: callbacks are POSTed", urlsplit(self.path).path)
        self._reply(HTTPStatus.NOT_FOUND, {"error": "callbacks are POSTed"})

    def _reply(self, status: HTTPStatus, document: dict[str, Any] | None = None) -> None:
        self.send_response(status)
        data = b"" if document is None else json.dumps(document).encode()
        if data:  # a 204 carries neither body nor Content-Length (RFC 9110)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # the default writes every request to stderr; the handler logs what matters with station and correlation id
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], record: Callable[[Answer], bool]) -> None:
        if ":" in address[0]:  # an IPv6 host: HTTPServer binds IPv4 unless told otherwise
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.record = record


class AnswerReceiver:
    """Serves `POST /citrineos/answers/{station_id}/{action}/{correlation_id}` and records each answer.

    `record(answer)` returns False for a correlation id that is not ours (answered 404); a recorded answer is
    answered 204, a body CitrineOS's response schema refuses 400 naming the field, any other path 404."""

    def __init__(self, record: Callable[[Answer], bool], host: str = "127.0.0.1", port: int = 0) -> None:
        self._record = record
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> AnswerReceiver:
        if self._server is not None:
            raise RuntimeError(f"the callback receiver is already listening at {self.url}")
        self._server = _Server(self._address, self._record)
        # stop() waits for the loop's next poll: keep it short
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="citrineos-callbacks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server, self._thread = None, None

    @property
    def url(self) -> str:
        """The base URL to give `callback_url` (the address actually bound, so port 0 shows the chosen port)."""
        if self._server is None:
            raise RuntimeError("the callback receiver is not started")
        host, port = self._server.server_address[:2]
        return f"http://{f'[{host}]' if ':' in str(host) else host}:{port}"

    def __enter__(self) -> AnswerReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def parse_listen(value: str) -> tuple[str, int]:
    """host:port (or [v6-host]:port) of CARIFLEX_CALLBACK_LISTEN."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{LISTEN_ENV}={value!r} is not host:port")
    return host.strip("[]"), int(port)


def main() -> int:
    """Listen for CitrineOS's callbacks and record them in the store's outbox until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        host, port = parse_listen(os.environ.get(LISTEN_ENV, DEFAULT_LISTEN))
        store = TimeSeriesStore(default_database_url())
        store.migrate()
    except (ValueError, StoreUnavailableError) as error:
        logger.error("callback receiver not started: %s", error)
        return 2
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with AnswerReceiver(Outbox(store.engine).apply_answer, host, port) as receiver:
        logger.info("receiving CitrineOS callbacks at %s%s/..., recording into %s", receiver.url, PATH_PREFIX,
                    store.describe())
        stopping.wait()
        logger.info("stopping the callback receiver")
    return 0


if __name__ == "__main__":
    sys.exit(main())
