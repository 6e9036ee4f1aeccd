"""The no-Docker topology (deploy/serve.py, what scripts/serve runs) end to end: the gRPC code server, the daemon
and the webserver on a scratch PostgreSQL instance; `openadr_vtn_sensor` fires on the bundled sample feed and its
run succeeds through the daemon's run queue; SIGTERM stops every process within a bound.

scripts/serve itself is a two-line wrapper (env.sh, then exec of deploy/serve.py); the test runs deploy/serve.py
with this interpreter so that a changed pyproject.toml does not start an install inside the test.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text
from websockets.sync.client import connect as ws_connect

from cariflex_pipeline_tests.conftest import POSTGRES_ADMIN_URL, require_service
from cariflex_pipeline_tests.deploy.helpers import DEPLOY, ROOT

SENSOR = "openadr_vtn_sensor"
RUN_DEADLINE_S = 100  # from the start of serve to a successful sensor run
STOP_BOUND_S = 45  # SIGTERM to every process gone: the sum of the services' stop_grace_period is 60 s
RUNS = """
query ($sensor: String!) {
  runsOrError(filter: {tags: [{key: "dagster/sensor_name", value: $sensor}]}) {
    __typename
    ... on Runs { results { runId status jobName tags { key value } } }
    ... on PythonError { message }
  }
}
"""
LOCATION = """
{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _default_signals() -> None:
    # A shell started in the background may hand down ignored SIGTERM/SIGINT; the test must be able to stop it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _session_members(session: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[3]) == session:  # state, ppid, pgrp, session
            members.append(int(entry.name))
    return members


@pytest.fixture
def scratch_databases() -> Iterator[tuple[str, str]]:
    """Two fresh databases on the real PostgreSQL: the Dagster instance's and the store's; dropped afterwards."""
    require_service("PostgreSQL", POSTGRES_ADMIN_URL, 5432)
    suffix = uuid.uuid4().hex[:10]
    names = (f"cariflex_topology_dagster_{suffix}", f"cariflex_topology_store_{suffix}")
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield names
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_sensor_run_succeeds_through_the_daemon_and_sigterm_stops_everything(
    scratch_databases: tuple[str, str], tmp_path: Path
) -> None:
    instance_db, store_db = scratch_databases
    admin = make_url(POSTGRES_ADMIN_URL)
    code_port, web_port, s2_port = _free_port(), _free_port(), _free_port()
    # The embedded defaults (sample feed, outbox dispatch), whatever this shell has configured.
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("CARIFLEX_") or key.startswith("CARIFLEX_TEST_")}
    env.pop("DAGSTER_HOME", None)
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "DAGSTER_PG_HOST": admin.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(admin.port or 5432),
        "DAGSTER_PG_USER": admin.username or "postgres",
        "DAGSTER_PG_PASSWORD": admin.password or "",
        "DAGSTER_PG_DB": instance_db,
        "CARIFLEX_DATABASE_URL": admin.set(database=store_db).render_as_string(hide_password=False),
        "CARIFLEX_CODE_SERVER_PORT": str(code_port),
        "CARIFLEX_WEBSERVER_PORT": str(web_port),
        "CARIFLEX_S2_PORT": str(s2_port),
        "CARIFLEX_SERVE_HOME": str(tmp_path / "dagster_home"),
    })
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(DEPLOY / "serve.py")], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_default_signals, start_new_session=True,
        )

    def output() -> str:
        return log_path.read_text(errors="replace")[-6000:]

    base = f"http://127.0.0.1:{web_port}"
    try:
        deadline = time.monotonic() + RUN_DEADLINE_S
        succeeded = None
        while succeeded is None:
            assert process.poll() is None, f"serve exited with {process.returncode}:\n{output()}"
            assert time.monotonic() < deadline, f"no successful {SENSOR} run in {RUN_DEADLINE_S} s:\n{output()}"
            time.sleep(2)
            try:
                response = httpx.post(f"{base}/graphql", json={"query": RUNS, "variables": {"sensor": SENSOR}},
                                      timeout=10)
            except httpx.TransportError:
                continue  # the webserver is not up yet
            runs = response.json()["data"]["runsOrError"]
            assert runs["__typename"] == "Runs", runs
            for run in runs["results"]:
                assert run["status"] not in ("FAILURE", "CANCELED"), f"run {run['runId']} {run['status']}:\n" \
                    f"{output()}"
                if run["status"] == "SUCCESS":
                    succeeded = run
        assert succeeded["jobName"] == "openadr_ingest"
        tags = {tag["key"]: tag["value"] for tag in succeeded["tags"]}
        assert tags["dagster/sensor_name"] == SENSOR and tags["dagster/partition"]
        # The webserver serves the location from the separate code server, not a subprocess of its own.
        [entry] = httpx.post(f"{base}/graphql", json={"query": LOCATION}, timeout=30).json()[
            "data"]["workspaceOrError"]["locationEntries"]
        assert entry["name"] == "cariflex_pipeline" and entry["loadStatus"] == "LOADED"
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        assert f"Dagster UI: {base}" in log_path.read_text(errors="replace")
        # The S2 CEM of the same topology answers a resource manager's Handshake.
        handshake = {"message_type": "Handshake", "message_id": str(uuid.uuid4()), "role": "RM"}
        with ws_connect(f"ws://127.0.0.1:{s2_port}/", open_timeout=30) as s2:
            s2.send(json.dumps(handshake))
            assert json.loads(s2.recv(timeout=30)) == {"message_type": "ReceptionStatus", "status": "OK",
                                                        "subject_message_id": handshake["message_id"]}

        members = _session_members(process.pid)
        assert len(members) >= 4, members  # serve, code server (and its proxied server), daemon, webserver
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=STOP_BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve still running {STOP_BOUND_S} s after SIGTERM:\n{output()}")
        stopped_after = time.monotonic() - stopping
        left = _session_members(process.pid)
        assert left == [], f"still running after serve stopped: {left}"
        assert returncode == 0, output()
        print(f"topology stopped {stopped_after:.1f} s after SIGTERM")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pid in _session_members(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
