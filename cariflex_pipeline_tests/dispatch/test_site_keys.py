"""A two-site portfolio's dispatch rows carry their site: outbox entries and their events the site whose plan they
carry, sessions, station status and EV needs the site of the station's charge point (through the real session
consumer, one for every station of the portfolio); a per-site reader returns only that site's rows, and a run of
one site never supersedes another site's entries."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select

from cariflex_pipeline.dispatch import (
    METER_SOURCE,
    Outbox,
    SessionBook,
    SessionConsumer,
    SessionDefaults,
    active_sessions,
    active_transactions,
    stations_from_portfolio,
)
from cariflex_pipeline.dispatch.sessions import sessions_between, unapplied_needs
from cariflex_pipeline.dispatch.tables import ev_charging_needs, ev_station_status, ocpp_outbox_events
from cariflex_pipeline.site_model import default_site_file, load_portfolio
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.dispatch.conftest import NOW, profile_for
from cariflex_pipeline_tests.dispatch.test_sessions import T0, Bus, _iso, transaction_event

PORTFOLIO = Path(default_site_file()).with_name("martinique_portfolio.yaml")
SIMON, ARMES = "pointe-simon", "place-d-armes"


def test_outbox_entries_and_their_events_carry_the_site_of_their_plan(store: TimeSeriesStore) -> None:
    outbox = Outbox(store.engine)
    outbox.prepare([profile_for("CP001", 5.0)], site_id=SIMON, run_id="simon-1", transport="outbox", now=NOW)
    [armes] = outbox.prepare([profile_for("CP006", 3.0)], site_id=ARMES, run_id="armes-1", transport="outbox",
                             now=NOW).to_send
    outbox.mark_sent([armes.correlation_id], now=NOW)
    assert [(e.station_id, e.site_id) for e in outbox.entries(site_id=SIMON)] == [("CP001", SIMON)]
    assert [(e.station_id, e.site_id) for e in outbox.entries(site_id=ARMES)] == [("CP006", ARMES)]
    with store.engine.connect() as connection:
        events = connection.execute(select(ocpp_outbox_events.c.station_id, ocpp_outbox_events.c.event,
                                           ocpp_outbox_events.c.site_id).order_by(ocpp_outbox_events.c.id)).all()
    assert [tuple(row) for row in events] == [("CP001", "pending", SIMON), ("CP006", "pending", ARMES),
                                              ("CP006", "sent", ARMES)]


def test_a_sites_run_never_supersedes_another_sites_entries(store: TimeSeriesStore) -> None:
    outbox = Outbox(store.engine)
    [waiting] = outbox.prepare([profile_for("CP006", 3.0)], site_id=ARMES, run_id="armes-1", transport="outbox",
                               now=NOW).to_send
    # Pointe Simon's run plans nothing: its own undelivered entries would be superseded, Place d'Armes' are not its
    outbox.prepare([], site_id=SIMON, run_id="simon-1", transport="outbox", now=NOW)
    assert outbox.get(waiting.correlation_id).status == "pending"
    outbox.prepare([], site_id=ARMES, run_id="armes-2", transport="outbox", now=NOW)
    assert outbox.get(waiting.correlation_id).status == "superseded"


def test_the_session_consumer_keys_every_stations_rows_by_its_site(amqp_url, exchange, names, store, caplog) -> None:
    portfolio = load_portfolio(PORTFOLIO)
    book = SessionBook(store.engine, stations_from_portfolio(portfolio), SessionDefaults())
    consumer = SessionConsumer(amqp_url, book, exchange=exchange, queue=names["sessions"],
                               write_beliefs=lambda frame: store.write_beliefs(frame, source=METER_SOURCE,
                                                                               source_type="meter"))
    consumer.ensure_queue()
    bus = Bus(amqp_url, exchange)
    for station in ("CP001", "CP006", "CP099"):  # CP099: a station no site of the portfolio has
        bus.send(station, "StatusNotification", {"timestamp": _iso(T0), "connectorStatus": "Occupied",
                                                 "evseId": 1, "connectorId": 1})
        bus.send(station, "TransactionEvent", transaction_event("Started", f"tx-{station}", T0, 0))
    bus.send("CP006", "NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": {  # CitrineOS has not answered yet
        "requestedEnergyTransfer": "DC", "departureTime": _iso(T0.replace(hour=18)),
        "dcChargingParameters": {"evMaxCurrent": 100, "evMaxVoltage": 400, "energyAmount": 12000}}})
    bus.close()
    with caplog.at_level(logging.WARNING, logger="cariflex_pipeline.dispatch.session_consumer"):
        report = consumer.drain()
    assert report.processed == 5 and report.dead_lettered == 0
    assert (report.unknown_station, report.unknown_stations) == (2, {"CP099"})
    assert "station CP099 is in no site of the portfolio (site ''): message ignored" in caplog.text
    assert [(s["station_id"], s["site_id"]) for s in active_sessions(store.engine)] == [("CP001", SIMON),
                                                                                      ("CP006", ARMES)]
    assert [s["station_id"] for s in active_sessions(store.engine, site_id=ARMES)] == ["CP006"]
    assert active_transactions(store.engine, site_id=SIMON) == {"CP001": "tx-CP001"}
    assert active_sessions(store.engine, station_ids=["CP001"], site_id=ARMES) == []  # both filters apply
    day = (T0.replace(hour=0), T0.replace(hour=23))
    assert [s["station_id"] for s in sessions_between(store.engine, *day, site_id=SIMON)] == ["CP001"]
    with store.engine.connect() as connection:
        status = connection.execute(select(ev_station_status.c.station_id, ev_station_status.c.site_id)
                                    .order_by(ev_station_status.c.station_id)).all()
        needs = connection.execute(select(ev_charging_needs.c.station_id, ev_charging_needs.c.site_id)).all()
    assert [tuple(row) for row in status] == [("CP001", SIMON), ("CP006", ARMES)]
    assert [tuple(row) for row in needs] == [("CP006", ARMES)]
    assert [n["station_id"] for n in unapplied_needs(store.engine, site_id=ARMES)] == ["CP006"]
    assert unapplied_needs(store.engine, site_id=SIMON) == []
