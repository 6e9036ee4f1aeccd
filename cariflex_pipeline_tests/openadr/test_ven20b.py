"""The 2.0b VEN against the real OpenLEADR VTN (openleadr.OpenADRServer) running in-process on 127.0.0.1."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from cariflex_pipeline.openadr.http import RetryPolicy
from cariflex_pipeline.openadr.ingest import source_name
from cariflex_pipeline.openadr.repository import EventLog
from cariflex_pipeline.openadr.ven20b import Ven20b, poll_and_ingest, run_loop, sync
from cariflex_pipeline_tests.openadr.helpers import SITE_ID, Q, audit_rows, next_day_start, series, slots
from cariflex_pipeline_tests.openadr.vtn20b import DR_CONTEXT, LOAD_CONTEXT, PRICE_CONTEXT, VTN_ID

H = timedelta(hours=1)


def _ven(vtn, store) -> Ven20b:
    return Ven20b(vtn.url, "cariflex-martinique", store.engine)


def _registered(vtn, store) -> tuple[Ven20b, str, datetime]:
    """A VEN registered at the VTN, its venID, and a start for events a day ahead (far for the VTN)."""
    ven = _ven(vtn, store)
    return ven, ven.register().ven_id, next_day_start()


def test_registration_is_stored_and_poll_frequency_follows_the_vtn(vtn, store):
    ven = _ven(vtn, store)
    state = ven.register()
    assert state.ven_id == "ven_1" and state.registration_id == "reg_1" and state.vtn_id == VTN_ID
    assert ven.poll_frequency == timedelta(seconds=1)  # what the VTN requested
    ven.poll(now=next_day_start())
    assert not ven.poll_due(next_day_start() + timedelta(milliseconds=500))
    assert ven.poll_due(next_day_start() + timedelta(seconds=1))
    # a second VEN object (a restarted process) reuses the stored registration
    assert _ven(vtn, store).register() == ven.register()
    assert len(vtn.registrations) == 1


def test_price_load_control_and_simple_level_land_value_by_value(vtn, store, site):
    ven, ven_id, start = _registered(vtn, store)
    price_id = vtn.add_event(ven_id, "ELECTRICITY_PRICE", "price", PRICE_CONTEXT,
                             [(start, H, 120.5), (start + H, H, 80.0), (start + 2 * H, H, 95.25)])
    load_id = vtn.add_event(ven_id, "LOAD_CONTROL", "x-loadControlCapacity", LOAD_CONTEXT,
                            [(start, 30 * timedelta(minutes=1), 100.0), (start + 2 * Q, 2 * Q, 60.0)])
    level_id = vtn.add_event(ven_id, "simple", "level", DR_CONTEXT,
                             [(start, Q, 0), (start + Q, Q, 2), (start + 2 * Q, Q, 3)])

    report = poll_and_ingest(ven, site, store, site_id=SITE_ID)

    assert sorted(report.new) == sorted([price_id, load_id, level_id])
    assert report.rejected == {}
    assert series(store, 84) == slots(start, [120.5, 80.0, 95.25], 4)  # EUR/MWh, program unit
    assert series(store, 86) == slots(start, [100.0, 60.0], 2)
    assert series(store, 87) == slots(start, [0.0, 2.0, 3.0], 1)
    sources = set(store.read_latest([84, 86, 87])["source"])
    assert sources == {source_name(VTN_ID, event_id) for event_id in (price_id, load_id, level_id)}
    assert report.values_written == 12 + 4 + 3
    # the VEN answered oadrCreatedEvent optIn for each event that required it
    assert sorted(vtn.opt_answers) == sorted((ven_id, event_id, "optIn") for event_id in (price_id, load_id, level_id))
    # audit: each event as received, with its raw XML
    records = EventLog(store.engine, site_id=SITE_ID).latest_versions(VTN_ID)
    assert {key[1] for key in records} == {price_id, load_id, level_id}
    assert all(price_id not in r.raw_payload or "ELECTRICITY_PRICE" in r.raw_payload for r in records.values())
    assert records[(VTN_ID, price_id)].raw_payload.startswith("<oadr:oadrEvent")


def test_same_event_twice_changes_nothing(vtn, store, site):
    ven, ven_id, start = _registered(vtn, store)
    event_id = vtn.add_event(ven_id, "ELECTRICITY_PRICE", "price", PRICE_CONTEXT, [(start, H, 150.0)])
    first = sync(ven, site, store, site_id=SITE_ID)
    before = (store.read_latest([84]), audit_rows(store))
    second = sync(ven, site, store, site_id=SITE_ID)  # oadrRequestEvent hands the same event again
    assert first.new == [event_id] and second.unchanged == [event_id]
    assert second.values_written == 0 and second.values_withdrawn == 0
    assert store.read_latest([84]).equals(before[0]) and audit_rows(store) == before[1]


def test_modified_event_replaces_its_values(vtn, store, site):
    ven, ven_id, start = _registered(vtn, store)
    event_id = vtn.add_event(ven_id, "ELECTRICITY_PRICE", "price", PRICE_CONTEXT,
                             [(start, H, 200.0), (start + H, H, 210.0)])
    poll_and_ingest(ven, site, store, site_id=SITE_ID)
    assert series(store, 84) == slots(start, [200.0, 210.0], 4)

    vtn.modify_event(ven_id, event_id, [180.0, 250.5])
    report = poll_and_ingest(ven, site, store, site_id=SITE_ID)

    assert report.modified == [event_id]
    assert series(store, 84) == slots(start, [180.0, 250.5], 4)
    assert EventLog(store.engine, site_id=SITE_ID).latest(VTN_ID, event_id).modification_number == 1
    assert audit_rows(store) == 2  # both versions kept for audit
    assert (ven_id, event_id, "optIn") in vtn.opt_answers


def test_cancelled_event_withdraws_its_values(vtn, store, site):
    ven, ven_id, start = _registered(vtn, store)
    price_id = vtn.add_event(ven_id, "ELECTRICITY_PRICE", "price", PRICE_CONTEXT, [(start, H, 300.0)])
    vtn.add_event(ven_id, "simple", "level", DR_CONTEXT, [(start, H, 1)])
    poll_and_ingest(ven, site, store, site_id=SITE_ID)
    assert len(series(store, 84)) == 4 and len(series(store, 87)) == 4

    vtn.cancel_event(ven_id, price_id)
    report = poll_and_ingest(ven, site, store, site_id=SITE_ID)

    assert report.cancelled == [price_id]
    assert report.values_withdrawn == 4
    assert series(store, 84) == []
    assert series(store, 87) == slots(start, [1.0], 4)  # the other event's values stay
    assert EventLog(store.engine, site_id=SITE_ID).latest(VTN_ID, price_id).status == "cancelled"
    # the VTN drops a cancelled event once the VEN has answered it
    assert vtn.event_status(ven_id, price_id) is None
    assert (ven_id, price_id, "optIn") in vtn.opt_answers


def test_ven_restart_resyncs_without_registering_again(vtn, store, site):
    ven, ven_id, start = _registered(vtn, store)
    first_id = vtn.add_event(ven_id, "ELECTRICITY_PRICE", "price", PRICE_CONTEXT, [(start, H, 111.0)])
    poll_and_ingest(ven, site, store, site_id=SITE_ID)
    del ven  # the process stops

    # while the VEN is down, the VTN publishes a load-control event and modifies the price
    second_id = vtn.add_event(ven_id, "LOAD_CONTROL", "x-loadControlCapacity", LOAD_CONTEXT, [(start, H, 70.0)])
    vtn.modify_event(ven_id, first_id, [99.0])

    restarted = _ven(vtn, store)  # new process: state comes from the database
    assert restarted.state.ven_id == ven_id
    report = sync(restarted, site, store, site_id=SITE_ID)  # oadrRequestEvent

    assert len(vtn.registrations) == 1
    assert report.modified == [first_id] and report.new == [second_id]
    assert series(store, 84) == slots(start, [99.0], 4)
    assert series(store, 86) == slots(start, [70.0], 4)
    again = sync(restarted, site, store, site_id=SITE_ID)
    assert sorted(again.unchanged) == sorted([first_id, second_id]) and again.values_written == 0


def test_unknown_signal_is_ignored_with_a_warning_others_ingested(vtn, store, site):
    ven, ven_id, start = _registered(vtn, store)
    vtn.add_event(ven_id, "DEMAND_CHARGE", "price", PRICE_CONTEXT, [(start, H, 12.0)])
    price_id = vtn.add_event(ven_id, "ELECTRICITY_PRICE", "price", PRICE_CONTEXT, [(start, H, 140.0)])
    report = poll_and_ingest(ven, site, store, site_id=SITE_ID)
    assert any("DEMAND_CHARGE/price" in warning and "feeds no sensor" in warning for warning in report.warnings)
    assert price_id in report.new
    assert series(store, 84) == slots(start, [140.0], 4)


def test_rejected_event_is_answered_opt_out_and_writes_nothing(vtn, store, site):
    ven, ven_id, start = _registered(vtn, store)
    bad_id = vtn.add_event(ven_id, "simple", "level", DR_CONTEXT, [(start, H, 7)])  # levels are 0..3
    good_id = vtn.add_event(ven_id, "simple", "level", DR_CONTEXT, [(start + H, H, 1)])
    report = poll_and_ingest(ven, site, store, site_id=SITE_ID)
    assert list(report.rejected) == [bad_id] and "above 3" in report.rejected[bad_id]
    assert (ven_id, bad_id, "optOut") in vtn.opt_answers and (ven_id, good_id, "optIn") in vtn.opt_answers
    assert series(store, 87) == slots(start + H, [1.0], 4)
    assert EventLog(store.engine, site_id=SITE_ID).latest(VTN_ID, bad_id) is None


def test_long_running_ven_polls_at_the_requested_frequency(vtn, store, site):
    ven, ven_id, start = _registered(vtn, store)
    first_id = vtn.add_event(ven_id, "ELECTRICITY_PRICE", "price", PRICE_CONTEXT, [(start, H, 101.0)])
    sleeps: list[float] = []
    published: list[str] = []

    def sleep(seconds: float) -> None:  # the VTN publishes while the VEN waits
        sleeps.append(seconds)
        if not published:
            published.append(vtn.add_event(ven_id, "simple", "level", DR_CONTEXT, [(start, H, 2)]))

    report = run_loop(ven, site, store, max_polls=2, sleep=sleep, site_id=SITE_ID)
    assert sleeps == [1.0, 1.0]  # the VTN asked for a poll every second
    assert report.new == [first_id, published[0]]
    assert series(store, 87) == slots(start, [2.0], 4)


def test_long_running_ven_survives_a_vtn_outage(vtn, store, site):
    ven = Ven20b(vtn.url, "cariflex-martinique", store.engine,
                 retry=RetryPolicy(attempts=2, sleep=lambda _seconds: None))
    ven_id = ven.register().ven_id
    start = next_day_start()
    vtn.add_event(ven_id, "ELECTRICITY_PRICE", "price", PRICE_CONTEXT, [(start, H, 101.0)])

    def sleep(_seconds: float) -> None:
        if vtn.thread.is_alive():
            vtn.stop()  # the VTN goes away after the first sync

    report = run_loop(ven, site, store, max_polls=2, sleep=sleep, site_id=SITE_ID)  # logs the failures, does not raise
    assert len(report.new) == 1
    assert series(store, 84) == slots(start, [101.0], 4)  # values already stored stay


def test_reregistration_requested_by_the_vtn():
    """A VTN that tracks its VENs (ven_lookup) and lost ours answers oadrRequestReregistration to a poll: the
    VEN registers again, stores the new registration and resyncs."""
    import tempfile

    from cariflex_pipeline.site_model import load_site
    from cariflex_pipeline.store import TimeSeriesStore
    from cariflex_pipeline_tests.openadr.vtn20b import InProcessVtn

    site = load_site()
    with tempfile.TemporaryDirectory() as directory:
        store = TimeSeriesStore(f"sqlite:///{directory}/store.sqlite")
        store.migrate()
        store.register_sensors(site.sensors)
        vtn = InProcessVtn(track_vens=True)
        try:
            ven = _ven(vtn, store)
            ven_id = ven.register().ven_id
            poll_and_ingest(ven, site, store, site_id=SITE_ID)  # the first fetch is a resync: the next one polls
            start = next_day_start()
            event_id = vtn.add_event(ven_id, "ELECTRICITY_PRICE", "price", PRICE_CONTEXT, [(start, H, 133.0)])
            vtn.forget_vens()
            report = poll_and_ingest(ven, site, store, site_id=SITE_ID)
            assert len(vtn.registrations) == 2
            assert ven.state.registration_id == "reg_2" and ven.state.ven_id == ven_id
            assert report.new == [event_id]
            assert series(store, 84) == slots(start, [133.0], 4)
        finally:
            vtn.stop()
            store.engine.dispose()


def test_the_ven_closes_the_connection_pool_it_opened(store) -> None:
    with Ven20b("http://127.0.0.1:9/OpenADR2/Simple/2.0b", "cariflex", store.engine) as ven:
        own = ven.client
    assert own.is_closed
    shared = httpx.Client()
    with Ven20b("http://127.0.0.1:9/OpenADR2/Simple/2.0b", "cariflex", store.engine, client=shared):
        pass
    assert not shared.is_closed  # a client handed in stays open for its owner
    shared.close()
