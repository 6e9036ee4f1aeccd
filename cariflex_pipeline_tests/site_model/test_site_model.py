from pathlib import Path

import pytest
import yaml

from cariflex_pipeline.site_model import Site, SiteModelError, default_site_file, load_site


def test_bundled_site_describes_the_seed(site: Site) -> None:
    assert site.timezone == "America/Martinique"
    assert [cp.id for cp in site.charge_points] == [f"CP{n:03d}" for n in range(1, 11)]
    assert [cp.max_power_kw for cp in site.charge_points] == [22.0] * 5 + [11.0] * 5
    assert [cp.sensor_id for cp in site.charge_points] == list(range(61, 71))
    assert all((cp.evse_id, cp.connector_id) == (1, 1) for cp in site.charge_points)
    assert [pv.sensor_id for pv in site.pv_installations] == list(range(41, 51))
    assert [b.sensor_id for b in site.batteries] == list(range(51, 61))
    assert [v.sensor_id for v in site.v2g_chargers] == list(range(71, 81))
    assert site.sensor(84).unit == "EUR/MWh"
    assert site.sensor(86).unit == "%"
    assert site.sensor(87).unit == "dimensionless"
    assert (site.signals.irradiance, site.signals.temperature) == (81, 82)
    assert site.grid_connection.import_capacity_kw > 0


def write_site(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load(default_site_file().read_text(encoding="utf-8"))
    edit(raw)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_a_second_site_is_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def smaller(raw: dict) -> None:
        raw["name"] = "Le Robert depot"
        raw["charge_points"] = raw["charge_points"][:2]

    path = write_site(tmp_path, smaller)
    monkeypatch.setenv("CARIFLEX_SITE_FILE", str(path))
    other = load_site()
    assert other.name == "Le Robert depot"
    assert [cp.id for cp in other.charge_points] == ["CP001", "CP002"]


def set_at(path: list, value):
    """An edit setting (or, with KeyError, deleting) the value at `path` of the raw file."""
    def edit(raw: dict) -> None:
        target = raw
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return edit


def _duplicate_price_sensor(raw: dict) -> None:
    raw["sensors"].append({"id": 84, "name": "price_copy", "unit": "EUR/MWh"})


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (set_at(["charge_points", 2, "max_power_kw"], -22), "charge_points entry 'CP003', field max_power_kw"),
        (set_at(["charge_points", 6, "max_power_kw"], KeyError), "charge_points entry 'CP007', field max_power_kw"),
        (set_at(["charge_points", 1, "sensor_id"], KeyError), "charge_points entry 'CP002', field sensor_id: Field"),
        (_duplicate_price_sensor, "duplicate sensor id 84"),
        (set_at(["sensors", 0, "unit"], "kWatt"), "sensors entry 41, field unit: unknown unit 'kWatt'"),
        (set_at(["charge_points", 4, "sensor_id"], 83), "charge point 'CP005': field sensor_id: sensor 83 is not"),
        (set_at(["charge_points", 0, "sensor_id"], 84), "sensor 84 has unit 'EUR/MWh', expected 'kW'"),
        (set_at(["timezone"], "America/Fort-de-France"), "unknown timezone"),
        (set_at(["grid_connection", "import_capacity_kw"], 0), "grid_connection.import_capacity_kw"),
    ],
)
def test_a_bad_site_file_names_the_entry_and_field(tmp_path: Path, edit, expected: str) -> None:
    path = write_site(tmp_path, edit)
    with pytest.raises(SiteModelError) as raised:
        load_site(path)
    assert expected in str(raised.value)
    assert str(path) in str(raised.value)


def test_an_unreadable_site_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SiteModelError, match=r"missing\.yaml: cannot be read"):
        load_site(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(SiteModelError, match="not valid YAML"):
        load_site(broken)
