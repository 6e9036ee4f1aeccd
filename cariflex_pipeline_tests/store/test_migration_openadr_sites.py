"""`0010_openadr_sites` carries a store's OpenADR rows over to the deployment's sites, on SQLite and PostgreSQL.

The store is migrated to `0008_s2` (before any site key), rows go in by plain SQL as the one-site code wrote them,
then the store migrates to head: the one site gets every row; a fleet copies them to each site, each copy keeping
only the sensors that site has; the VEN state goes to the first site's VEN name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, text

from cariflex_pipeline.openadr.repository import AbsenceLog, EventLog, VenStateStore
from cariflex_pipeline.store.migrate import alembic_config, upgrade_to_head
from cariflex_pipeline_tests.conftest import migrated_to
from cariflex_pipeline_tests.store.test_migrations_match_metadata import differences

import cariflex_pipeline.site_model as site_model  # isort: skip
from cariflex_pipeline.store.schema import metadata  # isort: skip

FLEET = Path(site_model.__file__).with_name("martinique_portfolio.yaml")
VTN_URL = "http://vtn.example/OpenADR2/Simple/2.0b"


@pytest.fixture
def engine_at_0008(empty_database_url: str) -> Iterator[Engine]:
    engine = migrated_to(empty_database_url, "0008_s2")
    with engine.begin() as connection:  # as the one-site code wrote them
        for event_id, modification, sensors, status in (("price-1", 2, "84", "active"),
                                                         ("mixed-1", 0, "61,84", "active"),
                                                         ("gone-1", 1, "", "cancelled")):
            connection.execute(text(
                "INSERT INTO openadr_events (vtn_id, event_id, modification_number, protocol, program, status, "
                "raw_payload, received_at, covered_start, covered_end, sensor_ids, values_written) VALUES "
                "('VTN', :event_id, :modification, '2.0b', 'oadr://price', :status, '<x/>', "
                "'2026-11-10 10:00:00+00:00', '2026-11-10 04:00:00+00:00', '2026-11-11 04:00:00+00:00', :sensors, 96)"
            ), {"event_id": event_id, "modification": modification, "sensors": sensors, "status": status})
        connection.execute(text("INSERT INTO openadr_absences (vtn_id, event_id, absent_since, withdrawn_at) VALUES "
                                "('vtn3', 'deleted-1', '2026-11-10 10:00:00+00:00', NULL)"))
        connection.execute(text("INSERT INTO openadr_ven_state (vtn_url, protocol, vtn_id, ven_id, registration_id, "
                                "updated_at) VALUES (:url, '2.0b', 'VTN', 'ven_1', 'reg_1', "
                                "'2026-11-10 10:00:00+00:00')"), {"url": VTN_URL})
    yield engine
    engine.dispose()


def _versions(engine: Engine, site_id: str) -> dict[str, tuple[int, tuple[int, ...]]]:
    return {event_id: (record.modification_number, record.sensor_ids)
            for (_vtn, event_id), record in EventLog(engine, site_id=site_id).latest_versions().items()}


def test_one_site_gets_every_row(engine_at_0008: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARIFLEX_PORTFOLIO_FILE", raising=False)
    monkeypatch.delenv("CARIFLEX_SITE_FILE", raising=False)
    upgrade_to_head(engine_at_0008)
    assert differences(engine_at_0008, metadata) == []
    assert _versions(engine_at_0008, "cariflex-martinique") == {
        "price-1": (2, (84,)), "mixed-1": (0, (61, 84)), "gone-1": (1, ())}
    assert list(AbsenceLog(engine_at_0008, site_id="cariflex-martinique").of("vtn3")) == ["deleted-1"]
    state = VenStateStore(engine_at_0008).load(VTN_URL, "cariflex-martinique")
    assert state is not None and (state.ven_id, state.registration_id) == ("ven_1", "reg_1")


def test_a_fleet_copies_the_rows_to_each_site_with_the_sensors_it_has(engine_at_0008: Engine,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARIFLEX_PORTFOLIO_FILE", str(FLEET))
    upgrade_to_head(engine_at_0008)
    assert differences(engine_at_0008, metadata) == []
    # sensor 61 is CP001's, of pointe-simon: place-d-armes must never withdraw values there
    assert _versions(engine_at_0008, "pointe-simon") == {
        "price-1": (2, (84,)), "mixed-1": (0, (61, 84)), "gone-1": (1, ())}
    assert _versions(engine_at_0008, "place-d-armes") == {
        "price-1": (2, (84,)), "mixed-1": (0, (84,)), "gone-1": (1, ())}
    for site_id in ("pointe-simon", "place-d-armes"):
        assert list(AbsenceLog(engine_at_0008, site_id=site_id).of("vtn3")) == ["deleted-1"]
    # one VEN name for both sites: one registration, kept
    state = VenStateStore(engine_at_0008).load(VTN_URL, "cariflex-martinique")
    assert state is not None and state.registration_id == "reg_1"


def test_the_site_keys_keep_sites_apart_and_versions_unique(engine_at_0008: Engine,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARIFLEX_PORTFOLIO_FILE", str(FLEET))
    upgrade_to_head(engine_at_0008)
    insert = text("INSERT INTO openadr_events (site_id, vtn_id, event_id, modification_number, protocol, status, "
                  "raw_payload, received_at, sensor_ids, values_written) VALUES (:site, 'VTN', 'new-1', 0, '2.0b', "
                  "'active', '<x/>', '2026-11-10 10:00:00+00:00', '', 0)")
    with engine_at_0008.begin() as connection:
        connection.execute(insert, {"site": "pointe-simon"})
        connection.execute(insert, {"site": "place-d-armes"})  # the same version, another site: its own row
    with pytest.raises(Exception, match=r"(?i)unique"), engine_at_0008.begin() as connection:
        connection.execute(insert, {"site": "pointe-simon"})


def test_downgrade_keeps_the_first_site(engine_at_0008: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARIFLEX_PORTFOLIO_FILE", str(FLEET))
    upgrade_to_head(engine_at_0008)
    config = alembic_config()
    with engine_at_0008.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0008_s2")
    with engine_at_0008.connect() as connection:
        rows = connection.execute(text("SELECT event_id, sensor_ids FROM openadr_events ORDER BY event_id")).all()
        states = connection.execute(text("SELECT vtn_url, registration_id FROM openadr_ven_state")).all()
    assert [tuple(row) for row in rows] == [("gone-1", ""), ("mixed-1", "61,84"), ("price-1", "84")]
    assert [tuple(row) for row in states] == [(VTN_URL, "reg_1")]
