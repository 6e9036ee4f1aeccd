"""Every row keyed by its portfolio site: sensors, the outbox and its events, EV sessions, station status, EV
charging needs, S2 resources, instructions, their events and messages get `site_id`.

Rows present before this revision get their site from the deployment's portfolio (`load_portfolio()`:
$CARIFLEX_PORTFOLIO_FILE, else the site file as its one site, `cariflex-martinique` for the bundled one): a
station's rows the site of its charge point, a sensor its owning site (NULL for a shared one), an S2 resource and
an instruction the site of their device, an event its entry's or instruction's, a message its RM's. A row the
portfolio cannot place (a station, device or sensor no site has) gets "" (`NO_SITE`), and the migration logs how
many per table. An empty store never reads the portfolio, so a new deployment migrates without one.

Revision ID: 0009_site_keys
Revises: 0008_s2
"""

import logging
from collections.abc import Callable, Mapping

import sqlalchemy as sa
from alembic import op

from cariflex_pipeline.site_model import Portfolio, load_portfolio

revision = "0009_site_keys"
down_revision = "0008_s2"
branch_labels = None
depends_on = None

LOG = logging.getLogger("cariflex_pipeline.store.migrate")
SITE_ID = sa.String(63)
NO_SITE = ""  # as cariflex_pipeline.store.schema.NO_SITE; a revision keeps its own copy of what it writes
_CHUNK = 500  # keys per IN (...): well within SQLite's and PostgreSQL's parameter limits

# table -> (index name, its columns), in the order the rows are placed: a parent before the rows that follow it
INDEXES = {
    "sensors": ("ix_sensors_site", ["site_id"]),
    "ocpp_outbox": ("ix_ocpp_outbox_site_status", ["site_id", "status"]),
    "ocpp_outbox_events": ("ix_ocpp_outbox_events_site", ["site_id"]),
    "ev_sessions": ("ix_ev_sessions_site_status", ["site_id", "status"]),
    "ev_station_status": ("ix_ev_station_status_site", ["site_id"]),
    "ev_charging_needs": ("ix_ev_charging_needs_site", ["site_id"]),
    "s2_resources": ("ix_s2_resources_site", ["site_id"]),
    "s2_instructions": ("ix_s2_instructions_site_status", ["site_id", "status"]),
    "s2_instruction_events": ("ix_s2_instruction_events_site", ["site_id"]),
    "s2_messages": ("ix_s2_messages_site", ["site_id", "at"]),
}
# table -> (its column, the portfolio's map from that column's value to a site)
BY_KEY: dict[str, tuple[str, Callable[[Portfolio], Mapping[object, str | None]]]] = {
    "sensors": ("id", Portfolio.sensor_sites),
    "ocpp_outbox": ("station_id", Portfolio.station_sites),
    "ev_sessions": ("station_id", Portfolio.station_sites),
    "ev_station_status": ("station_id", Portfolio.station_sites),
    "ev_charging_needs": ("station_id", Portfolio.station_sites),
    "s2_resources": ("device", Portfolio.device_sites),
    "s2_instructions": ("device", Portfolio.device_sites),
}
# table -> (its column, the parent table, the parent's key): the row takes its parent's site
BY_PARENT = {
    "ocpp_outbox_events": ("outbox_id", "ocpp_outbox", "id"),
    "s2_instruction_events": ("instruction_row", "s2_instructions", "id"),
    "s2_messages": ("resource_id", "s2_resources", "resource_id"),
}


def upgrade() -> None:
    bind = op.get_bind()
    for table in INDEXES:
        op.add_column(table, sa.Column("site_id", SITE_ID))
    if any(bind.execute(sa.select(sa.literal(1)).select_from(sa.table(table)).limit(1)).first() is not None
           for table in INDEXES):
        _place_rows(bind, load_portfolio())
    for table, (index, columns) in INDEXES.items():
        if table != "sensors":  # NULL is a shared sensor
            with op.batch_alter_table(table) as batch:
                batch.alter_column("site_id", existing_type=SITE_ID, nullable=False)
        op.create_index(index, table, columns)


def _place_rows(bind: sa.Connection, portfolio: Portfolio) -> None:
    for table, (column, sites_of) in BY_KEY.items():
        key = sa.column(column)
        target = sa.table(table, key, sa.column("site_id"))
        found = [row[0] for row in bind.execute(sa.select(key).select_from(target).distinct())]
        sites = sites_of(portfolio)
        groups: dict[str | None, list[object]] = {}
        for value in found:
            if value is not None:
                groups.setdefault(sites.get(value, NO_SITE), []).append(value)
        groups.pop(None, None)  # a shared sensor keeps NULL
        for site_id, values in groups.items():
            for start in range(0, len(values), _CHUNK):
                bind.execute(sa.update(target).where(key.in_(values[start:start + _CHUNK])).values(site_id=site_id))
        if table != "sensors":  # a row whose key is NULL (an RM that named no device) is placed nowhere
            bind.execute(sa.update(target).where(target.c.site_id.is_(None)).values(site_id=NO_SITE))
        _log_unplaced(bind, target, column)
    for table, (column, parent_table, parent_key) in BY_PARENT.items():
        target = sa.table(table, sa.column(column), sa.column("site_id"))
        parent = sa.table(parent_table, sa.column(parent_key), sa.column("site_id"))
        parent_site = (sa.select(parent.c.site_id).where(parent.c[parent_key] == target.c[column])
                       .scalar_subquery())
        bind.execute(sa.update(target).values(site_id=sa.func.coalesce(parent_site, NO_SITE)))
        _log_unplaced(bind, target, column)


def _log_unplaced(bind: sa.Connection, target: sa.TableClause, column: str) -> None:
    count = bind.scalar(sa.select(sa.func.count()).select_from(target).where(target.c.site_id == NO_SITE))
    if count:
        LOG.warning("0009_site_keys: %d row(s) of %s placed in no site (site_id ''): their %s is in no site of the "
                    "portfolio", count, target.name, column)


def downgrade() -> None:
    for table, (index, _columns) in reversed(INDEXES.items()):
        op.drop_index(index, table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("site_id")
