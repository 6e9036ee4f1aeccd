"""Ticks of the sensors and the schedule with the code location loaded as a fleet, for test_fleet_sensors.py.

The fleet shape (IS_FLEET, the site x day partitions) is decided when defs/partitions.py is imported, so this runs
in a process of its own: `python -m cariflex_pipeline_tests.dagster_shell.fleet_ticks` with CARIFLEX_PORTFOLIO_FILE
naming a copy of a two-site portfolio file that it may edit. It prints one JSON object: what each tick asked for.
With the argument `sessions` it ticks ev_session_sensor on the real bus instead: FLEET_AMQP_URL, FLEET_EXCHANGE
(declared by the caller) and FLEET_SESSION_QUEUE name it, CARIFLEX_DATABASE_URL the store.
"""

import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pika
import yaml

from cariflex_pipeline.definitions import defs
from cariflex_pipeline.defs.dispatch import BrokerResource
from cariflex_pipeline.defs.dispatch.sensors import ev_session_sensor, session_run_requests
from cariflex_pipeline.defs.partitions import IS_FLEET, SITES_PARTITIONS_NAME
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.s2.sensors import s2_run_requests
from cariflex_pipeline.defs.scheduling.schedules import every_15_minutes
from cariflex_pipeline.defs.site.sensors import portfolio_sites_sensor
from cariflex_pipeline.dispatch import station_message
from cariflex_pipeline.dispatch.sessions import SessionChange
from cariflex_pipeline.site_model import load_portfolio

TICK = datetime(2026, 11, 28, 2, 30, tzinfo=UTC)  # still the 27th in Martinique
NEW_SITE = {  # docs/fleet.md, "Adding a site"
    "id": "le-robert", "name": "Le Robert depot", "citrineos_tenant": "7", "derived_sensors_from": 121,
    "grid_connection": {"import_capacity_kw": 30, "export_capacity_kw": 10},
    "sensors": [{"id": 201, "name": "cp011_power", "unit": "kW"}],
    "charge_points": [{"id": "CP011", "max_power_kw": 11, "sensor_id": 201,
                       "location": {"latitude": 14.675, "longitude": -60.940, "address": "Le Robert"}}],
}
LOG = logging.getLogger("fleet_ticks")


def _requests(requests: list[dg.RunRequest]) -> list[dict[str, Any]]:
    return [{"run_key": r.run_key, "partition_key": r.partition_key, "tags": dict(r.tags)} for r in requests]


def _sync(instance: dg.DagsterInstance) -> dict[str, Any]:
    """One tick of portfolio_sites_sensor, its add request applied to the instance as the daemon would."""
    with dg.build_sensor_context(instance=instance, resources={"site": SiteResource()}) as context:
        try:
            result = portfolio_sites_sensor(context)
        except Exception as error:  # the tick's failure, as the daemon would show it
            return {"error": f"{type(error).__name__}: {error}"}
    if isinstance(result, dg.SkipReason):
        return {"skip": result.skip_message}
    added = [key for request in result.dynamic_partitions_requests for key in request.partition_keys]
    instance.add_dynamic_partitions(SITES_PARTITIONS_NAME, added)
    return {"added": added}


def _schedule(instance: dg.DagsterInstance) -> dict[str, Any]:
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=TICK)
    result = every_15_minutes(context)
    if isinstance(result, dg.SkipReason):
        return {"skip": result.skip_message}
    return {"requests": _requests(result)}


def main() -> None:
    portfolio_file = Path(os.environ["CARIFLEX_PORTFOLIO_FILE"])
    out: dict[str, Any] = {"is_fleet": IS_FLEET, "sensors": sorted(sensor.name for sensor in defs.sensors or [])}
    with dg.instance_for_test() as instance:
        out["schedule_before_sync"] = _schedule(instance)
        out["sync_first"] = _sync(instance)
        out["sync_again"] = _sync(instance)
        out["schedule"] = _schedule(instance)
        portfolio = load_portfolio()
        changes = [SessionChange("started", "CP001", "tx-1", TICK), SessionChange("ended", "CP002", "tx-2", TICK),
                   SessionChange("started", "CP007", "tx-3", TICK)]
        sessions = session_run_requests(portfolio, changes, set(portfolio.site_ids), LOG, TICK)
        out["sessions"] = _requests(sessions.run_requests)

        def reasons_for(site_id: str, seen: dict[str, str]) -> tuple[list[str], list[str], dict[str, str]]:
            if site_id == "pointe-simon":
                raise ConnectionError("store unreachable for pointe-simon")
            return ["battery_06: RM connected"], ["rm-6:connected@t"], {"rm-6": "connected"}

        s2, cursor = s2_run_requests(portfolio, set(portfolio.site_ids), {"pointe-simon": {"rm-1": "connected"}},
                                     reasons_for, LOG, TICK)
        out["s2"] = {"requests": _requests(s2.run_requests), "skipped": s2.skipped, "cursor": cursor}

        raw = yaml.safe_load(portfolio_file.read_text(encoding="utf-8"))
        raw["sites"].append(NEW_SITE)
        portfolio_file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        out["schedule_new_site_unsynced"] = _schedule(instance)
        out["sync_new_site"] = _sync(instance)
        out["schedule_new_site"] = _schedule(instance)

        raw["sites"][2]["charge_points"][0]["max_power_kw"] = -1
        portfolio_file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        out["sync_invalid"] = _sync(instance)
    json.dump(out, sys.stdout, default=str)


def sessions_main() -> None:
    """EVs plug in at a station of each site and at a second one of the first: one run per site."""
    amqp_url, exchange = os.environ["FLEET_AMQP_URL"], os.environ["FLEET_EXCHANGE"]
    broker = BrokerResource(transport="amqp", amqp_url=amqp_url, exchange=exchange,
                            session_queue=os.environ["FLEET_SESSION_QUEUE"])
    resources = {"site": SiteResource(), "store": TimeSeriesStoreResource(), "dispatch_broker": broker}
    at = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SITES_PARTITIONS_NAME, load_portfolio().site_ids)

        def tick() -> dg.SensorResult:
            with dg.build_sensor_context(instance=instance, resources=resources) as context:
                return ev_session_sensor(context)

        out: dict[str, Any] = {"first": _requests(tick().run_requests)}  # declares and binds the queue
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        for n, station in enumerate(["CP001", "CP007", "CP002"]):
            started = {"eventType": "Started", "timestamp": at, "triggerReason": "CablePluggedIn", "seqNo": 0,
                       "transactionInfo": {"transactionId": f"tx-{n}"}, "evse": {"id": 1}}
            headers, body = station_message(station_id=station, tenant_id="1", action="TransactionEvent", state=1,
                                            payload=started, correlation_id=f"s{n}")
            connection.channel().basic_publish(exchange, "", body, pika.BasicProperties(headers=headers))
        connection.close()
        out["plugged_in"] = _requests(tick().run_requests)
        out["again"] = _requests(tick().run_requests)
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    if sys.argv[1:] == ["sessions"]:
        sessions_main()
    else:
        main()
