"""CARIFLEX_EXECUTOR=celery: per-site steps, and the code location's main job, on two Dagster celery workers
through the real RabbitMQ.

Two workers are started the documented way (`deploy/celery/start-worker`, one step at a time each) on a vhost of
this test's own, with the instance and the store on scratch PostgreSQL databases (the run's process and the workers
are separate processes: they must share the run and event storage). Two site steps must both succeed, each on its
own worker (the workers' names in the celery executor's engine events, and two different processes); every step of
`cariflex_main` must succeed on the workers. Neither leaves the broker's URL in an event, a log line or a file.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import dagster as dg
import pytest
from celery import Celery

from cariflex_pipeline.definitions import MAIN_JOB_NAME
from cariflex_pipeline.site_model import load_site
from cariflex_pipeline_tests.conftest import (
    AMQP_URL,
    require_service,
    require_tool,
    scratch_postgres_database,
)
from cariflex_pipeline_tests.dagster_shell.celery_sites import JOB_NAME, SITES, site_job

pytestmark = [
    pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow,
    # dagster-celery's executor re-creates its task on the app for every step it submits; celery 5.7 warns each time.
    pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning"),
]

ROOT = Path(__file__).parents[2]
START_WORKER = ROOT / "deploy" / "celery" / "start-worker"
WORKERS = ("site-worker-a", "site-worker-b")
STARTUP_TIMEOUT_S = 60
RUN_TIMEOUT_S = 180  # a bound for a hung run, far above the 15-20 s measured


@contextmanager
def own_vhost() -> Iterator[str]:
    """The broker URL of a new RabbitMQ vhost for this test only (guest may use it), deleted afterwards."""
    require_service("RabbitMQ", AMQP_URL, 5672)
    rabbitmqctl = require_tool("rabbitmqctl", "to make the test's own vhost")
    vhost = f"cariflex_celery_test_{uuid.uuid4().hex[:10]}"

    def ctl(*args: str) -> None:
        subprocess.run([rabbitmqctl, "-q", *args], check=True, capture_output=True, timeout=60)

    ctl("add_vhost", vhost)
    try:
        ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield urlunsplit(urlsplit(AMQP_URL)._replace(path="/" + quote(vhost, safe="")))
    finally:
        ctl("delete_vhost", vhost)


def _instance_env(database_url: str, home: Path) -> dict[str, str]:
    """DAGSTER_HOME with the production instance file (PostgreSQL), its DAGSTER_PG_* set to the scratch database."""
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "production" / "dagster.yaml").read_text())
    parts = urlsplit(database_url)
    return {"DAGSTER_HOME": str(home), "DAGSTER_PG_HOST": parts.hostname or "127.0.0.1",
            "DAGSTER_PG_PORT": str(parts.port or 5432), "DAGSTER_PG_USER": parts.username or "postgres",
            "DAGSTER_PG_PASSWORD": parts.password or "", "DAGSTER_PG_DB": parts.path.lstrip("/")}


def _default_signals() -> None:
    # A process started from a background shell may inherit SIGTERM/SIGINT ignored; the workers must stop on them.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def workers(names: tuple[str, ...], env: dict[str, str], logs: list[Path]) -> Iterator[list[subprocess.Popen]]:
    """One worker per name, the documented command, each in a process group of its own; all stopped afterwards,
    whatever happened (SIGTERM to every group at once, SIGKILL to what is left after 15 s)."""
    started: list[subprocess.Popen] = []
    try:
        for name, log in zip(names, logs, strict=True):
            with log.open("wb") as out:
                started.append(subprocess.Popen([str(START_WORKER), "-n", name, "-l", "INFO", "--", "--concurrency=1"],
                                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                                preexec_fn=_default_signals, start_new_session=True))
        yield started
    finally:
        _stop_groups(started)


def _group_alive(process: subprocess.Popen) -> bool:
    process.poll()  # reap the leader (dagster-celery): its zombie would keep the group "alive"
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop_groups(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if _group_alive(process):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while any(_group_alive(process) for process in processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    for process in processes:
        if _group_alive(process):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


def _wait_until_listening(broker: str, names: set[str], workers: list[subprocess.Popen], logs: list[Path]) -> None:
    """Until every worker answers a ping over the broker: a step sent earlier could go to the first one up."""
    app = Celery(broker=broker)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    answered: set[str] = set()
    try:
        while not names <= answered:
            for process, log in zip(workers, logs, strict=True):
                if process.poll() is not None:
                    pytest.fail(f"worker exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"workers {sorted(names - answered)} did not answer within {STARTUP_TIMEOUT_S} s")
            answered |= {node.split("@", 1)[0] for reply in app.control.ping(timeout=1.0) for node in reply}
    finally:
        app.close()


def _celery_workers_by_step(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Step key -> the celery worker that ran it, from the engine event each worker records as it takes a step."""
    found = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        metadata = entry.dagster_event.engine_event_data.metadata
        if "Celery worker" in metadata:
            found[entry.step_key] = metadata["Celery worker"].value
    return found


@dataclass(frozen=True)
class Fleet:
    broker: str
    settings: dict[str, str]  # the environment the workers have, and the run's process needs
    logs: list[Path]

    def worker_output(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in self.logs)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Two workers listening on the test's own vhost, with the instance and the store on scratch PostgreSQL."""
    folder = tmp_path_factory.mktemp("celery")
    with ExitStack() as stack:
        broker = stack.enter_context(own_vhost())
        instance_url = stack.enter_context(scratch_postgres_database("cariflex_celery_instance"))
        store_url = stack.enter_context(scratch_postgres_database("cariflex_celery_store"))
        settings = {**_instance_env(instance_url, folder / "dagster_home"), "CARIFLEX_EXECUTOR": "celery",
                    "CARIFLEX_CELERY_BROKER": broker, "CARIFLEX_DATABASE_URL": store_url}
        # The workers run the venv's dagster-celery and celery, and import the test's job module from the checkout.
        env = {**os.environ, **settings, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "PYTHONPATH": str(ROOT)}
        logs = [folder / f"{name}.log" for name in WORKERS]
        processes = stack.enter_context(workers(WORKERS, env, logs))
        _wait_until_listening(broker, set(WORKERS), processes, logs)
        yield Fleet(broker, settings, logs)


@contextmanager
def instance_of(fleet: Fleet) -> Iterator[dg.DagsterInstance]:
    """The fleet's instance, with the fleet's settings in this process too: the run executes here."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in fleet.settings.items():
            patch.setenv(key, value)
        with dg.DagsterInstance.get() as instance:
            yield instance


def _assert_ran_on_celery(fleet: Fleet, instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """The run succeeded, every step it started ran on a worker of the fleet and succeeded; step key -> worker."""
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS, (
        f"run {run_id}: {run and run.status}; workers said:\n{fleet.worker_output()[-4000:]}")
    events = [entry.dagster_event for entry in instance.all_logs(run_id) if entry.dagster_event is not None]
    started = {event.step_key for event in events if event.is_step_start}
    assert started and {event.step_key for event in events if event.is_step_success} == started
    by_step = _celery_workers_by_step(instance, run_id)
    assert by_step.keys() == started, by_step
    assert {name.split("@", 1)[0] for name in by_step.values()} <= set(WORKERS), by_step
    # The broker's URL (with its password) is in no event of the run, no line the workers wrote, and no file under
    # DAGSTER_HOME (where dagster-celery's CLI writes the worker settings it resolved).
    assert not [entry for entry in instance.all_logs(run_id) if fleet.broker in str(entry)]
    assert fleet.broker not in fleet.worker_output()
    home = Path(fleet.settings["DAGSTER_HOME"])
    assert not [path for path in home.rglob("*") if path.is_file() and fleet.broker.encode() in path.read_bytes()]
    return by_step


def test_per_site_steps_run_at_once_on_two_workers(fleet: Fleet, tmp_path: Path) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    config = {"ops": {f"plan_{site}": {"config": {"barrier_dir": str(barrier)}} for site in SITES}}
    with instance_of(fleet) as instance, dg.execute_job(dg.reconstructable(site_job), instance=instance,
                                                       run_config=config, raise_on_error=False) as result:
        assert result.job_def.name == JOB_NAME
        by_step = _assert_ran_on_celery(fleet, instance, result.run_id)
        assert by_step.keys() == {f"plan_{site}" for site in SITES}
        assert {name.split("@", 1)[0] for name in by_step.values()} == set(WORKERS), by_step
        outputs = [event.step_output_data for event in result.all_events if event.is_successful_output]
        assert len({output.metadata["pid"].value for output in outputs}) == len(SITES)
        assert len({output.metadata["cost_eur"].value for output in outputs}) == 1  # the same problem, the same plan


def test_the_code_locations_main_job_runs_on_the_workers(fleet: Fleet) -> None:
    """The project's own job, as an operator starts it: the code location loaded with CARIFLEX_EXECUTOR=celery in a
    process of its own (this one imported the definitions already, on the default executor)."""
    day = datetime.now(load_site().tz).date().isoformat()
    marker = uuid.uuid4().hex
    tags = json.dumps({"dagster/partition": day, "cariflex/test_run": marker})
    command = [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m", "cariflex_pipeline.definitions",
               "-j", MAIN_JOB_NAME, "--tags", tags]
    finished = subprocess.run(command, cwd=ROOT, env={**os.environ, **fleet.settings}, capture_output=True,
                              text=True, timeout=RUN_TIMEOUT_S)
    with instance_of(fleet) as instance:
        runs = instance.get_runs(dg.RunsFilter(tags={"cariflex/test_run": marker}))
        assert len(runs) == 1, f"exit {finished.returncode}:\n{finished.stderr[-4000:]}"
        assert fleet.broker not in finished.stdout + finished.stderr
        by_step = _assert_ran_on_celery(fleet, instance, runs[0].run_id)
        assert {"ev_charging_schedule", "ocpp_dispatch"} <= by_step.keys()
