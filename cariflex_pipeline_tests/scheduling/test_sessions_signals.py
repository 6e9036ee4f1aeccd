"""The session day template and the store <-> slot-grid helpers."""

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from cariflex_pipeline.scheduling import ProblemError, resolve
from cariflex_pipeline.scheduling.sessions import load_day_template, sessions_for_horizon, sessions_from_live
from cariflex_pipeline.scheduling.signals import current_slot, on_slots
from cariflex_pipeline_tests.scheduling.helpers import problem

START = datetime(2026, 11, 28, 16, 0, tzinfo=UTC)  # 12:00 in Martinique


def test_bundled_day_covers_every_charge_point_and_resolves(site):
    template = load_day_template()
    assert {s["charge_point"] for s in template["sessions"]} == {f"CP{i:03d}" for i in range(1, 11)}
    sessions = sessions_for_horizon(template, START, START + timedelta(hours=24))
    # today's sessions still plugged in at noon, tonight's and tomorrow morning's; no overlap at a point
    ids = {s.id for s in sessions}
    assert "cp001-commuter@2026-11-28" in ids and "cp001-evening@2026-11-28" in ids
    assert "cp002-fleet-van@2026-11-28" not in ids  # left at 07:30, before the horizon
    assert "cp002-fleet-van@2026-11-29" in ids
    resolve(problem([50.0] * 96, sessions).model_copy(update={"start": START}), site)


def test_template_times_are_local_with_next_day_marker(tmp_path):
    path = tmp_path / "day.json"
    path.write_text(json.dumps({"timezone": "America/Martinique", "sessions": [
        {"id": "n", "charge_point": "CP001", "arrival": "22:00", "departure": "06:00+1", "energy_needed_kwh": 5}]}))
    [session] = sessions_for_horizon(load_day_template(path), START, START + timedelta(hours=12))
    assert session.arrival == datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    assert session.departure == datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def test_sessions_already_plugged_in_keep_the_share_still_ahead(tmp_path):
    path = tmp_path / "day.json"
    path.write_text(json.dumps({"timezone": "America/Martinique", "sessions": [
        {"id": "e", "charge_point": "CP001", "arrival": "10:00", "departure": "14:00", "energy_needed_kwh": 40},
        {"id": "s", "charge_point": "CP002", "arrival": "11:00", "departure": "13:00", "soc_now": 0.2,
         "soc_target": 0.8, "battery_capacity_kwh": 50}]}))
    energy, soc = sessions_for_horizon(load_day_template(path), START, START + timedelta(hours=4))
    assert energy.energy_kwh() == pytest.approx(20)  # noon: half of 10:00-14:00 is behind
    assert soc.soc_now == pytest.approx(0.5) and soc.energy_kwh() == pytest.approx(15)


def test_bad_template_entries_are_named(tmp_path):
    path = tmp_path / "day.json"
    path.write_text(json.dumps({"sessions": [
        {"id": "bad", "charge_point": "CP001", "arrival": "7h", "departure": "09:00", "energy_needed_kwh": 5}]}))
    with pytest.raises(ProblemError, match=r"entry 'bad': time '7h' is not HH:MM"):
        sessions_for_horizon(load_day_template(path), START, START + timedelta(hours=12))
    path.write_text(json.dumps({"sessions": [
        {"id": "neg", "charge_point": "CP001", "arrival": "07:00", "departure": "09:00", "energy_needed_kwh": -1}]}))
    with pytest.raises(ProblemError, match=r"entry 'neg'.*negative"):
        sessions_for_horizon(load_day_template(path), START, START + timedelta(hours=48))
    with pytest.raises(ProblemError, match="cannot be read"):
        load_day_template(tmp_path / "missing.json")


def test_current_slot_floors_to_the_quarter_hour():
    assert current_slot(datetime(2026, 11, 28, 12, 14, 59, tzinfo=UTC)) == datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_on_slots_spreads_hourly_values_and_leaves_gaps():
    frame = pd.DataFrame({
        "sensor_id": [84, 84, 41, 42],
        "event_start": pd.to_datetime([START, START + timedelta(hours=2), START, START], utc=True),
        "event_resolution": pd.to_timedelta([3600, 900, 900, 900], unit="s"),
        "value": [90.0, 70.0, 2.0, 3.0],
    })
    assert on_slots(frame, [84], START, 10) == [90.0] * 4 + [None] * 4 + [70.0, None]
    assert on_slots(frame, [41, 42], START, 2) == [5.0, None]


def test_a_lost_transaction_end_does_not_refuse_the_whole_schedule(site):
    # CP001 still has t1 active (its Ended never arrived) when t2 starts there; CP002 is unaffected
    def record(station, transaction, arrival_h):
        return {"station_id": station, "evse_id": 1, "transaction_id": transaction,
                "arrival": START + timedelta(hours=arrival_h), "departure": START + timedelta(hours=3),
                "energy_needed_kwh": 10.0}
    live = [record("CP001", "t2", -1), record("CP002", "t9", -2), record("CP001", "t1", -5)]
    sessions, superseded = sessions_from_live(live, START, timedelta(minutes=15))
    assert sorted(s.id for s in sessions) == ["CP001:t2", "CP002:t9"]
    assert superseded == ["CP001:t1"]
    resolve(problem([50.0] * 12, sessions).model_copy(update={"start": START}), site)
