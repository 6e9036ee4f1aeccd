"""A small OpenADR 3.0.1 test VTN: ThreadingHTTPServer on 127.0.0.1, answers shaped after openadr3-3.0.1.yaml.

- `POST {base}/auth/token` (form: grant_type=client_credentials, client_id, client_secret) ->
  {access_token, token_type: "Bearer", expires_in}; bad credentials -> 400 authError {error, error_description};
- `GET {base}/events?programID&targetType&targetValues&skip&limit` -> JSON array (limit > 50 -> 400 problem),
  Bearer token required (unknown or revoked token -> 401 problem);
- faults to inject: `fail_next` (status, problem) answers, `delay_seconds` (to provoke client timeouts),
  `overlap_pages` (the spec promises no order: each later page repeats the previous page's last event),
  `ignore_skip` (every page is the first), `raw_events` (the exact body of every GET /events answer),
  `token_fields` (merged into the token answer: fields of the wrong type or size).
Problems are sent as application/json, as the spec does.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BASE_PATH = "/openadr3/3.0.1"


def problem(status: int, title: str, detail: str, type_: str = "about:blank") -> dict[str, Any]:
    return {"type": type_, "title": title, "status": status, "detail": detail, "instance": f"/problems/{uuid.uuid4()}"}


class Vtn301Server:
    def __init__(self, client_id: str = "ven_client", client_secret: str = "s3cret-ven",
                 expires_in: int = 3600) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.events: list[dict[str, Any]] = []
        self.valid_tokens: set[str] = set()
        self.token_requests = 0
        self.event_requests: list[dict[str, list[str]]] = []
        self.fail_next: list[tuple[int, dict[str, Any] | str]] = []
        self.delay_seconds = 0.0
        self.overlap_pages = False
        self.ignore_skip = False
        self.raw_events: str | None = None
        self.token_fields: dict[str, Any] = {}
        self.lock = threading.Lock()
        vtn = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _send(self, status: int, body: Any) -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _fault(self) -> bool:
                if vtn.delay_seconds:
                    time.sleep(vtn.delay_seconds)
                with vtn.lock:
                    fault = vtn.fail_next.pop(0) if vtn.fail_next else None
                if fault is None:
                    return False
                self._send(*fault)
                return True

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                if path != f"{BASE_PATH}/auth/token":
                    self._send(404, problem(404, "Not Found", f"no route {path}"))
                    return
                if self._fault():
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                vtn.token_requests += 1
                if form.get("grant_type") != ["client_credentials"]:
                    self._send(400, {"error": "unsupported_grant_type", "error_description": "client_credentials only"})
                    return
                if form.get("client_id") != [vtn.client_id] or form.get("client_secret") != [vtn.client_secret]:
                    self._send(400, {"error": "invalid_client", "error_description": "unknown client or bad secret"})
                    return
                token = uuid.uuid4().hex
                vtn.valid_tokens.add(token)
                self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": vtn.expires_in,
                                 **vtn.token_fields})

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != f"{BASE_PATH}/events":
                    self._send(404, problem(404, "Not Found", f"no route {parts.path}"))
                    return
                if self._fault():
                    return
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in vtn.valid_tokens:
                    self._send(401, problem(401, "Unauthorized", "missing, unknown or expired bearer token"))
                    return
                query = parse_qs(parts.query)
                vtn.event_requests.append(query)
                try:
                    skip = int(query.get("skip", ["0"])[0])
                    limit = int(query.get("limit", ["50"])[0])
                except ValueError:
                    self._send(400, problem(400, "Bad Request", "skip and limit must be integers"))
                    return
                if limit > 50 or limit < 0 or skip < 0:
                    self._send(400, problem(400, "Bad Request", f"limit {limit} is not in 0..50"))
                    return
                events = vtn.events
                if "programID" in query:
                    events = [event for event in events if event.get("programID") == query["programID"][0]]
                if "targetType" in query:
                    wanted = set(query.get("targetValues", []))
                    events = [event for event in events
                              if any(target.get("type") == query["targetType"][0] and wanted & set(target["values"])
                                     for target in event.get("targets") or [])]
                if vtn.overlap_pages and skip:
                    skip -= 1  # the order shifted between requests: the previous page's last event again
                if vtn.ignore_skip:
                    skip = 0
                self._send(200, vtn.raw_events if vtn.raw_events is not None else events[skip: skip + limit])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="test-vtn-301", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{BASE_PATH}"

    def revoke_tokens(self) -> None:
        self.valid_tokens.clear()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
