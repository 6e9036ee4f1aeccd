"""Where the day partitions start: $CARIFLEX_FIRST_DAY, else the site file's first_day, else today."""

from datetime import date, datetime
from pathlib import Path

import pytest
import yaml

from cariflex_pipeline import site_model
from cariflex_pipeline.defs.partitions import FIRST_DAY_ENV, daily_partitions, first_partition_day

BUNDLED = Path(site_model.__file__).with_name("martinique.yaml")


def test_the_bundled_site_starts_where_its_data_does() -> None:
    assert first_partition_day({}) == date(2026, 11, 1)
    assert daily_partitions.get_first_partition_key() == "2026-11-01"


def test_the_environment_overrides_the_site_file() -> None:
    assert first_partition_day({FIRST_DAY_ENV: "2026-06-15"}) == date(2026, 6, 15)


def test_a_bad_first_day_names_the_variable() -> None:
    with pytest.raises(ValueError, match=r"CARIFLEX_FIRST_DAY='15/06/2026' is not a date \(YYYY-MM-DD\)"):
        first_partition_day({FIRST_DAY_ENV: "15/06/2026"})


def test_a_site_without_first_day_starts_today(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = yaml.safe_load(BUNDLED.read_text(encoding="utf-8"))
    del raw["first_day"]
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.setenv("CARIFLEX_SITE_FILE", str(site_file))
    before = datetime.now(site_model.load_site().tz).date()
    first = first_partition_day({})
    assert before <= first <= datetime.now(site_model.load_site().tz).date()
