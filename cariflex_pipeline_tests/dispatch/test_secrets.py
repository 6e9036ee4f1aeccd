"""Secrets (the AMQP password, the REST token) never reach errors, logs, reprs or materialization metadata.

Against the real RabbitMQ with a wrong password (refused by the broker, so every error path that names the
broker is taken) and an unreachable port."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import dagster as dg
import pandas as pd
import pytest

from cariflex_pipeline.defs.dispatch import BrokerResource
from cariflex_pipeline.defs.dispatch.assets import ocpp_charging_profiles, ocpp_dispatch
from cariflex_pipeline.defs.dispatch.sensors import ev_session_sensor, ocpp_answer_sensor
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.dispatch import DispatchSettings, Outbox, RestTransport, dispatch_profiles, profiles_from_plan
from cariflex_pipeline.dispatch.profiles import floor_to_grid
from cariflex_pipeline.scheduling.signals import SCHEDULER_SOURCE
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.dispatch.conftest import NOW, SITE_ID, plan_frame

PASSWORD = "pw-Zq8vX3-never-shown"
TOKEN = "tok-Jr5nW2-never-shown"


def _with_password(amqp_url: str, port: int | None = None) -> str:
    parts = urlsplit(amqp_url)
    return f"amqp://{parts.username or 'guest'}:{PASSWORD}@{parts.hostname}:{port or parts.port or 5672}/%2F"


def test_settings_and_resource_reprs_hide_the_password_and_token(amqp_url) -> None:
    url = _with_password(amqp_url)
    settings = DispatchSettings(transport="amqp", amqp_url=url, rest_token=TOKEN)
    resource = BrokerResource(transport="amqp", amqp_url=url, rest_token=TOKEN)
    for text in (repr(settings), str(settings), repr(resource), str(resource)):
        assert PASSWORD not in text and TOKEN not in text, text
    assert settings.amqp_url == url and resource.rest_token == TOKEN  # still there for the transports


@pytest.mark.parametrize("port", [None, 1], ids=["wrong-password", "unreachable"])
def test_password_never_in_errors_logs_or_metadata(port, amqp_url, exchange, names, tmp_path, site,
                                                   caplog) -> None:
    url = _with_password(amqp_url, port)
    store_url = f"sqlite:///{tmp_path / 'secrets.sqlite'}"
    series = TimeSeriesStore(store_url)
    series.migrate()
    series.register_sensors(site.sensors)
    start = floor_to_grid(datetime.now(UTC), site.resolution)
    frame = pd.DataFrame([{"sensor_id": 61, "event_start": start + timedelta(minutes=15 * i), "value": 7.0,
                           "belief_time": datetime.now(UTC)} for i in range(8)])
    for column in ("event_start", "belief_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    series.write_beliefs(frame, source=SCHEDULER_SOURCE, source_type="scheduler")
    broker = BrokerResource(transport="amqp", amqp_url=url, exchange=exchange, answer_queue=names["answers"],
                            session_queue=names["sessions"], rest_token=TOKEN)
    resources = {"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=store_url),
                 "dispatch_broker": broker}
    instance = dg.DagsterInstance.ephemeral()
    with caplog.at_level(logging.DEBUG):
        result = dg.materialize([ocpp_charging_profiles, ocpp_dispatch], resources=resources, instance=instance)
        errors = []
        for sensor in (ev_session_sensor, ocpp_answer_sensor):
            with dg.build_sensor_context(instance=instance, resources=resources) as context, \
                    pytest.raises(ConnectionError) as caught:
                sensor(context)
            errors.append(caught.value)
    assert result.success
    [entry] = Outbox(series.engine).entries()
    assert entry.status == "failed" and entry.status_reason  # the failure is told, with the broker's address
    assert "127.0.0.1" in entry.status_reason or "ACCESS_REFUSED" in entry.status_reason
    texts = [entry.status_reason, *(str(error) for error in errors), *(repr(error) for error in errors),
             caplog.text]
    texts += [str(record) for record in instance.all_logs(result.run_id)]
    texts.append(str(instance.get_run_by_id(result.run_id)))
    for materialization in result.get_asset_materialization_events():
        texts += [repr(value) for value in materialization.materialization.metadata.values()]
    leaks = [text for text in texts if PASSWORD in text or TOKEN in text]
    assert leaks == []


def test_rest_url_credentials_and_token_never_in_the_outbox(store, site) -> None:
    built = profiles_from_plan(site, plan_frame(site, NOW.replace(minute=0, second=0), {"CP001": [7.0] * 4}),
                               now=NOW)
    transport = RestTransport(f"http://admin:{PASSWORD}@127.0.0.1:1", token=TOKEN,
                              callback_base_url="http://127.0.0.1:2")
    report = dispatch_profiles(Outbox(store.engine), transport, built.profiles, site_id=SITE_ID, run_id="r", now=NOW)
    reason = report.entries["CP001"].status_reason
    assert report.entries["CP001"].status == "failed" and "127.0.0.1:1" in reason
    assert PASSWORD not in reason and TOKEN not in reason
    assert PASSWORD not in repr(transport) and TOKEN not in repr(transport)
    transport.close()
