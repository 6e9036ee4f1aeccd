"""Which executor runs the steps of the code location's jobs: a setting, not a code change.

`CARIFLEX_EXECUTOR` unset or `in_process`: every step of a run in the run's own process, as the latency-critical
chains want on one machine. `celery`: each step is a task on the broker at `CARIFLEX_CELERY_BROKER`, run by
whichever Dagster celery worker takes it (`deploy/celery/`), so per-site work spreads over machines.

The broker URL carries the broker's password: the executor is configured with an environment *reference*, resolved
by Dagster in the process that executes the run, so the value is held by no definition and no run config.
"""

import os
from collections.abc import Mapping

import dagster as dg

EXECUTOR_ENV = "CARIFLEX_EXECUTOR"
CELERY_BROKER_ENV = "CARIFLEX_CELERY_BROKER"
CELERY_BACKEND_ENV = "CARIFLEX_CELERY_BACKEND"
IN_PROCESS = "in_process"
CELERY = "celery"


class ExecutorSettingError(ValueError):
    """CARIFLEX_EXECUTOR or its companions are set to something the code location cannot run with."""


def job_executor(environ: Mapping[str, str] = os.environ) -> dg.ExecutorDefinition:
    """The executor every job of the code location runs with, from `CARIFLEX_EXECUTOR` (default: in-process)."""
    choice = environ.get(EXECUTOR_ENV, "").strip() or IN_PROCESS
    if choice == IN_PROCESS:
        return dg.in_process_executor
    if choice != CELERY:
        raise ExecutorSettingError(f"{EXECUTOR_ENV}={choice!r}: expected {IN_PROCESS!r} or {CELERY!r}")
    # Checked when the code location loads, so a missing broker is a load error naming the variable instead of
    # every run failing at its first step.
    if not environ.get(CELERY_BROKER_ENV, "").strip():
        raise ExecutorSettingError(f"{EXECUTOR_ENV}={CELERY} needs {CELERY_BROKER_ENV}: the broker's amqp:// URL")
    # Imported only when chosen: the default code location does not pay celery's import time.
    from dagster_celery import celery_executor

    config: dict[str, dict[str, str]] = {"broker": {"env": CELERY_BROKER_ENV}}
    if environ.get(CELERY_BACKEND_ENV, "").strip():
        config["backend"] = {"env": CELERY_BACKEND_ENV}  # else dagster-celery's rpc:// (results over the broker)
    return celery_executor.configured(config)
