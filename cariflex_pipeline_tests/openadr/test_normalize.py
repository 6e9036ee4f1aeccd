"""Normalization rules that need no VTN: unit conversions, slot expansion, the event log's idempotence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from cariflex_pipeline.openadr.errors import EventRejected
from cariflex_pipeline.openadr.model import EventSignal, OpenAdrEvent, SignalInterval
from cariflex_pipeline.openadr.normalize import conversion_factor, normalize_event
from cariflex_pipeline.openadr.repository import EventLog
from cariflex_pipeline.site_model.model import OpenAdr, OpenAdrSignal

T0 = datetime(2026, 11, 29, 14, tzinfo=UTC)


def _event(intervals, *, payload_type="PRICE", unit=None, currency=None, program="martinique-price") -> OpenAdrEvent:
    signal = EventSignal(
        intervals=tuple(SignalInterval(start, duration, value) for start, duration, value in intervals),
        payload_type=payload_type, unit=unit, currency=currency)
    return OpenAdrEvent(protocol="3.0.1", vtn_id="vtn3", event_id="e1", modification_number=1, status="active",
                        program=program, response_required=False, signals=(signal,), raw_payload="{}",
                        created=T0 - timedelta(days=1))


def test_price_conversions(site):
    assert conversion_factor("e", "s", "EUR/kWh", "EUR", "EUR/MWh", site) == 1000.0
    assert conversion_factor("e", "s", "EUR/MWh", None, "EUR/kWh", site) == 0.001
    assert conversion_factor("e", "s", "EUR/MWh", "EUR", "EUR/MWh", site) == 1.0
    # kW of allowed import -> % of the site's grid connection (120 kW in the Martinique site)
    assert conversion_factor("e", "s", "kW", None, "%", site) == pytest.approx(100 / 120)
    with pytest.raises(EventRejected, match="unknown currency 'USD'"):
        conversion_factor("e", "s", "USD/MWh", "USD", "EUR/MWh", site)


def test_slots_take_the_value_of_the_interval_they_start_in(site):
    minutes = timedelta(minutes=1)
    event = _event([(T0 + 5 * minutes, 30 * minutes, 0.1), (T0 + 35 * minutes, 25 * minutes, 0.2)])
    frame = normalize_event(event, site).frame
    assert list(zip(frame["event_start"].dt.to_pydatetime(), frame["value"], strict=True)) == [
        (T0 + 15 * minutes, 100.0), (T0 + 30 * minutes, 100.0), (T0 + 45 * minutes, 200.0)]


def test_load_control_in_kw_becomes_percent_when_the_program_says_so(site):
    event = _event([(T0, timedelta(minutes=15), 90.0)], payload_type="IMPORT_CAPACITY_LIMIT", unit="kW",
                   program="martinique-load-control")
    # not mapped in the bundled site: ignored with a warning
    ignored = normalize_event(event, site)
    assert ignored.frame.empty and "IMPORT_CAPACITY_LIMIT" in ignored.warnings[0]
    # a program that sends the import limit in kW, mapped onto sensor 86 (%)
    mapping = OpenAdrSignal(sensor_id=86, program="martinique-load-control", payload_type="IMPORT_CAPACITY_LIMIT",
                            unit="kW")
    other_site = site.model_copy(update={"openadr": OpenAdr(signals=[mapping])})
    frame = normalize_event(event, other_site).frame
    assert list(frame["value"]) == [pytest.approx(75.0)]  # 90 kW of a 120 kW connection


def test_zero_duration_and_too_long_intervals_are_rejected(site):
    with pytest.raises(EventRejected, match="duration"):
        normalize_event(_event([(T0, timedelta(0), 0.1)]), site)
    with pytest.raises(EventRejected, match="duration"):
        normalize_event(_event([(T0, timedelta(days=400), 0.1)]), site)


def test_event_log_records_a_version_once(store, site):
    event = _event([(T0, timedelta(minutes=15), 0.1)])
    log = EventLog(store.engine)
    with store.transaction() as connection:
        log.record(event, T0, None, [], 0, connection=connection)
    with pytest.raises(IntegrityError), store.transaction() as connection:  # a concurrent run logged it first
        log.record(event, T0 + timedelta(minutes=1), None, [], 0, connection=connection)
    assert len(log.all()) == 1 and log.latest("vtn3", "e1").received_at == T0


def test_site_file_with_a_bad_openadr_mapping_is_refused(tmp_path):
    from cariflex_pipeline.site_model import SiteModelError, default_site_file, load_site

    text = default_site_file().read_text(encoding="utf-8")
    for bad, message in [
        ("{sensor_id: 84, program: martinique-price, payload_type: PRICE, unit: EUR/kWh, currency: EUR}",
         None),
        ("{sensor_id: 99, program: martinique-price, payload_type: PRICE, unit: EUR/kWh, currency: EUR}",
         "sensor 99 is not in sensors"),
        ("{sensor_id: 84, program: martinique-price, unit: EUR/kWh}", "payload_type"),
        ("{sensor_id: 84, program: martinique-price, payload_type: PRICE, unit: USD/therm}", "unknown unit"),
    ]:
        path = tmp_path / "site.yaml"
        path.write_text(text.replace(
            "{sensor_id: 84, program: martinique-price, payload_type: PRICE, unit: EUR/kWh, currency: EUR}", bad),
            encoding="utf-8")
        if message is None:
            assert load_site(path).openadr is not None
            continue
        with pytest.raises(SiteModelError, match=message):
            load_site(path)
