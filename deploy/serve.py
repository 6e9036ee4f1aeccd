"""The Cariflex stack without Docker: the services of deploy/compose.yaml, as local processes (`scripts/serve`).

compose.yaml is the one definition. This reads it and, for each service listed under `x-cariflex-serve.services`
(plus `--also` ones from `x-cariflex-serve.optional`), runs its `command` with its `environment`, both
interpolated as Compose does (`${VAR}`, `${VAR:-default}`, `${VAR?error}`, `$$`), from the caller's environment
over `--env-file` over `x-cariflex-serve.defaults`. It follows `depends_on: {condition: service_healthy}` by
running the dependency's own `healthcheck` command until it passes, and stops like `docker compose stop`:
SIGTERM to each service, dependents first, then SIGKILL to what is left after its `stop_grace_period`.

The Dagster instance is deploy/production/dagster.yaml (PostgreSQL), copied into `$CARIFLEX_SERVE_HOME`
(default .dagster_serve/ in the repository), which becomes DAGSTER_HOME of every service. PostgreSQL and
RabbitMQ are the machine's own (`x-cariflex-serve.external`): they must run already.

On SIGTERM or SIGINT it stops everything and exits 0; when a service dies by itself, it stops the others and
exits 1. Child processes get default signal dispositions (Dagster maps SIGTERM to SIGINT's handler, so a server
that inherited an ignored SIGINT, as a background job of a shell does, would ignore SIGTERM too).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
COMPOSE_FILE = DEPLOY / "compose.yaml"
INSTANCE_FILE = DEPLOY / "production" / "dagster.yaml"
SERVE_KEY = "x-cariflex-serve"

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class ServeError(Exception):
    """A configuration or start-up problem, reported without a traceback."""


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """`value` with Compose's variable syntax substituted from `variables` (no nesting inside defaults)."""

    def substitute(match: re.Match) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("named")
        current = variables.get(name)
        op, arg = match.group("op"), match.group("arg") or ""
        missing = current is None or (op is not None and op.startswith(":") and current == "")
        if op in ("-", ":-"):
            return arg if missing else current
        if op in ("?", ":?"):
            if missing:
                raise ServeError(f"variable {name}: {arg or 'required'}")
            return current
        if op in ("+", ":+"):
            return "" if missing else arg
        return current or ""

    return _VARIABLE.sub(substitute, value)


def parse_duration(value: str | int | float | None, default: float = 10.0) -> float:
    """A Compose duration (`1m30s`, `20s`, `500ms`) in seconds."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    if not parts or "".join(number + unit for number, unit in parts) != value.strip():
        raise ServeError(f"not a duration: {value!r}")
    return sum(float(number) * units[unit] for number, unit in parts)


@dataclass(frozen=True)
class Service:
    """One service of compose.yaml as scripts/serve runs it (after interpolation)."""

    name: str
    command: tuple[str, ...]
    environment: Mapping[str, str]
    healthcheck: tuple[str, ...] | None = None
    depends_on: tuple[str, ...] = ()
    stop_grace_period: float = 10.0


@dataclass(frozen=True)
class Plan:
    services: tuple[Service, ...]
    url: str
    variables: Mapping[str, str] = field(repr=False)


def load_compose(path: Path = COMPOSE_FILE) -> dict:
    return yaml.safe_load(path.read_text())


def read_env_file(path: Path) -> dict[str, str]:
    """A Compose-style .env file: KEY=VALUE lines, # comments, optional quotes."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise ServeError(f"{path}:{number}: not KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _healthcheck(spec: Mapping | None, variables: Mapping[str, str]) -> tuple[str, ...] | None:
    if not spec or spec.get("disable"):
        return None
    test = spec["test"]
    if isinstance(test, str):
        return ("sh", "-c", interpolate(test, variables))
    kind, *argv = test
    if kind == "NONE":
        return None
    if kind == "CMD-SHELL":
        return ("sh", "-c", interpolate(" ".join(argv), variables))
    if kind != "CMD":
        raise ServeError(f"healthcheck test must start with CMD or CMD-SHELL, not {kind!r}")
    return tuple(interpolate(str(arg), variables) for arg in argv)


def _environment(spec: Mapping | Sequence | None, variables: Mapping[str, str]) -> dict[str, str]:
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        items = spec.items()
    else:
        items = [entry.split("=", 1) if "=" in entry else (entry, variables.get(entry, "")) for entry in spec]
    return {str(key): interpolate("" if value is None else str(value), variables) for key, value in items}


def serve_names(compose: Mapping, also: Sequence[str] = ()) -> list[str]:
    settings = compose[SERVE_KEY]
    unknown = [name for name in also if name not in settings.get("optional", [])]
    if unknown:
        raise ServeError(f"--also takes {settings.get('optional', [])}, not {unknown}")
    return [*settings["services"], *also]


def build_plan(compose: Mapping, environ: Mapping[str, str], also: Sequence[str] = (),
               env_file: Mapping[str, str] | None = None) -> Plan:
    """What scripts/serve runs: the selected services of `compose`, interpolated from `environ` over `env_file`
    over the serve defaults. Each service's environment is that env file plus its own `environment`."""
    settings = compose[SERVE_KEY]
    defaults = {key: "" if value is None else str(value) for key, value in settings.get("defaults", {}).items()}
    variables = {**defaults, **(env_file or {}), **environ}
    names = serve_names(compose, also)
    services = []
    for name in names:
        spec = compose["services"][name]
        if "command" not in spec:
            raise ServeError(f"service {name} has no command: scripts/serve cannot run it")
        command = spec["command"]
        if isinstance(command, str):
            raise ServeError(f"service {name}: write its command as a list (exec form)")
        depends = spec.get("depends_on") or {}
        depends_on = tuple(dep for dep in depends if dep in names)
        services.append(Service(
            name=name,
            command=tuple(interpolate(str(arg), variables) for arg in command),
            environment={**(env_file or {}), **_environment(spec.get("environment"), variables)},
            healthcheck=_healthcheck(spec.get("healthcheck"), variables),
            depends_on=depends_on,
            stop_grace_period=parse_duration(spec.get("stop_grace_period")),
        ))
    return Plan(tuple(services), interpolate(str(settings.get("url", "")), variables), variables)


# --- running it -------------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when serve itself dies (even by SIGKILL), so no service outlives it."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)


def _say(message: str) -> None:
    print(f"serve | {message}", file=sys.stderr, flush=True)


def _pump(name: str, stream, width: int) -> None:
    prefix = f"{name:<{width}} | "
    for line in iter(stream.readline, b""):
        sys.stdout.write(prefix + line.decode(errors="replace"))
        sys.stdout.flush()
    stream.close()


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def ensure_instance_database(variables: Mapping[str, str]) -> None:
    """PostgreSQL must be up; the instance's database is created when missing (as the compose service does)."""
    host, port = variables.get("DAGSTER_PG_HOST", "127.0.0.1"), int(variables.get("DAGSTER_PG_PORT") or 5432)
    if not _reachable(host, port):
        raise ServeError(f"PostgreSQL is not reachable at {host}:{port} (DAGSTER_PG_HOST/DAGSTER_PG_PORT)")
    import psycopg2  # the driver deploy/production/dagster.yaml uses
    import psycopg2.errors

    def connect(database: str):
        return psycopg2.connect(host=host, port=port, user=variables.get("DAGSTER_PG_USER"),
                                password=variables.get("DAGSTER_PG_PASSWORD") or None, dbname=database,
                                connect_timeout=5)

    name = variables.get("DAGSTER_PG_DB") or ""
    try:
        connect(name).close()
        return
    except psycopg2.OperationalError as error:
        if "does not exist" not in str(error):
            raise ServeError(f"PostgreSQL at {host}:{port}: {str(error).strip()}") from None
    admin = connect("postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    _say(f"created the instance database {name} on {host}:{port}")


def prepare_home(home: Path) -> None:
    """DAGSTER_HOME of every service: the production instance file (always refreshed from deploy/production)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_FILE, home / "dagster.yaml")


class Supervisor:
    def __init__(self, plan: Plan, home: Path, poll: float = 0.2) -> None:
        self.plan = plan
        self.home = home
        self.poll = poll
        self.stopping = threading.Event()
        self.processes: dict[str, subprocess.Popen] = {}
        self.pumps: list[threading.Thread] = []
        self.width = max(len(service.name) for service in plan.services)

    def _env(self, service: Service) -> dict[str, str]:
        return {**os.environ, **service.environment, "DAGSTER_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}

    def _start(self, service: Service) -> None:
        _say(f"starting {service.name}: {' '.join(service.command)}")
        process = subprocess.Popen(
            list(service.command), cwd=ROOT, env=self._env(service), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            # Its own process group: a terminal's Ctrl-C reaches serve only, which stops services in order.
            process_group=0,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.processes[service.name] = process
        pump = threading.Thread(target=_pump, args=(service.name, process.stdout, self.width), daemon=True)
        pump.start()
        self.pumps.append(pump)

    def _healthy(self, service: Service) -> bool:
        if service.healthcheck is None:
            return True
        try:
            result = subprocess.run(list(service.healthcheck), cwd=ROOT, env=self._env(service), timeout=30,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def _dead(self) -> str | None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                return name
        return None

    def _wait_healthy(self, service: Service, timeout: float = 180.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.stopping.is_set():
            if self._dead():
                return False
            if self._healthy(service):
                _say(f"{service.name} is healthy")
                return True
            if time.monotonic() > deadline:
                raise ServeError(f"{service.name} not healthy after {timeout:.0f} s")
            self.stopping.wait(1.0)
        return False

    def run(self) -> int:
        started: set[str] = set()
        healthy: set[str] = set()
        by_name = {service.name: service for service in self.plan.services}
        try:
            for service in self.plan.services:
                for dependency in service.depends_on:
                    if dependency not in healthy:
                        if not self._wait_healthy(by_name[dependency]):
                            return self._finish()
                        healthy.add(dependency)
                if self.stopping.is_set() or self._dead():
                    return self._finish()
                self._start(service)
                started.add(service.name)
            ui = next((s for s in self.plan.services if s.name == "webserver"), None)
            if ui is not None and not self._wait_healthy(ui):
                return self._finish()
            if ui is not None:
                _say(f"Dagster UI: {self.plan.url.replace('//0.0.0.0:', '//127.0.0.1:')}")
            _say("running; SIGTERM or Ctrl-C stops every service")
            while not self.stopping.is_set() and self._dead() is None:
                self.stopping.wait(self.poll)
            return self._finish()
        except ServeError as error:
            _say(f"error: {error}")
            self._finish()
            return 1

    def _finish(self) -> int:
        dead = self._dead()
        failed = dead is not None and not self.stopping.is_set()
        if failed:
            _say(f"{dead} exited with code {self.processes[dead].returncode}; stopping the others")
        self.stop()
        return 1 if failed else 0

    def stop(self) -> None:
        """Like `docker compose stop`: dependents first, each SIGTERM, then SIGKILL after its grace period."""
        started = time.monotonic()
        for service in reversed(self.plan.services):
            process = self.processes.get(service.name)
            if process is None or process.poll() is not None:
                continue
            # Services depending on nothing still running could go together; in order keeps the code server
            # free of client RPCs when it stops, so it stops at once.
            _say(f"stopping {service.name} (SIGTERM, up to {service.stop_grace_period:.0f} s)")
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=service.stop_grace_period)
            except subprocess.TimeoutExpired:
                _say(f"{service.name} still running after {service.stop_grace_period:.0f} s: SIGKILL")
            # Whatever it left behind in its process group (run workers, a proxied server) goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pump in self.pumps:
            pump.join(timeout=2)
        if self.processes:
            _say(f"stopped in {time.monotonic() - started:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-file", type=Path, help="a KEY=VALUE file, as deploy/.env for compose")
    parser.add_argument("--also", action="append", default=[], metavar="SERVICE",
                        help="an optional service too (x-cariflex-serve.optional in deploy/compose.yaml)")
    parser.add_argument("--print", action="store_true", help="print the commands and environment, run nothing")
    args = parser.parse_args(argv)
    try:
        env_file = read_env_file(args.env_file) if args.env_file else None
        plan = build_plan(load_compose(), os.environ, args.also, env_file)
    except ServeError as error:
        _say(f"error: {error}")
        return 2
    home = Path(os.environ.get("CARIFLEX_SERVE_HOME") or ROOT / ".dagster_serve").resolve()
    if args.print:
        for service in plan.services:
            shown = {key: ("***" if "PASSWORD" in key or "SECRET" in key or "TOKEN" in key else value)
                     for key, value in service.environment.items()}
            print(f"{service.name}: {' '.join(service.command)}\n  env: {shown}")
        print(f"DAGSTER_HOME={home}\nUI: {plan.url}")
        return 0

    supervisor = Supervisor(plan, home)

    def on_signal(signum: int, _frame) -> None:
        if not supervisor.stopping.is_set():
            _say(f"{signal.Signals(signum).name}: stopping")
        supervisor.stopping.set()

    # Python handlers, not SIG_IGN: an exec resets them to the default in every child.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # The instance settings as the services see them (their interpolated environment).
    instance = {**plan.variables, **plan.services[0].environment}
    try:
        ensure_instance_database(instance)
    except ServeError as error:
        _say(f"error: {error}")
        return 2
    prepare_home(home)
    _say(f"DAGSTER_HOME={home} (instance: deploy/production/dagster.yaml on "
         f"{instance.get('DAGSTER_PG_HOST')}:{instance.get('DAGSTER_PG_PORT')}/{instance.get('DAGSTER_PG_DB')})")
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
