"""OpenADR per site: `openadr_events` and `openadr_absences` get a `site_id` in their keys, `openadr_ven_state` is
keyed by (VTN URL, VEN name).

Each site ingests every event for itself, with its own mappings, into its own audit rows: one site's stored
version never makes another skip the event. The VEN state is not per site: sites sharing a VEN name are one VEN
at the VTN, registered once (docs/fleet.md).

Existing rows belong to the deployment's portfolio (`load_portfolio()`: $CARIFLEX_PORTFOLIO_FILE, else the site
file, one site `cariflex-martinique`), loaded only when there are rows to carry over:
- every audit row and absence is copied to every site of the portfolio, its `sensor_ids` cut to the sensors that
  site has (its own and the shared ones). The values those versions wrote are on those sensors already, so each
  site knows its stored versions and withdraws their values when they change; no site re-ingests (and, in 2.0b,
  answers again) what the one-site deployment had stored. A row's sensors that a site does not have are not its
  to withdraw;
- the VEN state row of a VTN (the one-site VEN's registration) goes to the VEN name of the portfolio's first site;
  a site of another VEN name registers on first use.

Revision ID: 0010_openadr_sites
Revises: 0009_site_keys
"""

from collections.abc import Iterable

import sqlalchemy as sa
from alembic import op

revision = "0010_openadr_sites"
down_revision = "0009_site_keys"
branch_labels = None
depends_on = None

SITE_ID = sa.String(63)
VEN_NAME = sa.String(200)
EVENT_COLUMNS = ("vtn_id", "event_id", "modification_number", "protocol", "program", "status", "raw_payload",
                 "received_at", "covered_start", "covered_end", "sensor_ids", "values_written")

events = sa.table("openadr_events", sa.column("id"), sa.column("site_id"),
                  *(sa.column(name) for name in EVENT_COLUMNS))
absences = sa.table("openadr_absences", sa.column("site_id"), sa.column("vtn_id"), sa.column("event_id"),
                    sa.column("absent_since"), sa.column("withdrawn_at"))
ven_state = sa.table("openadr_ven_state", sa.column("vtn_url"), sa.column("ven_name"))


def _sites() -> list[tuple[str, set[int], str]]:
    """(site id, its sensor ids, its VEN name) of each site of the deployment's portfolio, in file order."""
    from cariflex_pipeline.site_model import load_portfolio  # the portfolio as it is deployed now

    portfolio = load_portfolio()
    sites = [(site_id, portfolio.site(site_id)) for site_id in portfolio.site_ids]
    return [(site_id, {sensor.id for sensor in site.sensors}, site.openadr.ven_name if site.openadr else "cariflex")
            for site_id, site in sites]


def _kept(sensor_ids: str, site_sensors: set[int]) -> str:
    return ",".join(part for part in sensor_ids.split(",") if part and int(part) in site_sensors)


def _has_rows(table: sa.TableClause) -> bool:
    return op.get_bind().execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is not None


def _insert(table: sa.TableClause, rows: Iterable[dict]) -> None:
    rows = list(rows)
    if rows:
        op.get_bind().execute(table.insert(), rows)


def upgrade() -> None:
    sites = _sites() if any(_has_rows(table) for table in (events, absences, ven_state)) else []
    _upgrade_events(sites)
    _upgrade_absences(sites)
    _upgrade_ven_state(sites)


def _upgrade_events(sites: list[tuple[str, set[int], str]]) -> None:
    with op.batch_alter_table("openadr_events") as batch:
        batch.add_column(sa.Column("site_id", SITE_ID, nullable=True))
    bind = op.get_bind()
    rows = [dict(row) for row in bind.execute(sa.select(events)).mappings()]
    if sites:
        first_id, first_sensors, _ = sites[0]
        bind.execute(events.update().values(site_id=first_id))
        for row in rows:  # the first site keeps the rows, with only the sensors it has
            kept = _kept(row["sensor_ids"], first_sensors)
            if kept != row["sensor_ids"]:
                bind.execute(events.update().where(events.c.id == row["id"]).values(sensor_ids=kept))
    with op.batch_alter_table("openadr_events") as batch:
        batch.alter_column("site_id", existing_type=SITE_ID, nullable=False)
        batch.drop_constraint("uq_openadr_events_version", type_="unique")
        batch.create_unique_constraint("uq_openadr_events_version",
                                       ["site_id", "vtn_id", "event_id", "modification_number"])
        batch.drop_index("ix_openadr_events_vtn_event")
        batch.create_index("ix_openadr_events_vtn_event", ["site_id", "vtn_id", "event_id"])
    # the other sites' copies, now that a version is unique per site
    _insert(events, ({**{name: row[name] for name in EVENT_COLUMNS}, "site_id": site_id,
                      "sensor_ids": _kept(row["sensor_ids"], sensors)}
                     for site_id, sensors, _ven in sites[1:] for row in rows))


def _upgrade_absences(sites: list[tuple[str, set[int], str]]) -> None:
    with op.batch_alter_table("openadr_absences") as batch:
        batch.add_column(sa.Column("site_id", SITE_ID, nullable=True))
    bind = op.get_bind()
    rows = [dict(row) for row in bind.execute(sa.select(absences)).mappings()]
    if sites:
        bind.execute(absences.update().values(site_id=sites[0][0]))
    _rekey("openadr_absences", sa.Column("site_id", SITE_ID, primary_key=True), ["site_id", "vtn_id", "event_id"])
    _insert(absences, ({**row, "site_id": site_id} for site_id, _sensors, _ven in sites[1:] for row in rows))


def _upgrade_ven_state(sites: list[tuple[str, set[int], str]]) -> None:
    with op.batch_alter_table("openadr_ven_state") as batch:
        batch.add_column(sa.Column("ven_name", VEN_NAME, nullable=True))
    if sites:
        op.get_bind().execute(ven_state.update().values(ven_name=sites[0][2]))
    _rekey("openadr_ven_state", sa.Column("ven_name", VEN_NAME, primary_key=True), ["vtn_url", "ven_name"])


def _rekey(table: str, column: sa.Column, key: list[str]) -> None:
    """`column`, now filled, becomes NOT NULL and part of the table's primary key `key`. SQLite rebuilds the table,
    reading `column` as a key column already (so that the rebuilt table's key is `key` without a conflict);
    PostgreSQL swaps its named key."""
    with op.batch_alter_table(table, reflect_args=[column]) as batch:
        batch.alter_column(column.name, existing_type=column.type, nullable=False)
        if op.get_bind().dialect.name == "postgresql":
            batch.drop_constraint(f"{table}_pkey", type_="primary")
        batch.create_primary_key(f"{table}_pkey", key)


def downgrade() -> None:
    # back to one site: the portfolio's first keeps its rows (a one-site deployment: all of them)
    sites = _sites() if any(_has_rows(table) for table in (events, absences, ven_state)) else []
    if sites:
        site_id, _sensors, ven_name = sites[0]
        op.execute(events.delete().where(events.c.site_id != site_id))
        op.execute(absences.delete().where(absences.c.site_id != site_id))
        op.execute(ven_state.delete().where(ven_state.c.ven_name != ven_name))
    with op.batch_alter_table("openadr_ven_state") as batch:
        if op.get_bind().dialect.name == "postgresql":
            batch.drop_constraint("openadr_ven_state_pkey", type_="primary")
        batch.drop_column("ven_name")
        batch.create_primary_key("openadr_ven_state_pkey", ["vtn_url"])
    with op.batch_alter_table("openadr_absences") as batch:
        if op.get_bind().dialect.name == "postgresql":
            batch.drop_constraint("openadr_absences_pkey", type_="primary")
        batch.drop_column("site_id")
        batch.create_primary_key("openadr_absences_pkey", ["vtn_id", "event_id"])
    with op.batch_alter_table("openadr_events") as batch:
        batch.drop_index("ix_openadr_events_vtn_event")
        batch.drop_constraint("uq_openadr_events_version", type_="unique")
        batch.drop_column("site_id")
        batch.create_unique_constraint("uq_openadr_events_version", ["vtn_id", "event_id", "modification_number"])
        batch.create_index("ix_openadr_events_vtn_event", ["vtn_id", "event_id"])
