"""A threaded HTTP server on loopback that answers JSON: the transport under the tests' HTTP doubles of peers
(CitrineOS's REST API, its GraphQL engine), so each double only says what it answers."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (method, path with query, Authorization header, body) -> (status, JSON document)
Handle = Callable[[str, str, str | None, bytes], tuple[int, Any]]


def json_handler(handle: Handle, methods: Sequence[str]) -> type[BaseHTTPRequestHandler]:
    """A request handler serving `methods` through `handle`; other methods get the standard library's 501."""

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, document = handle(self.command, self.path, self.headers.get("Authorization"), body)
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return None

    for method in methods:
        setattr(Handler, f"do_{method}", Handler._serve)
    return Handler


class LoopbackJsonServer:
    """`handle` served on 127.0.0.1 at a free port, HTTPS with `tls`, in a daemon thread until `stop`."""

    def __init__(self, handle: Handle, methods: Sequence[str], tls: ssl.SSLContext | None = None) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), json_handler(handle, methods))
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
