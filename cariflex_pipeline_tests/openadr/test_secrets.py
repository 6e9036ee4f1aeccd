"""The OpenADR 3.0.1 client secret and bearer tokens never reach error messages, logs or materialization metadata,
even from a VTN that echoes what it was sent in its error bodies."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import dagster as dg
import pytest

from cariflex_pipeline.defs.openadr.assets import SIGNAL_ASSETS, openadr_events
from cariflex_pipeline.defs.openadr.resources import VtnResource
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.openadr.errors import VtnAuthError, VtnError
from cariflex_pipeline.openadr.http import RetryPolicy
from cariflex_pipeline.openadr.ven301 import Ven301
from cariflex_pipeline_tests.openadr.messages import event_301
from cariflex_pipeline_tests.openadr.vtn301 import problem

SECRET = "s3cret-ven"  # the test VTN's client secret


ECHOING_TOKEN_ERRORS = [  # a careless token endpoint repeats the request's secret in its error answers
    (400, {"error": "invalid_client", "error_description": f"client_secret {SECRET} is not valid"}),
    (500, f"debug: form was grant_type=client_credentials&client_id=ven_client&client_secret={SECRET}"),
]


def _ven(vtn3) -> Ven301:
    return Ven301(vtn3.url, vtn3.client_id, SECRET, programs=["martinique-price"],
                  retry=RetryPolicy(attempts=2, sleep=lambda _seconds: None))


def test_errors_and_logs_never_carry_the_secret_or_the_token(vtn3, caplog):
    caplog.set_level(logging.DEBUG)
    errors = []
    for answer in ECHOING_TOKEN_ERRORS:
        vtn3.fail_next = [answer, answer]
        with pytest.raises(VtnError) as raised:
            _ven(vtn3).fetch_event_objects()
        errors.append(raised.value)
    ven = _ven(vtn3)
    token = ven.token()
    vtn3.fail_next = [(403, problem(403, f"Forbidden for {SECRET}", f"token {token} may not read this program"))]
    with pytest.raises(VtnError) as forbidden:
        ven.fetch_event_objects()
    errors.append(forbidden.value)

    assert isinstance(errors[0], VtnAuthError) and "is not valid" in str(errors[0])
    assert "failed after 2 attempts: HTTP 500" in str(errors[1])
    assert "may not read this program" in str(errors[2]) and errors[2].status == 403  # the reason stays readable
    for error in errors:
        text = f"{error} {error!r} {error.problem}"
        assert SECRET not in text and token not in text
    assert caplog.records and all(SECRET not in record.getMessage() and token not in record.getMessage()
                                  for record in caplog.records)


def _resources(tmp_path, vtn3, timeout_seconds: float = 10.0) -> dict:
    return {"site": SiteResource(),
            "store": TimeSeriesStoreResource(database_url=f"sqlite:///{tmp_path / 'store.sqlite'}"),
            "vtn": VtnResource(url=vtn3.url, protocol="3.0.1", client_id=vtn3.client_id, client_secret=SECRET,
                               vtn_id="vtn3", retry_attempts=1, timeout_seconds=timeout_seconds)}


def test_a_run_never_records_the_secret(vtn3, tmp_path):
    now = datetime.now(UTC)
    start = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)  # today: a valid partition
    vtn3.events = [event_301("price-1", start, [0.2])]
    partition = start.astimezone(SiteResource().load().tz).date().isoformat()
    instance = dg.DagsterInstance.ephemeral()
    resources = _resources(tmp_path, vtn3)
    ok = dg.materialize([openadr_events, *SIGNAL_ASSETS], partition_key=partition, resources=resources,
                        instance=instance)
    assert ok.success and ok.asset_materializations_for_node("openadr_events")

    for attempt, answer in enumerate(ECHOING_TOKEN_ERRORS):
        # a VEN without a token yet (another configuration: not the one cached by the first run), and a token
        # endpoint that echoes the secret: the run fails
        vtn3.fail_next = [answer]
        failed = dg.materialize([openadr_events], partition_key=partition, instance=instance, raise_on_error=False,
                                resources=_resources(tmp_path, vtn3, timeout_seconds=5.0 + attempt))
        assert not failed.success
        failure = failed.get_step_failure_events()[0].step_failure_data.error
        assert "OpenADR 3.0.1 token" in failure.message or "OpenADR 3.0.1 token" in str(failure.cause)

    records = [repr(entry) for run in instance.get_runs() for entry in instance.all_logs(run.run_id)]
    assert records and all(SECRET not in record for record in records)
