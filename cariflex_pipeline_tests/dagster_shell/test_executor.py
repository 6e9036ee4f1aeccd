"""CARIFLEX_EXECUTOR picks the jobs' executor; a setting it cannot run with is a load error naming the variable.

Runs through celery workers on the real RabbitMQ: test_celery_workers.py."""

import dagster as dg
import pytest

from cariflex_pipeline.defs.executor import ExecutorSettingError, job_executor

BROKER = "amqp://cariflex:pw@broker.example:5672/cariflex"


def test_the_default_is_the_in_process_executor() -> None:
    assert job_executor({}) is dg.in_process_executor
    assert job_executor({"CARIFLEX_EXECUTOR": "in_process"}) is dg.in_process_executor


def test_celery_is_chosen_by_the_setting() -> None:
    executor = job_executor({"CARIFLEX_EXECUTOR": "celery", "CARIFLEX_CELERY_BROKER": BROKER})
    assert executor.name == "celery"


@pytest.mark.parametrize(("environ", "named"), [
    ({"CARIFLEX_EXECUTOR": "celery"}, "CARIFLEX_CELERY_BROKER"),
    ({"CARIFLEX_EXECUTOR": "celery", "CARIFLEX_CELERY_BROKER": " "}, "CARIFLEX_CELERY_BROKER"),
    ({"CARIFLEX_EXECUTOR": "multiprocess"}, "CARIFLEX_EXECUTOR='multiprocess'"),
])
def test_a_setting_it_cannot_run_with_is_refused_naming_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ExecutorSettingError, match=named):
        job_executor(environ)
