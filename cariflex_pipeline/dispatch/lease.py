"""One dispatch run per site at a time, from storing its profiles in the outbox to recording what the transport did
with them: a lease row per site (`ocpp_dispatch_leases`), taken by compare-and-set, the same on SQLite and
PostgreSQL.

Without it two runs of one site (the 15-minute tick and a run a session change requested) interleave: the second
supersedes the first's pending entry while the first is sending it (the station gets the profile twice), or sends
its newer plan before the first's older one reaches the station (the station keeps the older plan, the outbox says
the newer). With it the second run waits, then works from what the first one stored and sent.

The lease runs out at `expires_at` (wall clock, UTC): a run that crashed holding it delays the next one by at most
`ttl`. A run that outlives its lease is told when it gives the lease back (logged as an error): another run may
have dispatched the same site meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, and_, delete, select

from cariflex_pipeline.dispatch.tables import ocpp_dispatch_leases
from cariflex_pipeline.store.bulk import dialect_insert
from cariflex_pipeline.store.times import from_db_time, to_db_time

LOG = logging.getLogger(__name__)

# longer than storing and sending a site's profiles takes (REST: up to 20 s per station with a clear first), shorter
# than the 15-minute tick, so a crashed run costs at most one tick
DEFAULT_LEASE_TTL = timedelta(minutes=10)
_POLL_SECONDS = 0.2


class LeaseTimeoutError(RuntimeError):
    """Another run held the site's lease for longer than this run would wait."""


def _try_acquire(engine: Engine, site_id: str, run_id: str, ttl: timedelta) -> bool:
    """Take the site's lease if it is free or has run out: one INSERT ... ON CONFLICT DO UPDATE ... WHERE, so two
    runs trying at once cannot both succeed (the row is the unit both stores serialize)."""
    now = datetime.now(UTC)
    statement = dialect_insert(engine.dialect.name, ocpp_dispatch_leases).values(
        site_id=site_id, run_id=run_id, expires_at=to_db_time(engine, now + ttl))
    statement = statement.on_conflict_do_update(
        index_elements=[ocpp_dispatch_leases.c.site_id],
        set_={"run_id": statement.excluded.run_id, "expires_at": statement.excluded.expires_at},
        where=ocpp_dispatch_leases.c.expires_at <= to_db_time(engine, now))
    with engine.begin() as connection:
        return connection.execute(statement).rowcount == 1


def _holder(engine: Engine, site_id: str) -> str:
    with engine.connect() as connection:
        row = connection.execute(select(ocpp_dispatch_leases).where(ocpp_dispatch_leases.c.site_id == site_id)).first()
    return "nobody" if row is None else f"run {row.run_id} until {from_db_time(row.expires_at).isoformat()}"


@contextmanager
def site_lease(engine: Engine, site_id: str, run_id: str, *, ttl: timedelta = DEFAULT_LEASE_TTL,
               wait: timedelta | None = None) -> Iterator[None]:
    """Hold `site_id`'s dispatch lease for the block, waiting up to `wait` (default: `ttl`, by when a crashed
    holder's lease has run out) for the run holding it; LeaseTimeoutError when it is still held then."""
    deadline = time.monotonic() + (ttl if wait is None else wait).total_seconds()
    while not _try_acquire(engine, site_id, run_id, ttl):
        if time.monotonic() >= deadline:
            raise LeaseTimeoutError(f"site {site_id}: dispatch run {run_id} waited "
                                    f"{(ttl if wait is None else wait).total_seconds():g} s for the dispatch lease, "
                                    f"held by {_holder(engine, site_id)}; nothing stored or sent")
        time.sleep(_POLL_SECONDS)
    try:
        yield
    finally:
        with engine.begin() as connection:
            released = connection.execute(delete(ocpp_dispatch_leases).where(and_(
                ocpp_dispatch_leases.c.site_id == site_id, ocpp_dispatch_leases.c.run_id == run_id))).rowcount
        if released != 1:
            LOG.error("site %s: dispatch run %s outlived its %g s lease (now %s): another run may have dispatched "
                      "the site at the same time", site_id, run_id, ttl.total_seconds(), _holder(engine, site_id))
