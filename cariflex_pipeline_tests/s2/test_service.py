"""`python -m cariflex_pipeline.s2 serve` as its own process: over TLS with the configured certificate, recording
into the store; a stop by SIGTERM ends the sessions and exits 0; a bad configuration exits 2 naming it."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import uuid
from pathlib import Path

from websockets.sync.client import connect

from cariflex_pipeline.s2 import state
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.s2.helpers import TIMEOUT, wait_for


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _default_signals() -> None:
    # a server started from a background shell may inherit ignored SIGTERM/SIGINT (reference/dagster-notes.md)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "cariflex_pipeline.s2", "serve", *args], env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_default_signals)


def _env(database_url: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CARIFLEX_")}
    return {**env, "CARIFLEX_DATABASE_URL": database_url, **extra}


def test_the_service_speaks_s2_over_tls_and_stops_on_sigterm(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    port = _free_port()
    log = tmp_path / "cem.log"
    process = _start(["--host", "127.0.0.1", "--port", str(port), "--cert-file", str(cert), "--key-file", str(key)],
                     _env(url), log)
    try:
        wait_for(lambda: b"S2 CEM listening" in log.read_bytes() or process.poll() is not None, "the CEM started")
        assert process.poll() is None, log.read_text()
        assert f"wss://127.0.0.1:{port}/" in log.read_text()
        client_tls = ssl.create_default_context(cafile=str(cert))
        handshake = {"message_type": "Handshake", "message_id": str(uuid.uuid4()), "role": "RM"}
        with connect(f"wss://127.0.0.1:{port}/", ssl=client_tls, open_timeout=TIMEOUT) as rm:
            rm.send(json.dumps(handshake))
            assert json.loads(rm.recv(timeout=TIMEOUT))["status"] == "OK"
            assert json.loads(rm.recv(timeout=TIMEOUT))["message_type"] == "HandshakeResponse"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=TIMEOUT) == 0, log.read_text()
        logged = state.messages(TimeSeriesStore(url).engine)
        assert [(r["direction"], r["message_type"]) for r in logged] == [("in", "Handshake"),
                                                                          ("out", "HandshakeResponse")]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_bad_tls_configuration_exits_2_naming_it(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    log = tmp_path / "cem.log"
    process = _start(["--port", str(_free_port())],
                     _env(f"sqlite:///{tmp_path / 'store.sqlite'}", CARIFLEX_S2_CERT_FILE=str(certificate[0])), log)
    assert process.wait(timeout=TIMEOUT) == 2
    assert ("S2 CEM not started: CARIFLEX_S2_CERT_FILE and CARIFLEX_S2_KEY_FILE go together: set both or neither"
            in log.read_text())
