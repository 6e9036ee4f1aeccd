"""A two-site portfolio's S2 rows carry their site: one CEM serves every site's devices, each RM's row and messages
get its device's site ("" while it names none), instructions and their events the staging site's; staging and the
per-site readers see only their site's RMs."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from cariflex_pipeline.s2 import state
from cariflex_pipeline.s2.devices import portfolio_devices, soc_sensors
from cariflex_pipeline.s2.frbc import ModeRange, Setpoint
from cariflex_pipeline.s2.planning import stage_plan
from cariflex_pipeline.s2.tables import s2_instruction_events
from cariflex_pipeline.site_model import default_site_file, load_portfolio
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.s2.conftest import NOW
from cariflex_pipeline_tests.s2.helpers import Clock, RawRm, RunningCem, wait_for
from cariflex_pipeline_tests.s2.simulators import Storage, StorageControl

PORTFOLIO = load_portfolio(Path(default_site_file()).with_name("martinique_portfolio.yaml"))
DEVICES = portfolio_devices(PORTFOLIO)
SIMON, ARMES = "pointe-simon", "place-d-armes"
SOURCE = "cariflex-scheduler"
CHARGE = ModeRange(actuator_id="a1", mode_id="charge", label="charge", start_kw=0.0, end_kw=5.0)


def test_every_site_device_is_served_with_its_site() -> None:
    assert (DEVICES["battery_01"].site_id, DEVICES["v2g_05"].site_id) == (SIMON, SIMON)
    assert (DEVICES["battery_06"].site_id, DEVICES["v2g_10"].site_id) == (ARMES, ARMES)
    assert len(DEVICES) == 20


def test_each_rm_and_its_messages_carry_its_devices_site(store: TimeSeriesStore) -> None:
    cem = RunningCem(store, Clock(NOW), devices=DEVICES)
    ids = {name: str(uuid.uuid4()) for name in ("battery_01", "v2g_06", "heat_pump_7")}
    try:
        for name, resource_id in ids.items():
            rm = RawRm(cem.url)
            rm.handshake(name, resource_id=resource_id)
            rm.close()
        wait_for(lambda: all(state.resource(store.engine, i) for i in ids.values()), "every RM recorded")
    finally:
        cem.close()
    sites = {name: state.resource(store.engine, resource_id)["site_id"] for name, resource_id in ids.items()}
    assert sites == {"battery_01": SIMON, "v2g_06": ARMES, "heat_pump_7": ""}
    for name, resource_id in ids.items():
        assert {row["site_id"] for row in state.messages(store.engine, resource_id)} == {sites[name]}
    # a Handshake comes before the RM names its device: no site yet
    assert {row["site_id"] for row in state.messages(store.engine) if row["resource_id"] is None} == {""}
    assert [row["device"] for row in state.resources(store.engine, site_id=ARMES)] == ["v2g_06"]
    assert {row["resource_id"] for row in state.messages(store.engine, site_id=ARMES)} == {ids["v2g_06"]}
    # the CEM registered each device's fill-level sensor with the device's site
    assert 151 in store.site_sensor_ids(SIMON) and 151 not in store.site_sensor_ids(ARMES)


def _connected_rm(store: TimeSeriesStore, device: str, site_id: str) -> None:
    description = StorageControl(Storage(13.5, 5.0, 5.0, 6.0), NOW).system_description()
    state.save_resource(store.engine, f"rm-{device}", NOW, name=device, device=device, site_id=site_id,
                        status="connected", control_type="FILL_RATE_BASED_CONTROL",
                        system_description=description.to_json(), fill_level=6.0, fill_level_at=NOW)


def test_staging_works_on_its_sites_rms_and_instructions_carry_that_site(store: TimeSeriesStore) -> None:
    store.register_sensors(soc_sensors(DEVICES.values()))
    _connected_rm(store, "battery_01", SIMON)
    battery = {"battery_01": DEVICES["battery_01"]}
    store.write_beliefs(pd.DataFrame({"sensor_id": 51, "event_start": [NOW + i * timedelta(minutes=15)
                                                                       for i in range(4)],
                                      "value": 2.0, "belief_time": NOW}), source=SOURCE, source_type="scheduler")
    [elsewhere] = stage_plan(store, battery, SOURCE, NOW, timedelta(hours=1), "plan-armes", NOW, site_id=ARMES)
    assert (elsewhere.staged, elsewhere.reason) == (None, "no RM connected")  # not Place d'Armes' RM
    [staged] = stage_plan(store, battery, SOURCE, NOW, timedelta(hours=1), "plan-simon", NOW, site_id=SIMON)
    assert staged.staged is not None and staged.staged.added > 0
    rows = state.instructions(store.engine, "rm-battery_01")
    assert {row["site_id"] for row in rows} == {SIMON}
    state.transition(store.engine, rows[0]["id"], "unanswered", NOW, "no ReceptionStatus in time")
    state.retry_from_plan(store.engine, rows[0], Setpoint(rows[0]["execution_time"], 2.0, CHARGE, 0.4), NOW)
    assert {row["site_id"] for row in state.instructions(store.engine, "rm-battery_01")} == {SIMON}
    with store.engine.connect() as connection:
        events = connection.scalars(select(s2_instruction_events.c.site_id)).all()
    assert len(events) == len(rows) + 2 and set(events) == {SIMON}
