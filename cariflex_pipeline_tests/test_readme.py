"""Every command the README shows parses as written: its program exists and accepts the options given.

The README once told operators `dagster job execute -w workspace.yaml …`, which fails with "No such option '-w'".
This test reads each shell block and each inline command of the README and hands it to the real argument parser of
its program (dagster's and dagster-webserver's click commands, our own argparse CLIs) without running it; a command
of a program the test does not know fails, so a new kind of command in the README gets a check here too.
Running them is what the fresh-clone tryout and the Dagster-level tests do.
"""

import argparse
import importlib
import re
import shlex
import subprocess
import warnings
from pathlib import Path

import click
import pytest
from dagster._cli import cli as dagster_cli
from dagster._daemon.cli import cli as dagster_daemon_cli
from dagster_webserver.cli import dagster_webserver

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
INLINE_COMMAND = re.compile(
    r"`((?:[A-Z_]+=\S+ )*(?:(?:dagster|dagster-webserver|dagster-daemon|python) |\./scripts/)[^`]*)`")
SHELL_BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)
CLICK_PROGRAMS: dict[str, click.Command] = {
    "dagster": dagster_cli,
    "dagster-webserver": dagster_webserver,
    "dagster-daemon": dagster_daemon_cli,
}
# `python -m MODULE` of ours: the module and the name of its entry point, called as main(argv) or main(["prog", *argv]).
ARGPARSE_MODULES = {
    "cariflex_pipeline.openadr": False,
    "cariflex_pipeline.scheduling": False,
    "cariflex_pipeline.store": True,
    "cariflex_pipeline.grafana": False,
    "cariflex_pipeline.s2": False,
}
NO_ARGUMENT_MODULES = {"cariflex_pipeline", "cariflex_pipeline.dispatch.callbacks"}


def readme_commands(text: str) -> list[str]:
    """Commands as a shell would see them: continuation lines joined, comments dropped, one entry per command."""
    commands = []
    for block in SHELL_BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    for inline in INLINE_COMMAND.findall(text):
        commands.append(shlex.join(shlex.split(" ".join(inline.split()))))
    return commands


class _Parsed(Exception):
    """Raised in place of running a CLI once its arguments have parsed."""


def _parse_with_argparse(module: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, argv: list[str] | None = None, namespace: object = None):
        original(self, argv, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    main = importlib.import_module(f"{module}.__main__").main
    with pytest.raises(_Parsed):
        main([module, *args] if ARGPARSE_MODULES[module] else args)


def _parse_with_click(command: click.Command, name: str, args: list[str]) -> None:
    """Walk the groups down to the leaf command, parsing each level's options as click would."""
    with command.make_context(name, list(args), resilient_parsing=False) as context:
        if isinstance(command, click.Group):
            with warnings.catch_warnings():  # click 8.2+ deprecates protected_args; 8.1 has no other way
                warnings.simplefilter("ignore", DeprecationWarning)
                sub_name, *rest = [*context.protected_args, *context.args]
            sub = command.get_command(context, sub_name)
            assert sub is not None, f"`{name}` has no subcommand {sub_name!r}"
            _parse_with_click(sub, f"{name} {sub_name}", rest)


def check_command(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    words = shlex.split(command)
    while words and ENV_ASSIGNMENT.match(words[0]):
        words.pop(0)
    program, *args = words
    if program in CLICK_PROGRAMS:
        _parse_with_click(CLICK_PROGRAMS[program], program, args)
    elif program == "source" or program.startswith("./scripts/"):
        path = ROOT / (args[0] if program == "source" else program)
        assert path.is_file(), f"{path.relative_to(ROOT)} does not exist"
    elif program == "python" and args[:1] == ["-m"]:
        module, *module_args = args[1:]
        if module in ARGPARSE_MODULES:
            _parse_with_argparse(module, module_args, monkeypatch)
        else:
            assert module in NO_ARGUMENT_MODULES, f"unknown module {module!r}: teach this test how to check it"
            assert not module_args, f"{module} takes no arguments, the README gives {module_args}"
            importlib.import_module(f"{module}.__main__" if module == "cariflex_pipeline" else module)
    elif program == "python":
        assert (ROOT / args[0]).is_file(), f"{args[0]} does not exist"
    else:
        pytest.fail(f"README command of an unknown program {program!r}: {command}")


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_readme_shows_the_two_commands_and_the_cli_commands() -> None:
    # The extraction itself: if it found nothing, every check below would pass vacuously.
    assert "./scripts/demo" in COMMANDS and "./scripts/test" in COMMANDS
    assert any(command.startswith("dagster asset materialize") and "--partition-range" in command
               for command in COMMANDS)
    assert any(command.startswith("python -m cariflex_pipeline.store restore") for command in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=COMMANDS)
def test_readme_command_parses_as_written(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    check_command(command, monkeypatch)


@pytest.mark.parametrize(
    ("command", "complaint"),
    [
        ("dagster job execute -w workspace.yaml -j cariflex_main", "-w"),
        ("dagster asset materialise -m cariflex_pipeline.definitions", "materialise"),
        ("python -m cariflex_pipeline.store restore", "required"),
        ("python -m cariflex_pipeline.scheduling --solver gurobi p.json", "gurobi"),
        ("./scripts/deploy", "does not exist"),
        ("make test", "unknown program"),
    ],
)
def test_a_broken_command_is_caught(command: str, complaint: str, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises((click.UsageError, SystemExit, AssertionError, pytest.fail.Exception)) as caught:
        check_command(command, monkeypatch)
    assert complaint in str(caught.value) + capsys.readouterr().err


def test_sourcing_env_sh_leaves_the_users_shell_as_it_was(tmp_path: Path) -> None:
    # An interactive shell without -e/-u, elsewhere than the project: after `source scripts/env.sh` it must keep its
    # options and folder, survive a failing command, and find the project's tools.
    script = (f"cd {shlex.quote(str(tmp_path))}; before=$-; source {shlex.quote(str(ROOT / 'scripts/env.sh'))}; "
              'echo "options:$before:$-"; echo "folder:$PWD"; false; echo "alive"; command -v dagster')
    result = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True, check=False)
    lines = result.stdout.splitlines()
    [options] = [line for line in lines if line.startswith("options:")]
    _, before, after = options.split(":")
    assert after == before and "e" not in after and "u" not in after
    assert f"folder:{tmp_path}" in lines and "alive" in lines
    assert lines[-1] == str(ROOT / ".venv/bin/dagster")
