from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from cariflex_pipeline.measurements import ReadingsError, read_readings_csv, readings_in_window, sample_day


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "readings.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_readings_file_becomes_utc_beliefs(tmp_path: Path, site) -> None:
    path = write(tmp_path, "sensor_id,event_start,value,unit\n"
                           "41,2026-11-28T10:00:00-04:00,7.9,kW\n"
                           "82,2026-11-28T10:00:00-04:00,27.5,\n")
    frame = read_readings_csv(path, site)
    assert frame["sensor_id"].tolist() == [41, 82]
    assert frame["event_start"].iloc[0] == pd.Timestamp("2026-11-28 14:00", tz="UTC")
    # a measurement is known when its interval ends
    assert frame["belief_time"].iloc[0] == pd.Timestamp("2026-11-28 14:15", tz="UTC")
    day = readings_in_window(frame, datetime(2026, 11, 28, 14, 15, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC))
    assert day.empty


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("99,2026-11-28T10:00:00-04:00,1.0,kW", "line 2: sensor 99 is not in the site model"),
        ("41,2026-11-28T10:00:00-04:00,1.0,W", "line 2: sensor 41 is in 'kW', the file says 'W'"),
        ("41,2026-11-28T10:00:00-04:00,nan,kW", "line 2: value 'nan' of sensor 41 is not finite"),
        ("41,2026-11-28T10:00:00-04:00,sunny,kW", "line 2: value 'sunny' of sensor 41 is not a number"),
        ("41,2026-11-28T10:00:00,1.0,kW", "line 2: event_start '2026-11-28T10:00:00' has no UTC offset"),
    ],
)
def test_a_bad_line_names_file_line_and_field(tmp_path: Path, site, line: str, message: str) -> None:
    path = write(tmp_path, f"sensor_id,event_start,value,unit\n{line}\n")
    with pytest.raises(ReadingsError) as raised:
        read_readings_csv(path, site)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_a_file_without_the_required_columns_is_refused(tmp_path: Path, site) -> None:
    with pytest.raises(ReadingsError, match=r"missing column\(s\) \['value'\]"):
        read_readings_csv(write(tmp_path, "sensor_id,event_start\n41,2026-11-28T10:00:00-04:00\n"), site)


def test_the_sample_day_is_a_plausible_martinique_day(site) -> None:
    day = date(2026, 11, 28)
    frame = sample_day(day, site)
    pd.testing.assert_frame_equal(frame, sample_day(day, site))  # deterministic: reruns change nothing
    local = frame.assign(hour=frame["event_start"].dt.tz_convert(site.timezone).dt.hour)
    irradiance = local[local["sensor_id"] == site.signals.irradiance]
    assert len(irradiance) == 96
    assert (irradiance.loc[(irradiance["hour"] < 6) | (irradiance["hour"] >= 18), "value"] == 0).all()
    assert 500 < irradiance["value"].max() < 1100  # W/m² at noon, 14.6° N, some clouds
    temperature = local.loc[local["sensor_id"] == site.signals.temperature, "value"]
    assert 20 < temperature.min() < temperature.max() < 32
    for pv in site.pv_installations:
        power = frame.loc[frame["sensor_id"] == pv.sensor_id, "value"]
        assert 0 < power.max() <= pv.peak_power_kw
    assert (frame["belief_time"] < frame["event_start"].min()).all()  # a day-ahead forecast
    assert not sample_day(day + timedelta(days=1), site)["value"].equals(frame["value"])
