"""OpenADR for a fleet: two sites of the Martinique portfolio sharing one VEN name, each ingesting for itself.

The price targets every site (shared sensor 84); the DSO's load control targets Pointe Simon only (sensor 86, its
own; Place d'Armes has a load-control sensor of its own, 186, that no signal feeds). 2.0b runs against the real
OpenLEADR VTN, 3.0.1 against the spec-shaped test VTN, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

import cariflex_pipeline.site_model as site_model
from cariflex_pipeline.defs import partitions
from cariflex_pipeline.defs.openadr.resources import RunRetries
from cariflex_pipeline.defs.openadr.sensors import vtn_tick
from cariflex_pipeline.openadr.ingest import source_name
from cariflex_pipeline.openadr.repository import EventLog, VenStateStore
from cariflex_pipeline.openadr.source import VtnConfig, ingest_from_source
from cariflex_pipeline.site_model import Portfolio, parse_portfolio
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.openadr.helpers import Q, next_day_start, series, slots
from cariflex_pipeline_tests.openadr.messages import event_301
from cariflex_pipeline_tests.openadr.vtn20b import LOAD_CONTEXT, PRICE_CONTEXT, VTN_ID, InProcessVtn
from cariflex_pipeline_tests.openadr.vtn301 import Vtn301Server

H = timedelta(hours=1)
PS, PDA = "pointe-simon", "place-d-armes"
BUNDLED = Path(site_model.__file__).with_name("martinique_portfolio.yaml")


def fleet(targets: bool = False) -> Portfolio:
    """The bundled two-site portfolio, with sensor 86 and its load-control mappings Pointe Simon's only."""
    raw = yaml.safe_load(BUNDLED.read_text(encoding="utf-8"))
    load_control = next(sensor for sensor in raw["sensors"] if sensor["id"] == 86)
    raw["sensors"].remove(load_control)
    signals = raw.pop("signals")
    for entry in raw["sites"]:
        own = 86 if entry["id"] == PS else 186
        entry["sensors"].append({**load_control, "id": own})
        entry["signals"] = {**signals, "load_control": own}
        if targets and entry["id"] == PS:
            entry["openadr"] = {"targets": [{"type": "GROUP", "values": [PS]}]}
    for mapping in raw["openadr"]["signals"]:
        if mapping["sensor_id"] == 86:
            mapping["sites"] = [PS]
    return parse_portfolio(raw, "test fleet")


@pytest.fixture
def fleet_store(store: TimeSeriesStore) -> TimeSeriesStore:
    portfolio = fleet()
    for site_id in portfolio.site_ids:
        store.register_sensors(portfolio.site(site_id).sensors)
    return store


def _versions(store: TimeSeriesStore, site_id: str) -> dict[str, tuple[int, ...]]:
    return {event_id: record.sensor_ids
            for (_vtn, event_id), record in EventLog(store.engine, site_id=site_id).latest_versions().items()}


def test_the_mappings_route_each_signal_to_its_sites() -> None:
    portfolio = fleet()
    assert {m.sensor_id for m in portfolio.site(PS).openadr.signals} == {84, 86, 87}
    assert {m.sensor_id for m in portfolio.site(PDA).openadr.signals} == {84, 87}


def test_20b_one_ven_two_sites_each_ingests_for_itself(vtn: InProcessVtn, fleet_store: TimeSeriesStore) -> None:
    portfolio, config = fleet(), VtnConfig(url=vtn.url, protocol="2.0b")
    start = next_day_start()
    first = ingest_from_source(config, portfolio, fleet_store, site_id=PDA)  # registers the shared VEN
    assert first.events_seen == 0
    price = vtn.add_event("ven_1", "ELECTRICITY_PRICE", "price", PRICE_CONTEXT,
                          [(start, H, 120.0), (start + H, H, 80.0)])
    # 150 % of the connection: out of the mapping's 0..100
    load = vtn.add_event("ven_1", "LOAD_CONTROL", "x-loadControlCapacity", LOAD_CONTEXT,
                         [(start, H, 150.0)])

    # Place d'Armes first: it has no load-control mapping, so the bad event is not its to answer
    place = ingest_from_source(config, portfolio, fleet_store, site_id=PDA)
    assert sorted(place.new) == sorted([price, load]) and place.rejected == {}
    # Pointe Simon next: the price Place d'Armes stored is new for it; the load-control event is rejected here only
    pointe = ingest_from_source(config, portfolio, fleet_store, site_id=PS)
    assert pointe.new == [price] and list(pointe.rejected) == [load]

    assert len(vtn.registrations) == 1  # one VEN at the VTN, its state shared
    assert VenStateStore(fleet_store.engine).load(vtn.url, "cariflex-martinique").ven_id == "ven_1"
    assert [answer for answer in vtn.opt_answers if answer[1] == load] == [("ven_1", load, "optOut")]
    assert ("ven_1", price, "optIn") in vtn.opt_answers
    # the shared price once (one source, one value per slot), no load-control value anywhere
    assert series(fleet_store, 84) == slots(start, [120.0, 80.0], 4)
    assert set(fleet_store.read_latest([84])["source"]) == {source_name(VTN_ID, price)}
    assert series(fleet_store, 86) == [] and series(fleet_store, 186) == []
    assert _versions(fleet_store, PDA) == {price: (84,), load: ()}
    assert _versions(fleet_store, PS) == {price: (84,)}  # a rejected event is not stored

    vtn.modify_event("ven_1", load, [60.0])  # the DSO corrects it
    again = ingest_from_source(config, portfolio, fleet_store, site_id=PS)
    assert again.new == [load] and again.unchanged == [price] and series(fleet_store, 86) == slots(start, [60.0], 4)
    assert series(fleet_store, 186) == [] and series(fleet_store, 84) == slots(start, [120.0, 80.0], 4)


def test_301_each_site_lists_with_its_own_targets(vtn3: Vtn301Server, fleet_store: TimeSeriesStore) -> None:
    portfolio = fleet(targets=True)
    config = VtnConfig(url=vtn3.url, protocol="3.0.1", client_id=vtn3.client_id, client_secret=vtn3.client_secret,
                       vtn_id="vtn3")
    start = next_day_start()
    price = event_301("price-1", start, [0.2])
    price["targets"] = [{"type": "GROUP", "values": [PS, PDA]}]
    load = event_301("load-1", start, [50.0], program="martinique-load-control",
                     payload_type="DISPATCH_SETPOINT_RELATIVE", units="PERCENT", currency=None)
    load["targets"] = [{"type": "GROUP", "values": [PS]}]
    bad_price = event_301("price-bad", start + 2 * H, ["x"])  # not targeted: only the untargeted listing has it
    vtn3.events = [price, load, bad_price]

    pointe = ingest_from_source(config, portfolio, fleet_store, site_id=PS)
    place = ingest_from_source(config, portfolio, fleet_store, site_id=PDA)

    queries = {tuple(query.get("targetValues", [])) for query in vtn3.event_requests}
    assert queries == {(PS,), ()}  # Pointe Simon asked for its targets, Place d'Armes as before
    assert sorted(pointe.new) == ["load-1", "price-1"] and pointe.rejected == {}
    # Place d'Armes lists only the programs its mappings name: no load control
    assert place.new == ["price-1"] and list(place.rejected) == ["price-bad"]
    assert series(fleet_store, 84) == slots(start, [200.0], 4)  # written by both, stored once
    assert series(fleet_store, 86) == slots(start, [50.0], 4) and series(fleet_store, 186) == []
    assert _versions(fleet_store, PS) == {"price-1": (84,), "load-1": (86,)}
    assert _versions(fleet_store, PDA) == {"price-1": (84,)}

    assert sorted(ingest_from_source(config, portfolio, fleet_store, site_id=PS).unchanged) == ["load-1", "price-1"]
    assert len(fleet_store.read_latest([84, 86, 87, 186])) == 8  # nothing doubled


@pytest.fixture
def eager_vtn() -> Iterator[InProcessVtn]:
    server = InProcessVtn(poll_freq=timedelta(0))  # poll every tick
    yield server
    server.stop()


def test_the_fleet_sensor_polls_each_ven_once_and_runs_each_site(eager_vtn: InProcessVtn,
                                                                  fleet_store: TimeSeriesStore,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partitions, "IS_FLEET", True)  # partition_key_for: site x day keys
    vtn = eager_vtn
    portfolio, config = fleet(), VtnConfig(url=vtn.url, protocol="2.0b")
    retries = RunRetries(3, timedelta(seconds=60))
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor: str | None) -> dg.SensorResult:
        return vtn_tick(dg.build_sensor_context(instance=instance, cursor=cursor), portfolio, fleet_store, config,
                        retries, fleet=True)

    first = tick(None)
    assert first.run_requests == [] and len(vtn.registrations) == 1
    # tomorrow's prices, which today's partition (the last) ingests: an event of today would be over, and never
    # requested, once the test runs after its intervals
    start = next_day_start()
    price = vtn.add_event("ven_1", "ELECTRICITY_PRICE", "price", PRICE_CONTEXT, [(start, 2 * Q, 90.0)])
    day = partitions.day_partitions.get_last_partition_key()

    new = tick(first.cursor)
    assert len(vtn.registrations) == 1 and len(vtn.polls) == 1  # one oadrPoll for both sites
    assert sorted(request.run_key for request in new.run_requests) == [
        f"openadr:{PDA}:{day}:{price}@0", f"openadr:{PS}:{day}:{price}@0"]
    assert {request.partition_key for request in new.run_requests} == {
        dg.MultiPartitionKey({"day": day, "site": PS}), dg.MultiPartitionKey({"day": day, "site": PDA})}
    [added] = new.dynamic_partitions_requests
    assert sorted(added.partition_keys) == [PDA, PS]
    assert tick(new.cursor).run_requests == []  # requested, pending: not again

    ingest_from_source(config, portfolio, fleet_store, site_id=PS)  # Pointe Simon's run
    after = tick(new.cursor)
    assert after.run_requests == []
    pending = yaml.safe_load(after.cursor)["sites"]
    assert pending[PS] == {} and list(pending[PDA]) == [price]  # Place d'Armes' run is still to come
