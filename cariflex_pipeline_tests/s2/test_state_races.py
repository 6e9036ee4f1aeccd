"""The CEM and a staging run change the same instruction rows from two processes: each change is checked against
the row as it is when it is written, so a late answer never undoes a revocation and a row superseded meanwhile is
never sent (found as a flaky run of test_a_new_plan_revokes_the_instructions_it_replaces)."""

from __future__ import annotations

from datetime import timedelta

from cariflex_pipeline.s2 import state
from cariflex_pipeline.s2.frbc import ModeRange, Setpoint
from cariflex_pipeline.store import TimeSeriesStore
from cariflex_pipeline_tests.s2.conftest import NOW

RESOURCE = "battery-rm"
CHARGE = ModeRange(actuator_id="a1", mode_id="charge", label="charge", start_kw=0.0, end_kw=5.0)
SLOT = timedelta(minutes=15)


def _plan(store: TimeSeriesStore, key: str, *powers: float) -> state.Staged:
    points = [Setpoint(NOW + i * SLOT, power, CHARGE, power / 5.0) for i, power in enumerate(powers)]
    return state.stage_setpoints(store.engine, RESOURCE, "battery_01", points, key, NOW, site_id="cariflex-martinique")


def _rows(store: TimeSeriesStore) -> list[tuple[float, str]]:
    return [(row["power_kw"], row["status"]) for row in state.instructions(store.engine, RESOURCE)]


def test_a_late_acceptance_does_not_undo_a_revocation(store: TimeSeriesStore) -> None:
    _plan(store, "plan-1", 5.0, 2.0)
    second = state.instructions(store.engine, RESOURCE)[1]
    assert state.transition(store.engine, second["id"], "sent", NOW, only_from=("pending",))
    assert _plan(store, "plan-2", 5.0, 1.0) == state.Staged(kept=1, added=1, superseded=0, revoking=1)
    # the RM's acceptance of the replaced instruction arrives after the new plan was staged
    moved = state.transition(store.engine, second["id"], "accepted", NOW, "InstructionStatusUpdate ACCEPTED",
                             only_from=state.ANSWERABLE_STATUSES)
    assert moved is False
    assert sorted(_rows(store)) == [(1.0, "pending"), (2.0, "revoking"), (5.0, "pending")]
    events = [event["event"] for event in state.instruction_events(store.engine, second["id"])]
    assert events == ["pending", "sent", "revoking"]  # no change, so no history line claiming one
    # an end answered by the RM still moves it: nothing is left to revoke
    assert state.transition(store.engine, second["id"], "revoked", NOW, "RevokeObject received")
    assert (2.0, "revoked") in _rows(store)


def test_a_row_sent_after_staging_read_it_is_revoked_not_superseded(store: TimeSeriesStore, monkeypatch) -> None:
    _plan(store, "plan-1", 5.0, 2.0)
    read_before_sending = state.in_force(store.engine, RESOURCE, NOW)
    second = read_before_sending[1]
    assert state.transition(store.engine, second["id"], "sent", NOW, only_from=("pending",))  # the CEM, meanwhile
    monkeypatch.setattr(state, "in_force", lambda *args: read_before_sending)  # staging's read came first
    assert _plan(store, "plan-2", 5.0, 1.0) == state.Staged(kept=1, added=1, superseded=0, revoking=1)
    assert (2.0, "revoking") in _rows(store)


def test_a_row_superseded_after_the_cem_read_it_is_never_sent(store: TimeSeriesStore) -> None:
    _plan(store, "plan-1", 5.0, 2.0)
    pending = state.instructions(store.engine, RESOURCE, ["pending"])  # the CEM's read
    _plan(store, "plan-2", 5.0, 1.0)  # staging, meanwhile: the 2 kW row is superseded
    sent = [row["power_kw"] for row in pending
            if state.transition(store.engine, row["id"], "sent", NOW, only_from=("pending",))]
    assert sent == [5.0]
    assert sorted(_rows(store)) == [(1.0, "pending"), (2.0, "superseded"), (5.0, "sent")]
