"""deploy/compose.yaml is the one definition of the services: scripts/serve, the image and .env.example follow it.

Docker cannot run here, so these checks stand between the compose file and drift: the commands scripts/serve runs
are the compose commands, the image's default command is the compose code server, the workspace points at the
variables every Dagster service gets, and .env.example names every variable the code and the stack read.
"""

import json
import re
import tomllib

import pytest
import yaml

from cariflex_pipeline_tests.deploy.helpers import DEPLOY, ROOT, load_serve

serve = load_serve()
COMPOSE = serve.load_compose()
SETTINGS = COMPOSE[serve.SERVE_KEY]
DAGSTER_SERVICES = [*SETTINGS["services"], *SETTINGS["optional"]]
# Strings shaped like a variable that are not read from the environment.
NOT_ENV = {"CARIFLEX_SAMPLE_VTN"}  # the sample feed's VTN id


def env_example() -> tuple[dict[str, str], set[str]]:
    """(the variables .env.example sets, every variable it names, commented out or not)."""
    text = (DEPLOY / ".env.example").read_text()
    named = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    return serve.read_env_file(DEPLOY / ".env.example"), named


def dockerfile() -> list[str]:
    return (DEPLOY / "Dockerfile").read_text().splitlines()


def compose_plan():
    """What `docker compose` runs after `cp .env.example .env` (no serve defaults, compose's own ${..:-..})."""
    values, _ = env_example()
    settings = {**SETTINGS, "defaults": {}}
    return serve.build_plan({**COMPOSE, serve.SERVE_KEY: settings}, {}, SETTINGS["optional"], values)


def serve_plan(environ=None):
    return serve.build_plan(COMPOSE, environ or {}, SETTINGS["optional"])


def test_interpolation_follows_compose() -> None:
    variables = {"SET": "x", "EMPTY": ""}
    assert serve.interpolate("${SET}-${UNSET:-d}-${EMPTY:-d}-${EMPTY-d}-$$HOME-$SET", variables) == "x-d-d--$HOME-x"
    assert serve.interpolate("${SET:+alt}${UNSET+alt}", variables) == "alt"
    assert serve.interpolate("${EMPTY?must be set}", variables) == ""
    with pytest.raises(serve.ServeError, match="must be set"):
        serve.interpolate("${UNSET?must be set}", variables)
    with pytest.raises(serve.ServeError):
        serve.interpolate("${EMPTY:?must not be empty}", variables)
    assert serve.parse_duration("1m30s") == 90 and serve.parse_duration("500ms") == 0.5


def test_serve_runs_the_dagster_services_of_the_compose_file() -> None:
    for name in DAGSTER_SERVICES:
        spec = COMPOSE["services"][name]
        assert spec["image"].startswith("${CARIFLEX_IMAGE"), name
        assert spec["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert isinstance(spec["command"], list), f"{name}: exec form, so the signal reaches the process"
        assert "stop_grace_period" in spec, name
    for name in SETTINGS["services"]:
        assert "healthcheck" in COMPOSE["services"][name], name
    for name in SETTINGS["external"]:
        assert name in COMPOSE["services"] and "command" not in COMPOSE["services"][name]
    # Without Docker, only the defaults differ; the commands and environment names are the same.
    local, docker = serve_plan(), compose_plan()
    assert [s.name for s in local.services] == [s.name for s in docker.services] == DAGSTER_SERVICES
    substituted = {value for key, value in SETTINGS["defaults"].items() if value}
    for mine, theirs in zip(local.services, docker.services, strict=True):
        assert mine.environment.keys() <= theirs.environment.keys(), mine.name
        assert len(mine.command) == len(theirs.command), mine.name
        for ours, compose in zip(mine.command, theirs.command, strict=True):
            assert ours == compose or ours in substituted, (mine.name, ours, compose)
        assert mine.stop_grace_period == theirs.stop_grace_period
        assert mine.depends_on == theirs.depends_on


def test_the_topology_the_services_form() -> None:
    plan = serve_plan({"CARIFLEX_CODE_SERVER_PORT": "4999", "CARIFLEX_WEBSERVER_PORT": "3999"})
    services = {service.name: service for service in plan.services}
    location = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    code = services["code-server"].command
    assert code[:5] == ("dagster", "code-server", "start", "-m", location["module_name"])
    assert code[code.index("--location-name") + 1] == location["code_location_name"]
    assert code[code.index("-p") + 1] == "4999"
    web = services["webserver"].command
    assert web[0] == "dagster-webserver" and web[web.index("-p") + 1] == "3999"
    assert services["daemon"].command[:2] == ("dagster-daemon", "run")
    assert services["webserver"].depends_on == services["daemon"].depends_on == ("code-server",)
    assert plan.url == "http://127.0.0.1:3999"

    workspace_files = {s.command[s.command.index("-w") + 1] for s in (services["webserver"], services["daemon"])}
    assert workspace_files == {"deploy/production/workspace.yaml"}
    [entry] = yaml.safe_load((ROOT / "deploy/production/workspace.yaml").read_text())["load_from"]
    grpc = entry["grpc_server"]
    assert grpc["location_name"] == location["code_location_name"]
    instance = yaml.safe_load((DEPLOY / "production" / "dagster.yaml").read_text())
    instance_env = set(re.findall(r"env: (\w+)", (DEPLOY / "production" / "dagster.yaml").read_text()))
    assert instance["storage"]["postgres"] and instance_env
    for service in plan.services:
        assert {grpc["host"]["env"], grpc["port"]["env"]} | instance_env <= service.environment.keys(), service.name
        assert service.environment[grpc["port"]["env"]] == "4999"
    assert services["code-server"].environment["DAGSTER_GRPC_SHUTDOWN_GRACE_PERIOD"]


def test_the_image_runs_the_compose_code_server_by_default() -> None:
    lines = dockerfile()
    [cmd] = [line for line in lines if line.startswith("CMD ")]
    code_server = next(s for s in compose_plan().services if s.name == "code-server")
    assert tuple(json.loads(cmd[len("CMD "):])) == code_server.command
    assert "4000" in code_server.command
    workdir = next(line.split()[1] for line in lines if line.startswith("WORKDIR "))
    copies = [line.split()[1:] for line in lines if line.startswith("COPY ")]
    # The instance file of the image is the one scripts/serve copies; the workspace sits where -w finds it.
    assert ["deploy/production/dagster.yaml", "${DAGSTER_HOME}/dagster.yaml"] in copies
    assert serve.INSTANCE_FILE == DEPLOY / "production" / "dagster.yaml"
    assert ["deploy/production/workspace.yaml", "deploy/production/workspace.yaml"] in copies
    assert workdir == "/opt/dagster/app"
    assert any(line.startswith("ENV ") or "DAGSTER_HOME=" in line for line in lines)
    assert "pip install ." in "\n".join(lines)


def test_scripts_serve_execs_the_supervisor() -> None:
    text = (ROOT / "scripts" / "serve").read_text()
    assert "exec python deploy/serve.py" in text


def test_env_example_names_every_variable() -> None:
    values, named = env_example()
    compose_text = (DEPLOY / "compose.yaml").read_text()
    used_by_compose = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", compose_text))
    assert used_by_compose - named == set(), "compose.yaml uses variables .env.example does not name"
    read_by_code = set()
    for path in (ROOT / "cariflex_pipeline").rglob("*.py"):
        read_by_code |= set(re.findall(r"[\"'](CARIFLEX_[A-Z0-9_]+)[\"']", path.read_text()))
    read_by_code -= NOT_ENV
    assert read_by_code - named == set(), "the code reads variables .env.example does not name"
    instance_env = set(re.findall(r"env: (\w+)", (DEPLOY / "production" / "dagster.yaml").read_text()))
    assert instance_env <= named
    assert set(SETTINGS["defaults"]) <= used_by_compose
    # Every variable compose requires (${VAR?..}) is set by the example, and secrets are placeholders.
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", compose_text))
    assert required <= values.keys()
    for key, value in values.items():
        if re.search(r"PASSWORD|SECRET|TOKEN", key):
            assert re.fullmatch(r"<[a-z0-9-]+>", value), f"{key} in .env.example must be a <placeholder>"
    assert "<postgres-password>" in values["CARIFLEX_DATABASE_URL"]


def test_serve_reads_the_env_file_like_compose(tmp_path) -> None:
    env_file = tmp_path / "local.env"
    env_file.write_text("# comment\nDAGSTER_PG_DB=elsewhere\nexport CARIFLEX_VTN_URL='http://vtn:8080'\n")
    values = serve.read_env_file(env_file)
    plan = serve.build_plan(COMPOSE, {"DAGSTER_PG_HOST": "db.local"}, (), values)
    code_server = plan.services[0]
    assert code_server.environment["DAGSTER_PG_DB"] == "elsewhere"
    assert code_server.environment["DAGSTER_PG_HOST"] == "db.local"  # the caller's environment wins
    assert code_server.environment["CARIFLEX_VTN_URL"] == "http://vtn:8080"  # env_file: passed as is
    with pytest.raises(serve.ServeError, match="--also"):
        serve.build_plan(COMPOSE, {}, ["postgres"])
