"""Normalization rules that need no VTN: unit conversions, slot expansion, the event log's idempotence."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError

from cariflex_pipeline.openadr.days import event_days
from cariflex_pipeline.openadr.errors import EventRejected
from cariflex_pipeline.openadr.limits import shown
from cariflex_pipeline.openadr.model import EventSignal, OpenAdrEvent, RegularIntervals, SignalInterval
from cariflex_pipeline.openadr.normalize import (
    Refusal,
    conversion_factor,
    from_microseconds,
    microseconds,
    normalize_event,
)
from cariflex_pipeline.openadr.oadr3 import parse_events_json
from cariflex_pipeline.openadr.repository import EventLog
from cariflex_pipeline.site_model.model import OpenAdr, OpenAdrSignal
from cariflex_pipeline_tests.openadr.helpers import SITE_ID
from cariflex_pipeline_tests.openadr.messages import event_301

T0 = datetime(2026, 11, 29, 14, tzinfo=UTC)


def _event(intervals, *, payload_type="PRICE", unit=None, currency=None, program="martinique-price") -> OpenAdrEvent:
    signal = EventSignal(
        intervals=tuple(SignalInterval(start, duration, value) for start, duration, value in intervals),
        payload_type=payload_type, unit=unit, currency=currency)
    return OpenAdrEvent(protocol="3.0.1", vtn_id="vtn3", event_id="e1", modification_number=1, status="active",
                        program=program, response_required=False, signals=(signal,), raw_payload="{}",
                        created=T0 - timedelta(days=1))


def _with_mapping(site, payload_type, **update):
    """The site with its 3.0.1 mapping of `payload_type` changed, as a hand-edited site (no load-time checks)."""
    signals = [mapping.model_copy(update=update) if mapping.payload_type == payload_type else mapping
               for mapping in site.openadr.signals]
    return site.model_copy(update={"openadr": site.openadr.model_copy(update={"signals": signals})})


def _with_seven_minute_prices(site):
    """The site with its price sensor (84) at a 7-minute resolution."""
    sensors = [sensor.model_copy(update={"resolution": timedelta(minutes=7)}) if sensor.id == 84 else sensor
               for sensor in site.sensors]
    return site.model_copy(update={"sensors": sensors})


def test_price_conversions(site):
    assert conversion_factor("s", "EUR/kWh", "EUR", "EUR/MWh", site) == 1000.0
    assert conversion_factor("s", "EUR/MWh", None, "EUR/kWh", site) == 0.001
    assert conversion_factor("s", "EUR/MWh", "EUR", "EUR/MWh", site) == 1.0
    # kW of allowed import -> % of the site's grid connection (120 kW in the Martinique site)
    assert conversion_factor("s", "kW", None, "%", site) == pytest.approx(100 / 120)
    assert conversion_factor("s", "MW", None, "%", site) == pytest.approx(100_000 / 120)
    assert conversion_factor("s", " EUR/MWh ", None, "EUR/MWh", site) == 1.0  # padding is not a unit
    assert conversion_factor("s", "%", None, "%", site) == 1.0
    assert conversion_factor("s", "level", None, "dimensionless", site) == 1.0


@pytest.mark.parametrize(("unit", "currency", "sensor_unit", "reason"), [
    ("USD/MWh", "USD", "EUR/MWh", "unknown currency 'USD' (expected EUR)"),
    ("EUR/MWh", "USD", "EUR/MWh", "unknown currency 'USD' (expected EUR)"),  # the unit alone would do
    ("USD/kWh", None, "EUR/MWh", "unknown currency 'USD' (expected EUR)"),
    ("kWh", None, "EUR/MWh", "unknown unit 'kWh' for a price in EUR/MWh"),
    ("EUR/GJ", "EUR", "EUR/MWh", "unknown unit 'EUR/GJ'"),
    ("A", None, "%", "unknown unit 'A' for sensor unit '%'"),
    ("kW", None, "dimensionless", "unknown unit 'kW' for sensor unit 'dimensionless'"),
    ("kW", None, "W/m2", "unknown unit 'kW' for sensor unit 'W/m2'"),  # a slash, but not a price per energy
])
def test_a_unit_or_currency_that_does_not_convert_is_refused_by_name(site, unit, currency, sensor_unit, reason):
    with pytest.raises(Refusal) as raised:
        conversion_factor("signal PRICE", unit, currency, sensor_unit, site)
    assert str(raised.value) == f"signal PRICE: {reason}"


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
    log = EventLog(store.engine, site_id=SITE_ID)
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


BACK_TO_BACK = settings(max_examples=150, derandomize=True, database=None, deadline=None)


@BACK_TO_BACK
@given(
    offset_minutes=st.integers(-600, 600),
    duration=st.sampled_from(["PT15M", "PT5M", "PT30M", "PT1H", "PT7M", "PT20M", "P1D"]),
    values=st.lists(st.one_of(st.floats(-1e3, 1e3), st.integers(-5, 5), st.sampled_from([1e308, "0.1", True])),
                    min_size=1, max_size=40),
    own_period_at=st.none() | st.integers(0, 39),
)
def test_a_back_to_back_signal_normalizes_as_its_intervals_one_by_one(offset_minutes, duration, values, own_period_at,
                                                                      site):
    """The parser's promise (`back_to_back`) lets normalization take every time from the first interval: whatever
    the start, duration, values or a stray intervalPeriod, the result (or the rejection) is the one that checking
    each interval on its own gives."""
    item = event_301("e", datetime(2027, 1, 2, 4, tzinfo=UTC) + timedelta(minutes=offset_minutes), values,
                     duration=duration)
    if own_period_at is not None and own_period_at < len(values):
        item["intervals"][own_period_at]["intervalPeriod"] = {"start": "2027-01-02T04:00:00Z"}
    event = parse_events_json(json.dumps([item]), "vtn")[0]
    assert event.signals[0].back_to_back == (own_period_at is None or own_period_at >= len(values))
    one_by_one = replace(event, signals=tuple(replace(signal, intervals=tuple(signal.intervals))
                                              for signal in event.signals))
    assert not one_by_one.signals[0].back_to_back
    assert event_days(event, site.tz) == event_days(one_by_one, site.tz)
    assert _outcome(event, site) == _outcome(one_by_one, site)


def _outcome(event, site):
    try:
        normalized = normalize_event(event, site)
    except EventRejected as error:
        return error.reason
    return normalized.value_sensor_ids, normalized.starts_us, normalized.resolutions_us, normalized.values


def test_intervals_running_past_the_year_9999_reject_their_event_not_the_listing():
    long = event_301("long", datetime(2027, 1, 2, 4, tzinfo=UTC), [1.0] * 1000, duration="P3650D")
    good = event_301("good", datetime(2027, 1, 2, 4, tzinfo=UTC), [0.1])
    events = parse_events_json(json.dumps([long, good]), "vtn")
    assert [event.event_id for event in events] == ["long", "good"]
    assert events[0].problems[0] == "interval 797 ends after the year 9999" and events[1].problems == ()


@pytest.mark.parametrize(("value", "reason"), [
    ("0.1", "signal PRICE, interval 1: value '0.1' is not a number"),
    (True, "signal PRICE, interval 1: value True is not a number"),
    (1e306, "signal PRICE, interval 1: value 1e+306 is not finite in EUR/MWh"),  # finite until x 1000
    (10**400, f"signal PRICE, interval 1: value {shown(10**400)} is not finite in EUR/MWh"),  # beyond any float
], ids=["text", "bool", "1e306", "10**400"])
def test_a_bad_value_is_named_with_its_interval_as_the_vtn_sent_it(site, value, reason):
    minutes = timedelta(minutes=15)
    event = _event([(T0, minutes, 0.1), (T0 + minutes, minutes, value)])
    with pytest.raises(EventRejected) as raised:
        normalize_event(event, site)
    assert (raised.value.event_id, raised.value.reason) == ("e1", reason)


def test_a_bound_is_checked_in_the_sensors_unit_and_holds_at_its_value(site):
    """Load control in %, bounded 0..100: 0 and 100 are allowed; below or above, the converted value is named."""
    def control(value):
        return _event([(T0, timedelta(minutes=15), value)], payload_type="DISPATCH_SETPOINT_RELATIVE", unit="%",
                      program="martinique-load-control")
    assert normalize_event(control(0), site).values == [0.0]
    assert normalize_event(control(100), site).values == [100.0]
    # a value at the bound beside a bad one: the bad one is named, whichever check finds it
    both = _event([(T0, timedelta(minutes=15), 0), (T0 + timedelta(minutes=15), timedelta(minutes=15), 100),
                   (T0 + timedelta(minutes=30), timedelta(minutes=15), 150)],
                  payload_type="DISPATCH_SETPOINT_RELATIVE", unit="%", program="martinique-load-control")
    with pytest.raises(EventRejected) as raised:
        normalize_event(both, site)
    assert raised.value.reason == "signal DISPATCH_SETPOINT_RELATIVE, interval 2: value 150 % is above 100"
    for value, reason in [(-0.5, "value -0.5 % is below 0"), (100.5, "value 100.5 % is above 100")]:
        with pytest.raises(EventRejected) as raised:
            normalize_event(control(value), site)
        assert (raised.value.event_id, raised.value.reason) == (
            "e1", f"signal DISPATCH_SETPOINT_RELATIVE, interval 0: {reason}")


def test_two_signals_giving_one_sensor_the_same_slot_reject_the_event(site):
    minutes = timedelta(minutes=15)
    first = EventSignal(intervals=(SignalInterval(T0, minutes, 0.1), SignalInterval(T0 + minutes, minutes, 0.1)),
                        payload_type="PRICE")
    apart = EventSignal(intervals=(SignalInterval(T0 + 2 * minutes, minutes, 0.2),), payload_type="PRICE")
    clashing = EventSignal(intervals=(SignalInterval(T0 + minutes, minutes, 0.3),), payload_type="PRICE")
    event = _event([])
    assert normalize_event(replace(event, signals=(first, apart)), site).values == [100.0, 100.0, 200.0]
    with pytest.raises(EventRejected) as raised:
        normalize_event(replace(event, signals=(first, clashing)), site)
    assert raised.value.reason == f"two signals give sensor 84 a value at {(T0 + minutes).isoformat()}"
    assert raised.value.event_id == event.event_id


def test_slots_are_aligned_from_the_start_of_2000_whatever_the_resolution(site):
    """With a sensor resolution that does not divide the time since 1970 evenly (7 minutes), an hour's value lands
    on the 7-minute grid counted from 2000-01-01 00:00 UTC, from its first slot inside the hour."""
    seven = _with_seven_minute_prices(site)
    normalized = normalize_event(_event([(T0, timedelta(hours=1), 0.1)]), seven)
    origin = datetime(2000, 1, 1, tzinfo=UTC)
    first = T0 + (-(T0 - origin) % timedelta(minutes=7))
    assert first != T0 + (-(T0 - datetime(1970, 1, 1, tzinfo=UTC)) % timedelta(minutes=7))  # the origin matters
    assert [from_microseconds(start) for start in normalized.starts_us] == [
        first + n * timedelta(minutes=7) for n in range(9)]  # 14:02 to 14:58
    assert normalized.values == [100.0] * 9


def test_a_price_without_a_currency_takes_the_program_s_then_the_sensor_s(site):
    per_kwh = _event([(T0, timedelta(minutes=15), 0.1)], unit="/kWh")  # 3.0.1 units KWH, no currency given
    assert normalize_event(per_kwh, _with_mapping(site, "PRICE", currency=None)).values == [100.0]  # EUR, the sensor's
    with pytest.raises(EventRejected) as raised:
        normalize_event(per_kwh, _with_mapping(site, "PRICE", currency="USD"))  # the program's, not the sensor's
    assert (raised.value.event_id, raised.value.reason) == ("e1", "signal PRICE: unknown currency 'USD' (expected EUR)")


def test_a_signal_of_another_program_feeds_no_sensor_and_the_next_signal_still_counts(site, caplog):
    other = _event([(T0, timedelta(minutes=15), 0.1)], program="somebody-else")
    with caplog.at_level("WARNING", logger="cariflex_pipeline.openadr.normalize"):
        normalized = normalize_event(other, site)
    message = "event 'e1': signal PRICE of program 'somebody-else' feeds no sensor; ignored"
    assert (normalized.values, normalized.warnings, caplog.messages) == ([], [message], [message])
    [price] = _event([(T0, timedelta(minutes=15), 0.1)]).signals
    unmapped = replace(price, payload_type="CO2_INTENSITY")
    normalized = normalize_event(replace(other, program="martinique-price", signals=(unmapped, price)), site)
    assert normalized.values == [100.0] and len(normalized.warnings) == 1


def test_an_event_with_problems_is_refused_with_all_of_them(site):
    troubled = replace(_event([]), problems=("id '' is empty", "intervals is not a list"))
    with pytest.raises(EventRejected) as raised:
        normalize_event(troubled, site)
    assert (raised.value.event_id, raised.value.reason) == ("e1", "id '' is empty; intervals is not a list")


def test_values_are_dated_by_modification_then_creation_and_never_by_a_naive_time(site):
    event = _event([(T0, timedelta(minutes=15), 0.1)])  # created a day before T0, never modified
    assert normalize_event(event, site).belief_time_us == microseconds(T0 - timedelta(days=1))
    modified = replace(event, modified=T0 - timedelta(hours=1))
    assert normalize_event(modified, site).belief_time_us == microseconds(T0 - timedelta(hours=1))
    assert normalize_event(modified, site, belief_time=T0).belief_time_us == microseconds(T0)
    naive = replace(event, created=datetime(2026, 11, 28, 14))
    with pytest.raises(EventRejected) as raised:
        normalize_event(naive, site)
    assert (raised.value.event_id, raised.value.reason) == (
        "e1", "no time-zone-aware creation/modification time to date its values")


def test_times_are_whole_microseconds_since_1970():
    moment = datetime(2026, 11, 29, 14, 0, 0, 250001, tzinfo=UTC)
    assert microseconds(moment) == 1_795_960_800_250_001 and type(microseconds(moment)) is int
    assert from_microseconds(1_795_960_800_250_001) == moment


def test_a_signal_s_own_currency_must_be_the_sensor_s(site):
    dollars = _event([(T0, timedelta(minutes=15), 0.1)], unit="EUR/kWh", currency="USD")
    with pytest.raises(EventRejected) as raised:
        normalize_event(dollars, site)
    assert raised.value.reason == "signal PRICE: unknown currency 'USD' (expected EUR)"


def test_bounds_given_in_kw_are_checked_in_percent_of_the_connection(site):
    """A load-control mapping bounded at 0..120 kW feeds a % sensor: 120 kW is 100 % of the 120 kW connection."""
    in_kw = _with_mapping(site, "DISPATCH_SETPOINT_RELATIVE", unit="kW", max_value=120.0)

    def control(value):
        return _event([(T0, timedelta(minutes=15), value)], payload_type="DISPATCH_SETPOINT_RELATIVE", unit="kW",
                      program="martinique-load-control")

    assert normalize_event(control(60), in_kw).values == [pytest.approx(50.0)]
    with pytest.raises(EventRejected) as raised:
        normalize_event(control(130), in_kw)
    assert raised.value.reason == "signal DISPATCH_SETPOINT_RELATIVE, interval 0: value 108.333 % is above 100"


def test_back_to_back_intervals_with_a_bad_duration_name_the_first_interval(site):
    payload = event_301("b2b", T0, [0.1, 0.2], duration="PT0S")
    [event] = parse_events_json(json.dumps([payload]), "vtn3")
    assert event.signals[0].back_to_back
    with pytest.raises(EventRejected) as raised:
        normalize_event(event, site)
    assert (raised.value.event_id, raised.value.reason) == (
        "b2b", "signal PRICE, interval 0: duration 0:00:00 is not in (0, 31 days, 0:00:00]")


@pytest.mark.parametrize(("start", "duration", "reason"), [
    ("2026-11-29T14:00:00Z", timedelta(minutes=15), "start '2026-11-29T14:00:00Z' is not a datetime"),
    (datetime(2026, 11, 29, 14), timedelta(minutes=15), "naive datetime 2026-11-29T14:00:00 (no time zone)"),
    (T0, timedelta(0), "duration 0:00:00 is not in (0, 31 days, 0:00:00]"),
    (T0, timedelta(days=31, microseconds=1), "duration 31 days, 0:00:00.000001 is not in (0, 31 days, 0:00:00]"),
])
def test_an_interval_without_a_usable_start_or_duration_is_refused_by_name(site, start, duration, reason):
    intervals = [(T0 - timedelta(hours=1), timedelta(minutes=15), 0.1), (start, duration, 0.2)]
    with pytest.raises(EventRejected) as raised:
        normalize_event(_event(intervals), site)
    assert (raised.value.event_id, raised.value.reason) == ("e1", f"signal PRICE, interval 1: {reason}")


def test_an_interval_of_exactly_the_longest_duration_is_accepted(site):
    normalized = normalize_event(_event([(T0, timedelta(days=31), 0.1)]), site)
    assert len(normalized) == 31 * 96


def _with_control_bounds(site, **bounds):
    return _with_mapping(site, "DISPATCH_SETPOINT_RELATIVE", **{"min_value": None, "max_value": None, **bounds})


@pytest.mark.parametrize(("bounds", "value", "reason"), [
    ({"max_value": 80.0}, 90, "value 90 % is above 80"),
    ({"min_value": 20.0}, 10, "value 10 % is below 20"),
])
def test_one_bound_alone_is_checked(site, bounds, value, reason):
    def control(number):
        return _event([(T0, timedelta(minutes=15), number)], payload_type="DISPATCH_SETPOINT_RELATIVE", unit="%",
                      program="martinique-load-control")

    bounded = _with_control_bounds(site, **bounds)
    assert normalize_event(control(50), bounded).values == [50.0]
    with pytest.raises(EventRejected) as raised:
        normalize_event(control(value), bounded)
    assert raised.value.reason == f"signal DISPATCH_SETPOINT_RELATIVE, interval 0: {reason}"
    assert normalize_event(control(value), _with_control_bounds(site)).values == [float(value)]  # unbounded


@pytest.mark.parametrize(("update", "reason"), [
    ({"unit": "A", "max_value": 10.0}, "unknown unit 'A' for sensor unit '%'"),
    ({"unit": "EUR/kWh", "currency": "USD", "max_value": 1.0}, "unknown currency 'USD' (expected EUR)"),
])
def test_bounds_that_do_not_convert_reject_the_event_naming_the_signal(site, update, reason):
    """A mapping edited by hand (not loaded from a checked site file) with bounds in a unit or currency its sensor
    cannot take: the event is refused, naming the signal, rather than checked against bounds of another unit."""
    kind = "DISPATCH_SETPOINT_RELATIVE" if update["unit"] == "A" else "PRICE"
    edited = _with_mapping(site, kind, **update)
    program = "martinique-load-control" if kind == "DISPATCH_SETPOINT_RELATIVE" else "martinique-price"
    unit, currency = ("%", None) if kind == "DISPATCH_SETPOINT_RELATIVE" else ("EUR/kWh", "EUR")  # the event's fine
    event = _event([(T0, timedelta(minutes=15), 5)], payload_type=kind, unit=unit, currency=currency, program=program)
    with pytest.raises(EventRejected) as raised:
        normalize_event(event, edited)
    assert raised.value.reason == f"signal {kind}: {reason}"


def test_intervals_listed_out_of_order_are_stored_in_order(site):
    minutes = timedelta(minutes=15)
    reversed_listing = _event([(T0 + minutes, minutes, 0.2), (T0, minutes, 0.1)])
    normalized = normalize_event(reversed_listing, site)
    assert [from_microseconds(start) for start in normalized.starts_us] == [T0, T0 + minutes]
    assert normalized.values == [100.0, 200.0]
    shuffled = _event([(T0 + 2 * minutes, minutes, 0.3), (T0, minutes, 0.1), (T0 + minutes, minutes, 0.2)])
    assert normalize_event(shuffled, site).values == [100.0, 200.0, 300.0]


def test_overlapping_intervals_listed_out_of_order_are_named_in_time_order(site):
    minutes = timedelta(minutes=15)
    overlapping = _event([(T0 + minutes, 2 * minutes, 0.2), (T0, 2 * minutes, 0.1)])
    with pytest.raises(EventRejected) as raised:
        normalize_event(overlapping, site)
    assert raised.value.reason == (f"signal PRICE, interval 0 overlaps signal PRICE, interval 1 "
                                   f"({(T0 + minutes).isoformat()} < {(T0 + 2 * minutes).isoformat()})")


def test_back_to_back_intervals_off_the_grid_are_spread_onto_its_slots(site):
    """7-minute intervals, back to back, starting 3 minutes after T0: off the 7-minute grid counted from 2000 (its
    slots start at T0 + 2, + 9, + 16 min). Each slot takes the value of the interval its start lies in."""
    seven = _with_seven_minute_prices(site)
    step, start = timedelta(minutes=7), T0 + timedelta(minutes=3)
    signal = EventSignal(intervals=RegularIntervals(start, step, (0.1, 0.2), (0, 1)), payload_type="PRICE")
    normalized = normalize_event(replace(_event([]), signals=(signal,)), seven)
    assert [from_microseconds(slot) for slot in normalized.starts_us] == [T0 + timedelta(minutes=9),
                                                                           T0 + timedelta(minutes=16)]
    assert normalized.values == [100.0, 200.0]


def test_an_interval_inside_another_listed_first_is_named_after_the_one_it_lies_in(site):
    minutes = timedelta(minutes=15)
    nested = _event([(T0 + minutes, minutes, 0.2), (T0, 4 * minutes, 0.1)])
    with pytest.raises(EventRejected) as raised:
        normalize_event(nested, site)
    assert raised.value.reason == (f"signal PRICE, interval 0 overlaps signal PRICE, interval 1 "
                                   f"({(T0 + minutes).isoformat()} < {(T0 + 4 * minutes).isoformat()})")
