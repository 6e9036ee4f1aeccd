"""The site dispatch lease on SQLite and the real PostgreSQL: one holder at a time, free again when given back or
run out (a crashed holder), and a waiter that gives up says who holds it."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from cariflex_pipeline.dispatch.lease import LeaseTimeoutError, _try_acquire, site_lease


def test_a_second_run_waits_for_the_first_to_give_the_lease_back(store) -> None:
    order: list[str] = []
    held = threading.Event()

    def first() -> None:
        with site_lease(store.engine, "site-a", "run-1"):
            held.set()
            time.sleep(0.5)
            order.append("run-1 done")

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(timeout=10)
    with site_lease(store.engine, "site-a", "run-2"):
        order.append("run-2 in")
    thread.join(timeout=10)
    assert order == ["run-1 done", "run-2 in"]


def test_another_site_is_not_kept_waiting(store) -> None:
    with site_lease(store.engine, "site-a", "run-1"), site_lease(store.engine, "site-b", "run-2", wait=timedelta(0)):
        pass


def test_a_lease_still_held_times_out_naming_its_holder_and_a_crashed_one_runs_out(store) -> None:
    assert _try_acquire(store.engine, "site-a", "run-1", timedelta(seconds=1))  # never given back: run-1 crashed
    assert not _try_acquire(store.engine, "site-a", "run-2", timedelta(seconds=1))
    with pytest.raises(LeaseTimeoutError, match="held by run run-1 until"), \
            site_lease(store.engine, "site-a", "run-2", wait=timedelta(0)):
        pass
    started = time.monotonic()
    with site_lease(store.engine, "site-a", "run-2", wait=timedelta(seconds=5)):
        assert time.monotonic() - started < 3
