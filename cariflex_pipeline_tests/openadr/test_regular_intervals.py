"""The 3.0.1 parser reads the common shape of intervals as columns (`RegularIntervals`): whatever the intervals
hold, what it reads is what reading them one by one gives, and the columns behave as the tuple of intervals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cariflex_pipeline.openadr import oadr3
from cariflex_pipeline.openadr.limits import shown
from cariflex_pipeline.openadr.model import RegularIntervals, SignalInterval, interval_values
from cariflex_pipeline.openadr.oadr3 import parse_event, parse_items
from cariflex_pipeline_tests.openadr.messages import event_301

T0 = datetime(2027, 1, 2, 4, tzinfo=UTC)
QUARTER = timedelta(minutes=15)

_ABSENT = object()
_values = st.one_of(st.floats(allow_nan=False), st.integers(-10, 10), st.just("0.1"), st.none())
_payload = st.fixed_dictionaries({"type": st.sampled_from(["PRICE", "SIMPLE", 7]),
                                  "values": st.lists(_values, min_size=0, max_size=2)})


def _common(own_id: object, value: object, period: object) -> dict:
    """The common shape: one PRICE payload of one value; its id or a period of its own sometimes absent."""
    interval: dict = {"payloads": [{"type": "PRICE", "values": [value]}]}
    if own_id is not _ABSENT:
        interval["id"] = own_id
    if period is not _ABSENT:
        interval["intervalPeriod"] = period
    return interval


# mostly the common shape, sometimes anything an interval may hold instead
_interval = st.one_of(
    st.builds(_common, st.one_of(st.integers(0, 10**6), st.text(max_size=3), st.none(), st.just(_ABSENT)), _values,
              st.sampled_from([_ABSENT] * 6 + [None, {"duration": "PT5M"}, {"start": "2027-01-03T00:00:00Z"}])),
    st.fixed_dictionaries({"id": st.integers(0, 99), "payloads": st.lists(_payload, max_size=2)}),
    st.sampled_from([None, [], "interval"]),
)


@settings(max_examples=300, deadline=None)
@given(intervals=st.lists(_interval, max_size=12), duration=st.sampled_from(["PT15M", "PT0S", "P1000000D"]))
def test_columns_read_what_reading_one_by_one_reads(intervals, duration, monkeypatch_module):
    item = event_301("e", T0, [], duration=duration)
    item["intervals"] = intervals
    fast = parse_event(item, "vtn")
    with monkeypatch_module.context() as patch:
        patch.setattr(oadr3, "_regular_columns", lambda *_: None)
        one_by_one = parse_event(item, "vtn")
    assert fast.problems == one_by_one.problems
    assert [(signal.payload_type, signal.unit) for signal in fast.signals] == [
        (signal.payload_type, signal.unit) for signal in one_by_one.signals]
    for signal, reference in zip(fast.signals, one_by_one.signals, strict=True):
        assert tuple(signal.intervals) == reference.intervals


def test_the_common_shape_is_read_as_columns():
    [signal] = parse_event(event_301("e", T0, [0.1, 0.2, 0.3], duration="PT15M"), "vtn").signals
    assert signal.back_to_back
    assert signal.intervals == RegularIntervals(T0, QUARTER, (0.1, 0.2, 0.3), (0, 1, 2))


def test_an_interval_with_a_period_of_its_own_is_read_one_by_one():
    item = event_301("e", T0, [0.1, 0.2], duration="PT15M")
    item["intervals"][1]["intervalPeriod"] = {"start": "2027-01-02T06:00:00Z"}
    [signal] = parse_event(item, "vtn").signals
    assert not signal.back_to_back
    assert signal.intervals == (SignalInterval(T0, QUARTER, 0.1, "0"),
                                SignalInterval(datetime(2027, 1, 2, 6, tzinfo=UTC), QUARTER, 0.2, "1"))


def test_regular_intervals_behave_as_the_tuple_of_their_intervals():
    regular = RegularIntervals(T0, QUARTER, (1.0, 2.0, 3.0), (7, "x" * 100, None))
    as_tuple = (SignalInterval(T0, QUARTER, 1.0, "7"),
                SignalInterval(T0 + QUARTER, QUARTER, 2.0, shown("x" * 100, 40)),  # a long id, cut short
                SignalInterval(T0 + 2 * QUARTER, QUARTER, 3.0, "None"))
    assert len(regular) == 3 and regular.end() == T0 + 3 * QUARTER
    assert tuple(regular) == as_tuple and list(interval_values(regular)) == [1.0, 2.0, 3.0]
    assert regular[-1] == as_tuple[-1] and regular[1:] == as_tuple[1:]
    with pytest.raises(IndexError):
        regular[3]


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_a_listing_is_parsed_item_by_item_and_its_json_let_go():
    items = [event_301("e", T0, [0.1], duration="PT15M"), 5]
    events = parse_items(items, "vtn")
    assert [(event.event_id, event.problems) for event in events] == [
        ("e", ()), ("#1", ("event #1 is not a JSON object",))]
    assert items == []  # nothing keeps the listing's objects alive for the collector to walk when its pause ends
