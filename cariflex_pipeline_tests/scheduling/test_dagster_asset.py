"""The ev_charging_schedule asset with dg.materialize on a real SQLite store."""

import base64
import json
import struct
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from cariflex_pipeline.defs.dispatch.assets import ocpp_charging_profiles
from cariflex_pipeline.defs.resources import SHARED_RESOURCES, SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.defs.scheduling import defs as scheduling_defs
from cariflex_pipeline.defs.scheduling.assets import CHECK_NAME, SCHEDULER_SOURCE, ev_charging_schedule
from cariflex_pipeline.defs.scheduling.checks import POLICY_ENV, default_policy
from cariflex_pipeline.scheduling.__main__ import main as cli_main
from cariflex_pipeline.store import TimeSeriesStore

NOW = "2026-11-28T12:07:00-04:00"  # the horizon starts at 12:00 local = 16:00 UTC
START = datetime(2026, 11, 28, 16, 0, tzinfo=UTC)
SLOT = timedelta(minutes=15)
CP_SENSORS = list(range(61, 71))


@pytest.fixture
def store_url(store: TimeSeriesStore) -> str:
    """The store of each test, migrated with the site's sensors, on SQLite and on the real PostgreSQL."""
    return store.engine.url.render_as_string(hide_password=False)


def _write(url: str, sensor_id: int, values: dict[int, float]) -> None:
    frame = pd.DataFrame({
        "sensor_id": sensor_id,
        "event_start": [START + slot * SLOT for slot in values],
        "value": list(values.values()),
        "belief_time": START - timedelta(hours=12),
    })
    TimeSeriesStore(url).write_beliefs(frame, source="test-vtn", source_type="vtn")


def _prices(slots: range) -> dict[int, float]:
    return {t: 80.0 + 40.0 * ((t // 4) % 6 == 0) - 30.0 * (8 <= t < 20) for t in slots}


def _materialize(url: str, **config):
    return dg.materialize(
        [ev_charging_schedule],
        resources={"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=url)},
        run_config={"ops": {"ev_charging_schedule": {"config": {"now": NOW, **config}}}},
        raise_on_error=False,
    )


def _planned(url: str) -> pd.DataFrame:
    return TimeSeriesStore(url).read_latest(CP_SENSORS, sources=[SCHEDULER_SOURCE])


def test_schedule_is_written_as_planned_power_with_metadata(store_url):
    _write(store_url, 84, _prices(range(96)))
    _write(store_url, 86, {t: 50.0 for t in range(28, 40)})  # DSO: half the connection 19:00-22:00 local
    _write(store_url, 87, {t: 2.0 for t in range(32, 36)})  # and level 2 on top 20:00-21:00
    result = _materialize(store_url)
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks[CHECK_NAME].passed
    # prices known everywhere, but load control and demand response only in the evening, and the sessions are
    # the bundled template: the plan is made, and the run says what it was made on
    inputs = checks["schedule_inputs_known"]
    assert (inputs.passed, inputs.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert inputs.description == ("load control: 84 of 96 slots unknown, planned as 100 %; demand response: 92 of "
                                  "96 slots unknown, planned as level 0; sessions: the bundled day template, not "
                                  "live sessions from the bus")
    # and what is stale: load control is not known for the slot in progress, no PV forecast was written
    current = checks["signals_current"]
    assert (current.passed, current.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert current.description == "load control: no value for the slot in progress; PV forecast: none in the horizon"
    metadata = result.asset_materializations_for_node("ev_charging_schedule")[0].metadata
    for name in ("bill_eur", "unserved_penalty_eur", "tie_break_eur", "objective_total_eur", "energy_delivered_kwh",
                 "unserved_energy_kwh", "peak_site_import_kw", "solve_seconds"):
        assert isinstance(metadata[name].value, float), name
    parts = [metadata[name].value for name in ("bill_eur", "unserved_penalty_eur", "tie_break_eur")]
    assert metadata["objective_total_eur"].value == pytest.approx(sum(parts), rel=1e-12)
    assert 0 < parts[2] < 1e-3 * parts[0]  # the tie-break is not part of the bill
    assert "objective_eur" not in metadata and "cost_eur" not in metadata
    assert metadata["price_fallback"].value == "none" and metadata["price_slots_filled"].value == 0
    assert metadata["energy_after_horizon_kwh"].value > 0  # tomorrow's cars leaving after the 24-hour horizon
    assert metadata["energy_delivered_kwh"].value > 100
    assert "| slot (America/Martinique) | kW | EUR/MWh |" in metadata["schedule_CP001"].value
    connected = [row.data for row in metadata["connected_now"].value.records]
    assert connected and {row["inputs"] for row in connected} == {"SAMPLE day template"}

    planned = _planned(store_url)
    assert len(planned) == 10 * 96 and set(planned["sensor_id"]) == set(CP_SENSORS)
    assert planned["event_start"].min() == pd.Timestamp(START)
    per_slot = planned.groupby("event_start")["value"].sum()
    slot_of = ((per_slot.index - pd.Timestamp(START)) / SLOT).astype(int)
    limit = pd.Series(120.0, index=per_slot.index)
    limit[(slot_of >= 28) & (slot_of < 40)] = 60.0
    limit[(slot_of >= 32) & (slot_of < 36)] = 30.0  # 120 kW x 50 % x 0.5
    assert (per_slot <= limit + 1e-6).all()
    assert per_slot.max() > 0
    energy = planned["value"].sum() * 0.25
    assert energy == pytest.approx(metadata["energy_delivered_kwh"].value / 0.92, rel=0.05)


def test_the_run_s_problem_is_in_the_metadata_and_replays_with_the_cli(store_url, tmp_path, capsys):
    _write(store_url, 84, _prices(range(96)))
    _write(store_url, 87, {t: 1.0 for t in range(4, 8)})
    result = _materialize(store_url)
    assert result.success
    metadata = result.asset_materializations_for_node("ev_charging_schedule")[0].metadata
    path = tmp_path / "problem.json"
    path.write_text(json.dumps(metadata["problem"].value))
    assert cli_main([str(path)]) == 0
    replay = json.loads(capsys.readouterr().out)
    for name in ("bill_eur", "unserved_penalty_eur", "tie_break_eur", "objective_total_eur"):
        assert replay[name] == pytest.approx(metadata[name].value, rel=1e-9, abs=1e-9), name
    assert replay["energy_delivered_kwh"] == pytest.approx(metadata["energy_delivered_kwh"].value, rel=1e-9)
    planned = _planned(store_url)
    cp001 = planned[planned["sensor_id"] == 61].sort_values("event_start")["value"].tolist()
    assert replay["power_kw"]["CP001"] == pytest.approx(cp001, abs=1e-9)


def test_missing_prices_use_the_documented_fallback(store_url):
    _write(store_url, 84, _prices(range(40)))  # the day-ahead stops 10 h into the horizon
    result = _materialize(store_url)
    assert result.success
    metadata = result.asset_materializations_for_node("ev_charging_schedule")[0].metadata
    assert metadata["price_slots_filled"].value == 56
    assert "dearest known price" in metadata["price_fallback"].value


def test_missing_prices_with_policy_error_fail_naming_the_slots(store_url):
    _write(store_url, 84, _prices(range(40)))
    result = _materialize(store_url, missing_price_policy="error")
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "prices missing for slots 40-95" in str(failure.message) + str(failure.cause)
    assert _planned(store_url).empty


def test_no_price_at_all_is_reported_in_the_metadata(store_url):
    # what the fallback plans (earliest charging) is tested on horizon.price_fallback in test_horizon.py
    result = _materialize(store_url)
    assert result.success
    metadata = result.asset_materializations_for_node("ev_charging_schedule")[0].metadata
    assert metadata["price_fallback"].value.startswith("no price known")


def test_solver_time_limit_fails_the_run_and_writes_nothing(store_url):
    _write(store_url, 84, _prices(range(96)))
    result = _materialize(store_url, time_limit_seconds=1e-9)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "time limit" in str(failure.message) + str(failure.cause)
    assert _planned(store_url).empty


def test_definitions_hold_the_asset_the_15_minute_schedule_and_the_signal_deps():
    merged = dg.Definitions.merge(scheduling_defs, dg.Definitions(resources=SHARED_RESOURCES))
    schedule = merged.resolve_schedule_def("ev_charging_every_15_minutes")
    assert schedule.cron_schedule == "*/15 * * * *"
    job = merged.resolve_job_def("ev_schedule_and_dispatch")
    assert job.executor_def.name == "in_process"
    spec = next(iter(ev_charging_schedule.specs))
    assert {dep.asset_key for dep in spec.deps} == {
        dg.AssetKey("consumption_price"), dg.AssetKey("load_control_signal"), dg.AssetKey("demand_response_signal"),
        dg.AssetKey("site_measurements")}


def test_a_schedule_failing_the_verifier_is_not_written_and_blocks(store_url, monkeypatch):
    """A stand-in for a faulty solver (a real one cannot be made to fail on demand): the plan it returns puts
    1000 kW on CP001; the verifier must catch it, nothing is written and the blocking check fails."""
    from cariflex_pipeline.defs.scheduling import assets

    def faulty_solve(*args, **kwargs):
        result = solve(*args, **kwargs)
        result.power_kw["CP001"][0] = 1000.0
        return result

    solve = assets.solve
    monkeypatch.setattr(assets, "solve", faulty_solve)
    _write(store_url, 84, _prices(range(96)))
    result = _materialize(store_url)
    check = {c.check_name: c for c in result.get_asset_check_evaluations()}[CHECK_NAME]
    assert not check.passed and check.metadata["violations"].value >= 1
    assert "site_limit" in check.metadata["details"].value
    assert _planned(store_url).empty
    assert not result.success  # the blocking check fails the step: nothing downstream runs on this plan


def test_live_sessions_from_the_bus_replace_the_template(store_url, site):
    """Once the bus has brought a session, the plan serves exactly the EVs that are plugged in."""
    from cariflex_pipeline.dispatch import SessionBook, SessionDefaults, stations_from_portfolio
    from cariflex_pipeline.dispatch.envelope import BusMessage
    from cariflex_pipeline.site_model import Portfolio

    book = SessionBook(TimeSeriesStore(store_url).engine, stations_from_portfolio(Portfolio.from_site(site)),
                       SessionDefaults(dwell=timedelta(hours=4), energy_kwh=15.0))
    plugged_in = START - timedelta(minutes=20)
    started = {"eventType": "Started", "timestamp": plugged_in.isoformat(), "triggerReason": "CablePluggedIn",
               "seqNo": 0, "transactionInfo": {"transactionId": "tx-7"}, "evse": {"id": 1, "connectorId": 1}}
    book.apply(BusMessage(station_id="CP007", tenant_id="1", action="TransactionEvent", state=1, origin="cs",
                          correlation_id="c1", payload=started), now=plugged_in)
    _write(store_url, 84, _prices(range(96)))

    result = _materialize(store_url)
    assert result.success
    metadata = result.asset_materializations_for_node("ev_charging_schedule")[0].metadata
    assert metadata["session_source"].value == "bus"
    assert metadata["sessions"].value == 1
    assert metadata["sessions_with_default_needs"].value == 1
    assert metadata["unserved_energy_kwh"].value == pytest.approx(0.0, abs=1e-6)
    planned = _planned(store_url)
    energy_by_sensor = planned.groupby("sensor_id")["value"].sum() * 0.25
    assert set(energy_by_sensor[energy_by_sensor > 1e-6].index) == {67}  # CP007 only
    # The default need (15 kWh within 4 h of plugging in) is met; the grid side carries the charging losses.
    assert metadata["energy_delivered_kwh"].value == pytest.approx(15.0, rel=1e-6)
    assert energy_by_sensor[67] >= 15.0 - 1e-6
    # who is connected now, second on the page after the chart, in site time (UTC-4), the defaults flagged
    assert list(metadata)[1] == "connected_now"
    assert [row.data for row in metadata["connected_now"].value.records] == [
        {"station": "CP007", "since": "28 Nov 11:40", "leaves": "28 Nov 15:40", "needed kWh": 15.0,
         "planned kWh": 15.0, "inputs": "DEFAULT departure/energy"}]

    assert metadata["data"].value == "signals from test-vtn; sessions from the bus"

    template = _materialize(store_url, session_source="template")
    template_md = template.asset_materializations_for_node("ev_charging_schedule")[0].metadata
    assert template_md["sessions"].value > 1
    assert template_md["data"].value == "signals from test-vtn; sessions SAMPLE: the bundled day template"


def test_the_plan_is_drawn_first_in_the_metadata(store_url):
    _write(store_url, 84, _prices(range(96)))
    result = _materialize(store_url)
    assert result.success
    metadata = result.asset_materializations_for_node("ev_charging_schedule")[0].metadata
    assert next(iter(metadata)) == "horizon_chart"  # what an operator sees first on the asset page
    assert metadata["data"].value.startswith("signals from ")  # what _write stored, not the sample feed
    markdown = metadata["horizon_chart"].value
    prefix = "![planned power per device against the site limit, price and load control](data:image/png;base64,"
    assert markdown.startswith(prefix) and markdown.endswith(")")
    png = base64.b64decode(markdown[len(prefix):-1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert (width, height) == (720, 384)


def test_the_block_policy_fails_the_run_before_planning_naming_the_problems(store_url):
    _write(store_url, 84, _prices(range(8)))  # prices for the next 2 h only
    _write(store_url, 86, {t: 100.0 for t in range(96)})
    _write(store_url, 87, {t: 0.0 for t in range(96)})
    resources = {"site": SiteResource(), "store": TimeSeriesStoreResource(database_url=store_url)}
    config = {"now": NOW, "use_pv_forecast": False, "session_source": "template"}
    warned = dg.materialize([ev_charging_schedule, ocpp_charging_profiles], resources=resources,
                            run_config={"ops": {"ev_charging_schedule": {"config": config}}})
    current = {c.check_name: c for c in warned.get_asset_check_evaluations()}["signals_current"]
    assert (current.passed, current.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert current.description == "prices: known for the next 2 h, 6 h wanted"
    assert warned.asset_materializations_for_node("ocpp_charging_profiles")  # warn: dispatched all the same
    planned_before = _planned(store_url)

    blocked = dg.materialize(
        [ev_charging_schedule, ocpp_charging_profiles], resources=resources, raise_on_error=False,
        run_config={"ops": {"ev_charging_schedule": {"config": {**config, "on_defaulted_inputs": "block"}}}})
    assert not blocked.success
    [failure] = blocked.get_step_failure_events()
    assert failure.step_failure_data.user_failure_data.description == (
        "not planned (CARIFLEX_ON_DEFAULTED_INPUTS=block): prices: 88 slots without a price filled with the dearest "
        "known price (88 of 96 slots); sessions: the bundled day template, not live sessions from the bus; prices: "
        "known for the next 2 h, 6 h wanted")
    assert blocked.asset_materializations_for_node("ev_charging_schedule") == []
    assert blocked.asset_materializations_for_node("ocpp_charging_profiles") == []
    pd.testing.assert_frame_equal(_planned(store_url), planned_before)  # nothing new written


def test_the_policy_default_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(POLICY_ENV, "block")
    assert default_policy() == "block"
    monkeypatch.setenv(POLICY_ENV, "strict")
    with pytest.raises(ValueError, match="CARIFLEX_ON_DEFAULTED_INPUTS='strict': expected 'warn' or 'block'"):
        default_policy()
