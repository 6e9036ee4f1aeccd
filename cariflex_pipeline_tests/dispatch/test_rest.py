"""REST transport against a local HTTP server that answers like CitrineOS 1.8's smartcharging module.

The server is test scaffolding standing in for CitrineOS (which cannot run here); it validates the body with
the same OCPP schema + CitrineOS rules and answers with CitrineOS's documented shapes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from cariflex_pipeline.dispatch import Outbox, RestTransport, dispatch_profiles, profiles_from_plan, request_violations
from cariflex_pipeline.dispatch.config import DispatchSettings
from cariflex_pipeline_tests.dispatch.conftest import NOW, plan_frame

START = NOW.replace(minute=0, second=0)
CONNECTED = {"CP001", "CP002"}


class _CitrineRest(BaseHTTPRequestHandler):
    calls: list[tuple[str, dict, dict, str]] = []

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append((parts.path, query, body, self.headers.get("Authorization", "")))
        if parts.path != "/ocpp/2.0.1/smartcharging/setChargingProfile":
            return self._answer(404, {"message": "not found"})
        if request_violations(body, now=NOW):
            return self._answer(400, {"code": "FST_ERR_VALIDATION", "message": request_violations(body, now=NOW)[0]})
        if query.get("identifier") not in CONNECTED:
            return self._answer(200, [{"success": False, "payload":
                                       f"No connection found for identifier: {query.get('tenantId')}:"
                                       f"{query.get('identifier')}"}])
        return self._answer(200, [{"success": True}])

    def _answer(self, status: int, document: object) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def citrine_rest() -> Iterator[str]:
    _CitrineRest.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CitrineRest)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_rest_transport_sent_unroutable_and_schema_failure(citrine_rest, store, site) -> None:
    frame = plan_frame(site, START, {"CP001": [7.0] * 4, "CP002": [3.0] * 4, "CP003": [5.0] * 4})
    built = profiles_from_plan(site, frame, now=NOW)
    # a payload CitrineOS's REST validation refuses (limit not a multiple of 0.1) - only reachable by bypassing
    # our own validation, to show the transport reports the 400 instead of losing it
    built.profiles[1].payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] = 3.05
    transport = RestTransport(citrine_rest, tenant_id="1", token="secret-token")
    report = dispatch_profiles(Outbox(store.engine), transport, built.profiles, run_id="rest-1", now=NOW)
    statuses = {s: (e.status, e.status_reason) for s, e in report.entries.items()}
    assert statuses["CP001"] == ("sent", "")
    assert statuses["CP002"][0] == "failed" and "HTTP 400" in statuses["CP002"][1]
    assert "FST_ERR_VALIDATION" in statuses["CP002"][1]
    assert statuses["CP003"] == ("unroutable", "No connection found for identifier: 1:CP003")
    path, query, body, auth = _CitrineRest.calls[0]
    assert (path, query) == ("/ocpp/2.0.1/smartcharging/setChargingProfile", {"identifier": "CP001", "tenantId": "1"})
    assert body == built.profiles[0].payload
    assert auth == "Bearer secret-token"
    transport.close()


def test_settings_choose_the_transport_from_the_environment(citrine_rest) -> None:
    assert DispatchSettings.from_env({}).make_transport().name == "outbox"
    rest = DispatchSettings.from_env({"CARIFLEX_DISPATCH_TRANSPORT": "rest",
                                      "CARIFLEX_CITRINEOS_URL": citrine_rest}).make_transport()
    assert rest.name == "rest"
    amqp = DispatchSettings.from_env({"CARIFLEX_DISPATCH_TRANSPORT": "amqp",
                                      "CARIFLEX_AMQP_URL": "amqps://u:p@broker.example:5671/%2F",
                                      "CARIFLEX_CITRINEOS_ENVELOPE": "1.9"}).make_transport()
    assert (amqp.name, amqp.envelope_version) == ("amqp", "1.9")
    with pytest.raises(ValueError, match="CARIFLEX_AMQP_URL"):
        DispatchSettings.from_env({"CARIFLEX_DISPATCH_TRANSPORT": "amqp"}).make_transport()
    with pytest.raises(ValueError, match="expected one of"):
        DispatchSettings.from_env({"CARIFLEX_DISPATCH_TRANSPORT": "mqtt"}).make_transport()


def test_amqps_url_gets_tls_and_errors_never_show_the_password() -> None:
    from cariflex_pipeline.dispatch.connections import amqp_parameters, safe_url

    parameters = amqp_parameters("amqps://user:hunter2@broker.example:5671/%2F")
    assert parameters.ssl_options is not None and parameters.port == 5671
    assert safe_url("amqps://user:hunter2@broker.example:5671/%2F") == "amqps://broker.example:5671/%2F"
