"""The bundled sample feed: parsed by the same safe 2.0b parser, shifted onto any day, idempotent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from cariflex_pipeline.openadr.ingest import ingest_events, source_name
from cariflex_pipeline.openadr.sample_feed import SAMPLE_VTN_ID, sample_events, template_events
from cariflex_pipeline.openadr.source import VtnConfig, ingest_from_source
from cariflex_pipeline.site_model import Portfolio
from cariflex_pipeline_tests.openadr.helpers import SITE_ID, audit_rows, series

PRICES = [148, 142, 139, 138, 141, 156, 212, 268, 255, 221, 196, 184,
          178, 181, 189, 203, 236, 289, 334, 318, 271, 224, 186, 162]


def test_template_is_a_valid_distribute_event():
    events = template_events()
    assert [event.event_id for event in events] == ["sample-price", "sample-load-control", "sample-demand-response"]
    assert all(event.problems == () for event in events)
    assert events[0].signals[0].unit == "EUR/MWh"


def test_a_day_of_the_sample_feed_value_by_value(store, site):
    day = date(2026, 11, 28)
    report = ingest_events(sample_events(day, site.timezone), site, store, site_id=SITE_ID)
    assert report.rejected == {} and len(report.new) == 3
    midnight = datetime(2026, 11, 28, 4, tzinfo=UTC)  # 00:00 in Martinique (UTC-4)
    prices = series(store, 84)
    assert len(prices) == 96
    assert [value for _, value in prices] == [float(price) for price in PRICES for _ in range(4)]
    assert prices[0][0] == midnight and prices[-1][0] == midnight + timedelta(hours=23, minutes=45)
    load = dict(series(store, 86))
    assert load[midnight] == 100.0
    assert load[midnight + timedelta(hours=7)] == 90.0  # morning peak
    assert load[midnight + timedelta(hours=18, minutes=30)] == 60.0  # evening peak
    assert len(load) == 96
    levels = dict(series(store, 87))
    assert levels[midnight + timedelta(hours=18)] == 2.0 and levels[midnight + timedelta(hours=3)] == 0.0
    sources = set(store.read_latest([84, 86, 87])["source"])
    assert sources == {source_name(SAMPLE_VTN_ID, event_id) for event_id in report.new}


def test_three_days_backfilled_and_rerun_is_idempotent(store, site):
    days = [date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 28)]
    first = ingest_from_source(VtnConfig(), Portfolio.from_site(site), store, days, today=date(2026, 12, 15),
                               site_id=SITE_ID)
    assert len(first.new) == 9 and first.values_written == 3 * 3 * 96
    rows = audit_rows(store)
    again = ingest_from_source(VtnConfig(), Portfolio.from_site(site), store, days, today=date(2026, 12, 15),
                               site_id=SITE_ID)
    assert len(again.unchanged) == 9 and again.values_written == 0 and audit_rows(store) == rows
    assert len(series(store, 84)) == 3 * 96


def test_command_line_sync_and_events(tmp_path, monkeypatch, capsys):
    import json

    from cariflex_pipeline.openadr.__main__ import main
    from cariflex_pipeline.store import DATABASE_URL_ENV

    monkeypatch.setenv(DATABASE_URL_ENV, f"sqlite:///{tmp_path / 'cli.sqlite'}")
    monkeypatch.delenv("CARIFLEX_VTN_URL", raising=False)
    assert main(["sync", "--day", "2026-03-09", "--day", "2026-03-10"]) == 0  # days in the past: no day-ahead
    report = json.loads(capsys.readouterr().out)
    assert report["source"] == "bundled sample feed" and report["values_written"] == 2 * 3 * 96
    assert main(["events"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and json.loads(lines[0])["event_id"] == "sample-price-20260309"


def test_vtn_config_from_environment():
    config = VtnConfig.from_env({"CARIFLEX_VTN_URL": "https://vtn.example/openadr3", "CARIFLEX_VTN_PROTOCOL": "3.0.1",
                                 "CARIFLEX_VTN_CLIENT_ID": "ven-7", "CARIFLEX_VTN_CLIENT_SECRET": "top-secret",
                                 "CARIFLEX_VTN_TARGET_TYPE": "GROUP", "CARIFLEX_VTN_TARGET_VALUES": "a, b"})
    assert (config.protocol, config.client_id, config.target_values) == ("3.0.1", "ven-7", ("a", "b"))
    assert "top-secret" not in repr(config) and not config.is_sample
    assert VtnConfig.from_env({}).is_sample


def test_day_ahead_rule_of_the_sample_feed():
    from cariflex_pipeline.openadr.source import with_day_ahead

    today = date(2026, 11, 28)
    assert with_day_ahead([today], today) == [today, date(2026, 11, 29)]
    assert with_day_ahead([date(2026, 11, 20)], today) == [date(2026, 11, 20)]  # history: that day only
    assert with_day_ahead([today, date(2026, 11, 29)], today) == [today, date(2026, 11, 29)]


def test_today_brings_tomorrow_along(store, site):
    report = ingest_from_source(VtnConfig(), Portfolio.from_site(site), store, [date(2026, 12, 15)],
                                today=date(2026, 12, 15), site_id=SITE_ID)
    assert len(report.new) == 6
    assert {event_id.rsplit("-", 1)[1] for event_id in report.new} == {"20261215", "20261216"}
