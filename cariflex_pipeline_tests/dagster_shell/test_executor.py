"""CARIFLEX_EXECUTOR picks the jobs' executor; a setting it cannot run with is a load error naming the variable.

A broker that refuses fails the run without showing its password. Runs through celery workers on the real RabbitMQ:
test_celery_workers.py."""

import dagster as dg
import pytest

from cariflex_pipeline.defs.executor import ExecutorSettingError, job_executor
from cariflex_pipeline_tests.dagster_shell.celery_sites import SITES, site_job

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


def test_a_broker_that_refuses_fails_the_run_and_never_shows_its_password(
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path) -> None:
    """Nothing listens on port 1: the first step cannot be sent, the run fails (no hang), and the broker's password
    is in no event of the run and nothing the process printed."""
    password = "pw-refused-5e1b"
    monkeypatch.setenv("CARIFLEX_EXECUTOR", "celery")
    monkeypatch.setenv("CARIFLEX_CELERY_BROKER", f"amqp://cariflex:{password}@127.0.0.1:1/cariflex")
    config = {"ops": {f"plan_{site}": {"config": {"barrier_dir": str(tmp_path)}} for site in SITES}}
    with dg.instance_for_test() as instance:
        result = dg.execute_job(dg.reconstructable(site_job), instance=instance, run_config=config,
                                raise_on_error=False)
        assert not result.success
        assert result.job_def.executor_def.name == "celery"
        failure = instance.get_run_by_id(result.run_id)
        assert failure is not None and failure.status == dg.DagsterRunStatus.FAILURE
        assert not [entry for entry in instance.all_logs(result.run_id) if password in str(entry)]
    printed = capfd.readouterr()
    assert "Connection refused" in printed.out + printed.err
    assert password not in printed.out + printed.err
