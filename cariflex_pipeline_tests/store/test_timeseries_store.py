from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select

from cariflex_pipeline.site_model import Sensor
from cariflex_pipeline.store import BeliefValidationError, StoreUnavailableError, TimeSeriesStore
from cariflex_pipeline.store.migrate import VERSION_TABLE, alembic_config, current_revisions
from cariflex_pipeline.store.schema import beliefs, data_sources

UTC = ZoneInfo("UTC")
MARTINIQUE = ZoneInfo("America/Martinique")
T0 = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
PRICE = 84


def price_frame(values: list[float], belief_time: datetime, start: datetime = T0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sensor_id": PRICE,
            "event_start": [start + timedelta(minutes=15 * i) for i in range(len(values))],
            "value": values,
            "belief_time": belief_time,
        }
    )


def row_count(store: TimeSeriesStore) -> int:
    with store.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(beliefs))


def test_migrations_create_the_schema_from_empty(store: TimeSeriesStore) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {"sensors", "data_sources", "beliefs", "cariflex_alembic_version"} <= tables
    assert current_revisions(store.engine) == set(ScriptDirectory.from_config(alembic_config()).get_heads())
    store.migrate()  # a second run is a no-op, not an error
    assert len(store.sensor_table()) == 46


def test_rewriting_the_same_beliefs_changes_nothing(store: TimeSeriesStore) -> None:
    frame = price_frame([100.0, 110.0, 120.0, 130.0], belief_time=T0 - timedelta(hours=12))
    assert store.write_beliefs(frame, source="vtn") == 4
    assert store.write_beliefs(frame, source="vtn") == 4
    overlapping = price_frame([120.0, 130.0, 140.0], T0 - timedelta(hours=12), start=T0 + timedelta(minutes=30))
    store.write_beliefs(overlapping, source="vtn")
    assert row_count(store) == 5
    latest = store.read_latest([PRICE])
    assert latest["value"].tolist() == [100.0, 110.0, 120.0, 130.0, 140.0]


def test_read_returns_the_latest_belief_per_event(store: TimeSeriesStore) -> None:
    store.write_beliefs(price_frame([100.0, 110.0], belief_time=T0 - timedelta(hours=12)), source="vtn")
    store.write_beliefs(price_frame([105.0], belief_time=T0 - timedelta(hours=1)), source="vtn")
    store.write_beliefs(price_frame([90.0, 95.0], belief_time=T0 - timedelta(hours=24)), source="forecast")

    latest = store.read_latest([PRICE])
    assert latest["value"].tolist() == [105.0, 110.0]
    assert latest["source"].tolist() == ["vtn", "vtn"]
    assert latest["belief_time"].iloc[0] == pd.Timestamp(T0 - timedelta(hours=1))
    assert latest["event_resolution"].iloc[0] == pd.Timedelta(minutes=15)
    assert row_count(store) == 5

    only_forecast = store.read_latest([PRICE], sources=["forecast"])
    assert only_forecast["value"].tolist() == [90.0, 95.0]
    window = store.read_latest([PRICE], start=T0 + timedelta(minutes=15), end=T0 + timedelta(hours=1))
    assert window["value"].tolist() == [110.0]


def test_martinique_local_times_are_stored_and_read_as_utc(store: TimeSeriesStore) -> None:
    local_midnight = datetime(2026, 7, 1, 0, 0, tzinfo=MARTINIQUE)  # UTC-4 all year, no DST
    frame = price_frame([80.0], belief_time=local_midnight - timedelta(days=1), start=local_midnight)
    store.write_beliefs(frame, source="vtn")

    latest = store.read_latest([PRICE])
    assert str(latest["event_start"].dt.tz) == "UTC"
    assert latest["event_start"].iloc[0] == pd.Timestamp("2026-07-01 04:00", tz="UTC")
    in_local_window = store.read_latest(
        [PRICE], start=local_midnight, end=local_midnight + timedelta(minutes=15)
    )
    assert in_local_window["value"].tolist() == [80.0]


def test_bulk_write_of_100k_rows(store: TimeSeriesStore) -> None:
    sensor_ids = np.repeat(np.arange(61, 71), 10_000)
    starts = pd.Timestamp(T0) + pd.to_timedelta(np.tile(np.arange(10_000) * 15, 10), unit="min")
    values = np.random.default_rng(7).uniform(0, 22, size=100_000).round(3)
    frame = pd.DataFrame(
        {"sensor_id": sensor_ids, "event_start": starts, "value": values, "belief_time": pd.Timestamp(T0)}
    )
    assert store.write_beliefs(frame, source="meter") == 100_000
    assert store.write_beliefs(frame, source="meter") == 100_000
    assert row_count(store) == 100_000

    latest = store.read_latest(list(range(61, 71)))
    assert len(latest) == 100_000
    expected = frame.sort_values(["sensor_id", "event_start"])["value"].to_numpy()
    np.testing.assert_array_equal(latest["value"].to_numpy(), expected)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"value": [1.0, float("nan")]}, "sensor 84, event 2026-11-28T00:15:00+00:00: value nan"),
        ({"value": [1.0, float("inf")]}, "is not a finite number"),
        ({"value": [1.0, "cheap"]}, "value 'cheap' is not a finite number"),
        ({"sensor_id": [84, 999]}, "sensor(s) [999] are not registered"),
        ({"event_start": [datetime(2026, 11, 28, 0, 0), datetime(2026, 11, 28, 0, 15)]}, "has no time zone"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    store: TimeSeriesStore, change: dict, message: str
) -> None:
    store.write_beliefs(price_frame([50.0], belief_time=T0 - timedelta(days=1)), source="vtn")
    frame = price_frame([1.0, 2.0], belief_time=T0).assign(**change)
    with pytest.raises(BeliefValidationError) as raised:
        store.write_beliefs(frame, source="vtn")
    assert message in str(raised.value)
    assert row_count(store) == 1
    assert store.read_latest([PRICE])["value"].tolist() == [50.0]


def test_withdrawn_beliefs_are_deleted_for_that_source_only(store: TimeSeriesStore) -> None:
    store.write_beliefs(price_frame([1.0, 2.0, 3.0], belief_time=T0), source="vtn")
    store.write_beliefs(price_frame([9.0], belief_time=T0), source="forecast")
    deleted = store.delete_beliefs([PRICE], T0, T0 + timedelta(minutes=30), source="vtn")
    assert deleted == 2
    latest = store.read_latest([PRICE])
    assert list(zip(latest["source"], latest["value"], strict=True)) == [("forecast", 9.0), ("vtn", 3.0)]


def test_unreachable_database_names_the_host_not_the_password() -> None:
    store = TimeSeriesStore("postgresql://cariflex:s3cret-pass@127.0.0.1:1/ems")
    with pytest.raises(StoreUnavailableError) as raised:
        store.migrate()
    assert "127.0.0.1:1/ems" in str(raised.value)
    assert "s3cret-pass" not in str(raised.value)


def test_a_corrected_value_for_the_same_belief_replaces_it(store: TimeSeriesStore) -> None:
    belief_time = T0 - timedelta(hours=6)
    store.write_beliefs(price_frame([100.0, 110.0], belief_time), source="vtn")
    store.write_beliefs(price_frame([100.0, 115.0, 120.0], belief_time), source="vtn")
    assert row_count(store) == 3
    assert store.read_latest([PRICE])["value"].tolist() == [100.0, 115.0, 120.0]


def test_migrations_form_one_line_and_go_down_and_up_again(store: TimeSeriesStore) -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1, "two revisions claim the same parent: chain them"
    config = alembic_config()
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(store.engine).get_table_names()) <= {VERSION_TABLE}
    store.migrate()
    assert current_revisions(store.engine) == set(script.get_heads())
    assert {"beliefs", "openadr_events", "ocpp_outbox", "ev_sessions"} <= set(inspect(store.engine).get_table_names())


def test_several_writes_in_one_transaction_land_together(store: TimeSeriesStore) -> None:
    """site_measurements writes today and the day ahead in one transaction; on PostgreSQL the second write used
    to fail with DuplicateTable (the staging table lived until the commit), which failed the main job and every
    multi-day backfill there."""
    with store.transaction() as connection:
        store.write_beliefs(price_frame([100.0, 110.0], T0 - timedelta(hours=12)), source="vtn", connection=connection)
        store.write_beliefs(price_frame([120.0], T0 - timedelta(hours=12), start=T0 + timedelta(hours=24)),
                            source="vtn", connection=connection)
        store.write_beliefs(price_frame([130.0], T0 - timedelta(hours=12), start=T0 + timedelta(hours=48)),
                            source="meter", connection=connection)
    assert row_count(store) == 4
    with pytest.raises(BeliefValidationError), store.transaction() as connection:
        store.write_beliefs(price_frame([1.0], T0), source="vtn", connection=connection)
        store.write_beliefs(price_frame([float("nan")], T0), source="vtn", connection=connection)
    assert row_count(store) == 4  # all or nothing


def test_the_sensor_table_keeps_its_columns_when_empty(tmp_path) -> None:
    store = TimeSeriesStore(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    store.migrate()
    empty = store.sensor_table()
    assert (len(empty), list(empty.columns)) == (0, ["id", "name", "unit", "resolution_seconds", "description",
                                                  "site_id"])


def test_the_sensor_table_is_ordered_by_id_whatever_the_order_of_registration(store: TimeSeriesStore) -> None:
    store.register_sensors([Sensor(id=902, name="b", unit="kW"), Sensor(id=1, name="a", unit="kW")])
    ids = store.sensor_table()["id"].tolist()
    assert ids == sorted(ids) and {1, 902} <= set(ids)


def test_a_withdrawal_keeps_to_its_window_and_its_transaction(store: TimeSeriesStore) -> None:
    store.write_beliefs(price_frame([1.0, 2.0, 3.0], belief_time=T0), source="vtn")
    assert store.delete_beliefs([PRICE], T0, T0 + timedelta(hours=1), source="never-wrote") == 0
    with pytest.raises(RuntimeError, match="after the withdrawal"), store.transaction() as connection:
        assert store.delete_beliefs([PRICE], T0, T0 + timedelta(hours=1), source="vtn", connection=connection) == 3
        raise RuntimeError("the run fails after the withdrawal")
    assert row_count(store) == 3  # rolled back with the transaction it was part of
    assert store.delete_beliefs([PRICE], T0 + timedelta(minutes=15), T0 + timedelta(minutes=30), source="vtn") == 1
    assert store.read_latest([PRICE])["value"].tolist() == [1.0, 3.0]


def test_many_sources_written_at_once_all_or_nothing(store: TimeSeriesStore) -> None:
    """write_beliefs_of_sources: each row under the source its `source` column names (registered with the type
    given), one validation for all, and nothing written when one row is bad."""
    frame = pd.concat([price_frame([1.0, 2.0], T0).assign(source="vtn:event-a"),
                       price_frame([5.0], T0 + timedelta(minutes=1), start=T0 + timedelta(minutes=15))
                       .assign(source="vtn:event-b")], ignore_index=True)
    assert store.write_beliefs_of_sources(frame, source_type="openadr") == 3
    latest = store.read_latest([PRICE])
    assert list(zip(latest["source"], latest["value"], strict=True)) == [("vtn:event-a", 1.0), ("vtn:event-b", 5.0)]
    with store.engine.connect() as connection:
        types = dict(connection.execute(select(data_sources.c.name, data_sources.c.type)).all())
    assert types == {"vtn:event-a": "openadr", "vtn:event-b": "openadr"}
    bad = pd.concat([price_frame([7.0], T0).assign(source="vtn:event-c"),
                     price_frame([float("nan")], T0).assign(source="vtn:event-d")], ignore_index=True)
    with pytest.raises(BeliefValidationError):
        store.write_beliefs_of_sources(bad, source_type="openadr")
    assert row_count(store) == 3
    assert store.write_beliefs_of_sources(frame.iloc[:0], source_type="openadr") == 0


def test_many_sources_default_to_type_other_log_their_write_and_keep_to_the_callers_transaction(
    store: TimeSeriesStore, caplog: pytest.LogCaptureFixture
) -> None:
    frame = pd.concat([price_frame([1.0], T0).assign(source="a"),
                       price_frame([2.0], T0, start=T0 + timedelta(minutes=15)).assign(source="b")],
                      ignore_index=True)
    with pytest.raises(RuntimeError, match="after the write"), store.transaction() as connection:
        store.write_beliefs_of_sources(frame, connection=connection)
        raise RuntimeError("the run fails after the write")
    assert row_count(store) == 0
    with caplog.at_level("DEBUG", logger="cariflex_pipeline.store.timeseries"):
        assert store.write_beliefs_of_sources(frame) == 2
    assert f"wrote 2 beliefs from 2 sources into {store.describe()}" in caplog.messages
    with store.engine.connect() as connection:
        types = dict(connection.execute(select(data_sources.c.name, data_sources.c.type)).all())
    assert types == {"a": "other", "b": "other"}
    assert store.read_latest([PRICE])["source"].tolist() == ["a", "b"]


def test_sensors_registered_again_take_their_new_definition(store: TimeSeriesStore) -> None:
    assert store.register_sensors([]) == 0
    assert store.register_sensors([Sensor(id=PRICE, name="spot_price", unit="EUR/MWh", description="spot")]) == 1
    row = store.sensor_table().set_index("id").loc[PRICE]
    assert (row["name"], row["unit"], row["description"]) == ("spot_price", "EUR/MWh", "spot")


def test_reads_have_the_frame_shape_and_types_empty_or_not_in_order_within_their_window(
    store: TimeSeriesStore,
) -> None:
    dtypes = {"sensor_id": "int64", "event_start": "datetime64[us, UTC]", "event_resolution": "timedelta64[us]",
              "belief_time": "datetime64[us, UTC]", "source": "object", "value": "float64"}
    empty = store.read_latest([PRICE])
    assert {column: str(dtype) for column, dtype in empty.dtypes.items()} == dtypes
    late_first = price_frame([3.0, 4.0], T0, start=T0 + timedelta(minutes=30))
    store.write_beliefs(late_first, source="vtn")
    store.write_beliefs(price_frame([1.0, 2.0], T0), source="vtn")
    store.write_beliefs(price_frame([9.0], T0).assign(sensor_id=85), source="vtn")
    latest = store.read_latest([PRICE, 85], end=T0 + timedelta(minutes=45))
    assert {column: str(dtype) for column, dtype in latest.dtypes.items()} == dtypes
    assert list(zip(latest["sensor_id"], latest["value"], strict=True)) == [(84, 1.0), (84, 2.0), (84, 3.0), (85, 9.0)]


def test_a_write_is_logged_with_its_count_source_and_store_and_typed_other_by_default(
    store: TimeSeriesStore, caplog: pytest.LogCaptureFixture
) -> None:
    assert store.write_beliefs(price_frame([], T0), source="vtn") == 0
    with caplog.at_level("DEBUG", logger="cariflex_pipeline.store.timeseries"):
        store.write_beliefs(price_frame([1.0, 2.0], T0), source="meter")
    assert f"wrote 2 beliefs from meter into {store.describe()}" in caplog.messages
    with store.engine.connect() as connection:
        assert connection.scalar(select(data_sources.c.type).where(data_sources.c.name == "meter")) == "other"


def test_sources_beyond_two_lookups_each_get_their_own_id(store: TimeSeriesStore) -> None:
    """Source ids are looked up 500 names at a time: 1,001 sources take three lookups, none left without an id."""
    frame = pd.concat([price_frame([float(n)], T0, start=T0 + timedelta(minutes=15 * n)).assign(source=f"event-{n}")
                       for n in range(1001)], ignore_index=True)
    assert store.write_beliefs_of_sources(frame, source_type="openadr") == 1001
    latest = store.read_latest([PRICE])
    assert (latest["source"] == [f"event-{n}" for n in range(1001)]).all()
