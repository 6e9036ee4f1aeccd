"""The charts' data: every slot drawn whole, gaps where a value is missing, in the slots' own time zone."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from cariflex_pipeline.charts import _closed, _edges, day_curve_chart, horizon_chart

MARTINIQUE = ZoneInfo("America/Martinique")
SLOTS = [datetime(2026, 12, 2, tzinfo=MARTINIQUE) + timedelta(minutes=15 * n) for n in range(4)]


def test_the_last_slot_is_drawn_to_its_end_and_a_missing_value_is_a_gap():
    assert _edges(SLOTS)[-1] == datetime(2026, 12, 2, 1, 0, tzinfo=MARTINIQUE)
    closed = _closed([1.0, None, 3.0, 4.0])
    assert np.isnan(closed[1]) and list(closed[[0, 2, 3, 4]]) == [1.0, 3.0, 4.0, 4.0]


def test_charts_are_pngs_even_with_discharge_and_missing_signals():
    plan = {"CP001": [7.4, 7.4, 0.0, 0.0], "BAT1": [0.0, -5.0, -5.0, 10.0]}
    png = horizon_chart(SLOTS, plan, [120.0] * 4, [80.0, None, 95.0, 60.0], [None] * 4, "a test plan")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert day_curve_chart(SLOTS, [None, 1.0, 2.0, None], "a test day", "kW")[:8] == b"\x89PNG\r\n\x1a\n"
