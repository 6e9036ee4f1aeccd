"""Rows keyed by site: sensors registered from a portfolio keep their owning site (NULL: shared), a site's series
are selected by its sensors; `0009_site_keys` places every row present before it in the site of the deployment's
portfolio, on SQLite and on PostgreSQL, for the two-site Martinique portfolio and for the one-site default."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, text

from cariflex_pipeline.site_model import Sensor, default_site_file, load_portfolio
from cariflex_pipeline.site_model.portfolio import PORTFOLIO_FILE_ENV
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline.store.migrate import upgrade_to_head
from cariflex_pipeline_tests.conftest import migrated_to

PORTFOLIO = Path(default_site_file()).with_name("martinique_portfolio.yaml")
SIMON, ARMES, ONE = "pointe-simon", "place-d-armes", "cariflex-martinique"
AT = "2026-11-28 12:00:00"


def test_a_portfolio_registers_each_sensor_with_its_site(store: TimeSeriesStore, site) -> None:
    store.register_portfolio(load_portfolio(PORTFOLIO))
    simon = store.site_sensor_ids(SIMON)
    assert {41, 51, 61, 65, 71, 81, 84, 87} <= set(simon) and not {46, 56, 66, 76} & set(simon)
    assert set(store.site_sensor_ids(ARMES)) & set(simon) == {81, 82, 84, 85, 86, 87}  # the shared ones
    # registering a site's sensors again (as every asset's store does) keeps what the portfolio recorded
    store.register_sensors(site.sensors)
    assert store.site_sensor_ids(SIMON) == simon
    store.register_sensors([Sensor(id=901, name="a_new_meter", unit="kW")])  # no site: "", read by none
    assert 901 not in store.site_sensor_ids(SIMON) and 901 not in store.site_sensor_ids(ARMES)
    table = store.sensor_table().set_index("id")["site_id"]
    assert (table[61], table[66], table[901]) == (SIMON, ARMES, "") and pd.isna(table[84])


def test_a_site_selects_its_series(store: TimeSeriesStore) -> None:
    store.register_portfolio(load_portfolio(PORTFOLIO))
    frame = pd.DataFrame({"sensor_id": [61, 66, 84], "event_start": pd.Timestamp("2026-11-28T12:00Z"),
                          "value": [1.0, 2.0, 3.0], "belief_time": pd.Timestamp("2026-11-28T11:00Z")})
    store.write_beliefs(frame, source="meter")
    assert store.read_latest(store.site_sensor_ids(ARMES))["sensor_id"].tolist() == [66, 84]


@pytest.fixture
def at_0008(empty_database_url: str) -> Iterator[Engine]:
    """An engine on an empty database migrated to 0008_s2 only, on SQLite and on the real PostgreSQL."""
    engine = migrated_to(empty_database_url, "0008_s2")
    yield engine
    engine.dispose()


ROWS = [
    "INSERT INTO sensors (id, name, unit, resolution_seconds) VALUES (61, 'cp001_power', 'kW', 900), "
    "(66, 'cp006_power', 'kW', 900), (84, 'consumption_price', 'EUR/MWh', 900), (999, 'gone', 'kW', 900)",
    "INSERT INTO ocpp_outbox (id, station_id, evse_id, profile_id, stack_level, purpose, correlation_id, payload, "
    "payload_hash, status, transport, valid_to, created_at, updated_at) VALUES "
    f"(1, 'CP001', 1, 1, 0, 'TxDefaultProfile', 'c1', '{{}}', 'h', 'accepted', 'amqp', '{AT}', '{AT}', '{AT}'), "
    f"(2, 'CP006', 1, 1, 0, 'TxDefaultProfile', 'c2', '{{}}', 'h', 'pending', 'amqp', '{AT}', '{AT}', '{AT}'), "
    f"(3, 'CP099', 1, 1, 0, 'TxDefaultProfile', 'c3', '{{}}', 'h', 'pending', 'amqp', '{AT}', '{AT}', '{AT}')",
    "INSERT INTO ocpp_outbox_events (outbox_id, station_id, at, event) VALUES "
    f"(1, 'CP001', '{AT}', 'pending'), (2, 'CP006', '{AT}', 'pending'), (3, 'CP099', '{AT}', 'pending'), "
    f"(7, 'CP001', '{AT}', 'pending')",  # 7: an event whose entry is gone
    "INSERT INTO ev_sessions (station_id, transaction_id, evse_id, status, arrival, departure, "
    "departure_is_default, energy_requested_kwh, energy_is_default, updated_at) VALUES "
    f"('CP001', 'tx-1', 1, 'active', '{AT}', '{AT}', true, 20, true, '{AT}'), "
    f"('CP006', 'tx-6', 1, 'ended', '{AT}', '{AT}', true, 20, true, '{AT}')",
    "INSERT INTO ev_station_status (station_id, evse_id, connector_id, updated_at) VALUES "
    f"('CP005', 1, 1, '{AT}'), ('CP010', 1, 1, '{AT}')",
    "INSERT INTO ev_charging_needs (station_id, correlation_id, status, updated_at) VALUES "
    f"('CP006', 'n1', 'awaiting', '{AT}'), ('CP099', 'n2', 'awaiting', '{AT}')",
    "INSERT INTO s2_resources (resource_id, device, status, updated_at) VALUES "
    f"('rm-b1', 'battery_01', 'connected', '{AT}'), ('rm-v6', 'v2g_06', 'connected', '{AT}'), "
    f"('rm-x', NULL, 'uncontrolled', '{AT}')",
    "INSERT INTO s2_instructions (id, instruction_id, resource_id, device, actuator_id, operation_mode_id, "
    "operation_mode_factor, power_kw, execution_time, status, created_at, updated_at) VALUES "
    f"(1, 'i1', 'rm-b1', 'battery_01', 'a', 'm', 0.5, 2, '{AT}', 'sent', '{AT}', '{AT}'), "
    f"(2, 'i2', 'rm-v6', 'v2g_06', 'a', 'm', 0.5, 2, '{AT}', 'sent', '{AT}', '{AT}')",
    f"INSERT INTO s2_instruction_events (instruction_row, at, event) VALUES (1, '{AT}', 'sent'), (2, '{AT}', 'sent')",
    "INSERT INTO s2_messages (resource_id, connection_id, direction, message_type, payload, at) VALUES "
    f"('rm-b1', 'k1', 'in', 'ResourceManagerDetails', '{{}}', '{AT}'), "
    f"('rm-v6', 'k2', 'in', 'ResourceManagerDetails', '{{}}', '{AT}'), "
    f"('rm-x', 'k3', 'in', 'ResourceManagerDetails', '{{}}', '{AT}'), (NULL, 'k3', 'in', 'Handshake', '{{}}', '{AT}')",
]
# table -> (the query giving (key, site) per row, ordered)
PLACED = {
    "sensors": "SELECT id, site_id FROM sensors ORDER BY id",
    "ocpp_outbox": "SELECT station_id, site_id FROM ocpp_outbox ORDER BY id",
    "ocpp_outbox_events": "SELECT outbox_id, site_id FROM ocpp_outbox_events ORDER BY id",
    "ev_sessions": "SELECT station_id, site_id FROM ev_sessions ORDER BY station_id",
    "ev_station_status": "SELECT station_id, site_id FROM ev_station_status ORDER BY station_id",
    "ev_charging_needs": "SELECT station_id, site_id FROM ev_charging_needs ORDER BY station_id",
    "s2_resources": "SELECT resource_id, site_id FROM s2_resources ORDER BY resource_id",
    "s2_instructions": "SELECT device, site_id FROM s2_instructions ORDER BY id",
    "s2_instruction_events": "SELECT instruction_row, site_id FROM s2_instruction_events ORDER BY id",
    "s2_messages": "SELECT message_type, site_id FROM s2_messages ORDER BY id",
}


def _migrated(engine: Engine) -> dict[str, list[tuple]]:
    with engine.begin() as connection:
        for statement in ROWS:
            connection.execute(text(statement))
    upgrade_to_head(engine)
    with engine.connect() as connection:
        return {table: [tuple(row) for row in connection.execute(text(query))] for table, query in PLACED.items()}


def test_the_migration_places_existing_rows_in_the_two_martinique_sites(at_0008: Engine, monkeypatch,
                                                                        caplog) -> None:
    monkeypatch.setenv(PORTFOLIO_FILE_ENV, str(PORTFOLIO))
    with caplog.at_level(logging.WARNING, logger="cariflex_pipeline.store.migrate"):
        placed = _migrated(at_0008)
    assert placed == {
        "sensors": [(61, SIMON), (66, ARMES), (84, None), (999, "")],
        "ocpp_outbox": [("CP001", SIMON), ("CP006", ARMES), ("CP099", "")],
        "ocpp_outbox_events": [(1, SIMON), (2, ARMES), (3, ""), (7, "")],
        "ev_sessions": [("CP001", SIMON), ("CP006", ARMES)],
        "ev_station_status": [("CP005", SIMON), ("CP010", ARMES)],
        "ev_charging_needs": [("CP006", ARMES), ("CP099", "")],
        "s2_resources": [("rm-b1", SIMON), ("rm-v6", ARMES), ("rm-x", "")],
        "s2_instructions": [("battery_01", SIMON), ("v2g_06", ARMES)],
        "s2_instruction_events": [(1, SIMON), (2, ARMES)],
        "s2_messages": [("ResourceManagerDetails", SIMON), ("ResourceManagerDetails", ARMES),
                        ("ResourceManagerDetails", ""), ("Handshake", "")],
    }
    assert "0009_site_keys: 2 row(s) of ocpp_outbox_events placed in no site" in caplog.text
    assert "0009_site_keys: 1 row(s) of sensors placed in no site" in caplog.text


def test_the_migration_places_everything_in_the_one_default_site(at_0008: Engine, monkeypatch) -> None:
    monkeypatch.delenv(PORTFOLIO_FILE_ENV, raising=False)  # the site file: one site, cariflex-martinique
    placed = _migrated(at_0008)
    assert placed["sensors"] == [(61, ONE), (66, ONE), (84, ONE), (999, "")]
    assert placed["ocpp_outbox"] == [("CP001", ONE), ("CP006", ONE), ("CP099", "")]
    assert placed["s2_messages"] == [("ResourceManagerDetails", ONE), ("ResourceManagerDetails", ONE),
                                     ("ResourceManagerDetails", ""), ("Handshake", "")]
    for table in ("ev_sessions", "ev_station_status", "s2_resources", "s2_instructions", "s2_instruction_events"):
        assert {site for _, site in placed[table]} <= {ONE, ""} and ONE in {site for _, site in placed[table]}
    assert [site for _, site in placed["ev_sessions"]] == [ONE, ONE]
