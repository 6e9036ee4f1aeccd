import copy
from pathlib import Path

import pytest
import yaml

from cariflex_pipeline.derived.sensors import derived_sensors
from cariflex_pipeline.site_model import (
    Portfolio,
    PortfolioError,
    Site,
    SiteModelError,
    default_site_file,
    load_portfolio,
    load_site,
    parse_portfolio,
)

from .test_site_model import set_at

BUNDLED = Path(default_site_file()).with_name("martinique_portfolio.yaml")


def bundled_raw() -> dict:
    return yaml.safe_load(BUNDLED.read_text(encoding="utf-8"))


def write(tmp_path: Path, raw: dict, name: str = "portfolio.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_bundled_portfolio_splits_the_seed_into_its_two_locations(site: Site) -> None:
    portfolio = load_portfolio(BUNDLED)
    assert portfolio.site_ids == ["pointe-simon", "place-d-armes"]
    pointe, armes = (portfolio.site(site_id) for site_id in portfolio.site_ids)
    assert [cp.id for cp in pointe.charge_points] == ["CP001", "CP002", "CP003", "CP004", "CP005"]
    assert [cp.id for cp in armes.charge_points] == ["CP006", "CP007", "CP008", "CP009", "CP010"]
    assert {cp.location.address for cp in pointe.charge_points} == {"Pointe Simon, Fort-de-France"}
    assert {cp.location.address for cp in armes.charge_points} == {"Place d'Armes, Le Lamentin"}
    # every device of the seed is in exactly one site, with the seed's sensor id (dashboard continuity)
    for kind in ("charge_points", "pv_installations", "batteries", "v2g_chargers"):
        assert getattr(pointe, kind) + getattr(armes, kind) == getattr(site, kind)
    # the site-wide signals are shared, and every mapping feeds both sites as in the seed
    assert pointe.signals == armes.signals == site.signals
    assert pointe.openadr == armes.openadr == site.openadr
    assert {portfolio.entry(site_id).citrineos_tenant for site_id in portfolio.site_ids} == {"1"}


def test_the_two_connections_are_the_documented_split_of_the_seeds(site: Site) -> None:
    portfolio = load_portfolio(BUNDLED)
    pointe, armes = (portfolio.site(site_id).grid_connection for site_id in portfolio.site_ids)
    # in proportion to charge-point power: 110 and 55 kW of 165 kW (the YAML's and docs/fleet.md's assumption)
    assert (pointe.import_capacity_kw, pointe.export_capacity_kw) == (80, 40)
    assert (armes.import_capacity_kw, armes.export_capacity_kw) == (40, 20)
    assert pointe.import_capacity_kw + armes.import_capacity_kw == site.grid_connection.import_capacity_kw == 120
    assert pointe.export_capacity_kw + armes.export_capacity_kw == site.grid_connection.export_capacity_kw == 60


def test_a_plain_site_file_is_a_one_site_portfolio_of_exactly_that_site(site: Site) -> None:
    portfolio = load_portfolio(default_site_file())
    assert portfolio.site_ids == ["cariflex-martinique"]
    assert portfolio.only_site() == site == load_site()
    assert portfolio.entry("cariflex-martinique").citrineos_tenant is None  # the deployment's tenant, as today


def test_a_one_site_portfolio_file_yields_exactly_todays_site(tmp_path: Path, site: Site) -> None:
    # the seed written as a portfolio: site-wide sensors and signals at the top, its devices in its one site
    raw = yaml.safe_load(default_site_file().read_text(encoding="utf-8"))
    shared = [s for s in raw["sensors"] if s["id"] > 80]
    own = {key: raw.pop(key) for key in ("charge_points", "pv_installations", "batteries", "v2g_chargers")}
    raw["sensors"] = [s for s in raw["sensors"] if s["id"] <= 80]
    site_entry = {"id": "martinique", "name": raw["name"], "grid_connection": raw.pop("grid_connection"),
                  "sensors": raw.pop("sensors"), **own}
    raw.update(sensors=shared, sites=[site_entry])
    portfolio = load_portfolio(write(tmp_path, raw))
    assert portfolio.only_site() == site


def test_load_portfolio_defaults_to_todays_site_unless_a_portfolio_file_is_named(
        monkeypatch: pytest.MonkeyPatch, site: Site) -> None:
    monkeypatch.delenv("CARIFLEX_PORTFOLIO_FILE", raising=False)
    monkeypatch.delenv("CARIFLEX_SITE_FILE", raising=False)
    assert load_portfolio().only_site() == site
    monkeypatch.setenv("CARIFLEX_PORTFOLIO_FILE", str(BUNDLED))
    assert load_portfolio().site_ids == ["pointe-simon", "place-d-armes"]


def test_a_site_is_added_by_editing_the_file(tmp_path: Path) -> None:
    raw = bundled_raw()
    robert = copy.deepcopy(raw["sites"][1])
    robert.update(id="le-robert", name="Le Robert depot", citrineos_tenant="7",
                  grid_connection={"import_capacity_kw": 30, "export_capacity_kw": 10},
                  sensors=[{"id": 201, "name": "cp011_power", "unit": "kW"}], derived_sensors_from=121,
                  charge_points=[{**robert["charge_points"][0], "id": "CP011", "sensor_id": 201}],
                  pv_installations=[], batteries=[], v2g_chargers=[])
    raw["sites"].append(robert)
    portfolio = load_portfolio(write(tmp_path, raw))
    assert portfolio.site_ids == ["pointe-simon", "place-d-armes", "le-robert"]
    assert portfolio.site("le-robert").grid_connection.import_capacity_kw == 30
    assert [cp.sensor_id for cp in portfolio.site("le-robert").charge_points] == [201]
    assert portfolio.entry("le-robert").citrineos_tenant == "7"
    assert len(portfolio.site("le-robert").openadr.signals) == 6  # `sites: all` reaches the new site


def test_a_signal_may_target_one_site() -> None:
    raw = bundled_raw()
    raw["sensors"].append({"id": 88, "name": "load_control_armes", "unit": "%"})
    raw["openadr"]["signals"][1]["sites"] = ["pointe-simon"]
    raw["openadr"]["signals"].append({**raw["openadr"]["signals"][1], "sensor_id": 88, "sites": ["place-d-armes"]})
    portfolio = parse_portfolio(raw)
    pointe, armes = (portfolio.site(site_id).openadr.signals for site_id in portfolio.site_ids)
    assert [m.sensor_id for m in pointe] == [84, 86, 87, 84, 86, 87]
    assert [m.sensor_id for m in armes] == [84, 87, 84, 86, 87, 88]


def test_sites_may_share_a_tenant_or_have_their_own() -> None:
    raw = bundled_raw()
    assert parse_portfolio(raw).entry("place-d-armes").citrineos_tenant == "1"
    raw["sites"][1]["citrineos_tenant"] = "2"
    assert parse_portfolio(raw).entry("place-d-armes").citrineos_tenant == "2"


def test_an_unknown_site_is_named() -> None:
    with pytest.raises(KeyError, match="no site 'le-robert'; sites: pointe-simon, place-d-armes"):
        load_portfolio(BUNDLED).site("le-robert")
    with pytest.raises(ValueError, match="has 2 sites, not one"):
        load_portfolio(BUNDLED).only_site()


def _sensor_defined_twice(raw: dict) -> None:
    raw["sites"][1]["sensors"].append({"id": 61, "name": "cp001_copy", "unit": "kW"})


def _shared_sensor_on_two_sites(raw: dict) -> None:
    raw["sensors"].append({"id": 90, "name": "shared_meter", "unit": "kW"})
    raw["sites"][0]["charge_points"][0]["sensor_id"] = 90
    raw["sites"][1]["charge_points"][0]["sensor_id"] = 90


def _shared_sensor_twice(raw: dict) -> None:
    raw["sensors"].append({"id": 84, "name": "price_copy", "unit": "EUR/MWh"})


ARMES = "site 'place-d-armes'"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (set_at(["sites", 1, "id"], "pointe-simon"),
         "site 'pointe-simon' (sites entry #1), field id: duplicate site id, already sites entry #0"),
        (set_at(["sites", 1, "id"], "Place d'Armes"), "site \"Place d'Armes\", field id: String should match pattern"),
        (set_at(["sites", 1, "charge_points", 0, "id"], "CP001"),
         f"{ARMES}, charge_points entry 'CP001', field id: charge point 'CP001' is already in site 'pointe-simon'"),
        (set_at(["sites", 1, "charge_points", 0, "sensor_id"], 61),
         f"{ARMES}, charge_points entry 'CP006', field sensor_id: sensor 61 belongs to site 'pointe-simon'"),
        (_sensor_defined_twice,
         f"{ARMES}, sensors entry 61, field id: sensor 61 is already defined by site 'pointe-simon'"),
        (_shared_sensor_on_two_sites,
         f"{ARMES}, charge_points entry 'CP006', field sensor_id: sensor 90 is already used by site 'pointe-simon' "
         "(charge_points entry 'CP001', field sensor_id)"),
        (_shared_sensor_twice, "sensors entry 84, field id: sensor 84 is already defined in the shared sensors"),
        (set_at(["sites", 1, "pv_installations", 0, "sensor_id"], 84),
         "site 'pointe-simon', the portfolio's signals, field consumption_price: sensor 84 is a device sensor of site "
         "'place-d-armes' (pv_installations entry 'pv_06', field sensor_id)"),
        (set_at(["sites", 1, "batteries", 0, "name"], "battery_01"),
         f"{ARMES}, batteries entry 'battery_01', field name: device name 'battery_01' is already used by site "
         "'pointe-simon' (batteries entry 'battery_01'); an S2 resource manager names its device by it"),
        (set_at(["sites", 1, "v2g_chargers", 0, "name"], "battery_06"),
         f"{ARMES}, v2g_chargers entry 'battery_06', field name: device name 'battery_06' is already used by site "
         "'place-d-armes' (batteries entry 'battery_06')"),
        (set_at(["sites", 1, "batteries", 2, "sensor_id"], 53),
         f"{ARMES}, batteries entry 'battery_08', field sensor_id: sensor 53 belongs to site 'pointe-simon'"),
        (set_at(["openadr", "signals", 1, "sites"], ["pointe-simon", "le-robert"]),
         "openadr signals entry #1 (sensor 86), field sites: unknown site 'le-robert'"),
        (set_at(["openadr", "signals", 1, "sites"], []),
         "openadr signals entry #1 (sensor 86), field sites: names no site"),
        (set_at(["openadr", "signals", 1, "sensor_id"], 66),
         "openadr signals entry #1 (sensor 66), field sensor_id: sensor 66 belongs to site 'place-d-armes', "
         "the signal targets site 'pointe-simon'"),
        (set_at(["openadr", "signals", 1, "sensor_id"], 83),
         "openadr signals entry #1 (sensor 83), field sensor_id: sensor 83 is defined nowhere"),
        (set_at(["sites", 1, "grid_connection"], KeyError), f"{ARMES}, field grid_connection: Field required"),
        (set_at(["sites", 1, "grid_connection", "import_capacity_kw"], 0),
         f"{ARMES}, field grid_connection.import_capacity_kw: Input should be greater than 0"),
        (set_at(["sites", 1, "grid_connection", "import_capacity_kw"], KeyError),
         f"{ARMES}, field grid_connection.import_capacity_kw: Field required"),
        (set_at(["sites", 1, "grid_connection", "export_capacity_kw"], -20),
         f"{ARMES}, field grid_connection.export_capacity_kw: Input should be greater than 0"),
        (set_at(["sites", 1, "grid_connection", "import_capacity_kw"], float("nan")),
         f"{ARMES}, field grid_connection.import_capacity_kw: Input should be a finite number"),
        (set_at(["sites", 1, "grid_connection", "import_capacity_kw"], float("inf")),
         f"{ARMES}, field grid_connection.import_capacity_kw: Input should be a finite number"),
        (set_at(["sites", 1, "charge_points", 2, "max_power_kw"], -11),
         f"{ARMES}, charge_points entry 'CP008', field max_power_kw: Input should be greater than 0"),
        (set_at(["sites", 1, "charge_points", 0, "sensor_id"], 83),
         f"{ARMES}: charge point 'CP006': field sensor_id: sensor 83 is not in sensors"),
        (set_at(["sites", 1, "signals"], {"irradiance": 81, "temperature": 82, "consumption_price": 84,
                                       "dso_price": 85, "load_control": 61, "demand_response": 87}),
         f"{ARMES}, signals, field load_control: sensor 61 belongs to site 'pointe-simon'"),
        (set_at(["signals"], KeyError),
         "site 'pointe-simon', field signals: missing, and the portfolio names no signals for all sites"),
        (set_at(["sites", 1, "timezone"], "America/Fort-de-France"), f"{ARMES}, field timezone: unknown timezone"),
    ],
)
def test_a_bad_portfolio_names_the_site_the_entry_and_the_field(tmp_path: Path, edit, expected: str) -> None:
    raw = bundled_raw()
    edit(raw)
    path = write(tmp_path, raw)
    with pytest.raises(PortfolioError) as raised:
        load_portfolio(path)
    assert expected in str(raised.value)
    assert str(path) in str(raised.value)
    assert isinstance(raised.value, SiteModelError)  # whoever stops on a bad site file stops on this too


def test_every_broken_site_is_named_at_once() -> None:
    raw = bundled_raw()
    raw["sites"][0]["charge_points"][0]["sensor_id"] = 83
    raw["sites"][1]["charge_points"][0]["sensor_id"] = 46  # pv_06's
    with pytest.raises(PortfolioError) as raised:
        parse_portfolio(raw)
    message = str(raised.value)
    assert "site 'pointe-simon': charge point 'CP001': field sensor_id: sensor 83 is not in sensors" in message
    assert "site 'place-d-armes': pv installation 'pv_06': field sensor_id: sensor 46 already used by charge point " \
        "'CP006'" in message


def test_a_bad_plain_site_file_fails_as_load_site_does(tmp_path: Path) -> None:
    raw = yaml.safe_load(default_site_file().read_text(encoding="utf-8"))
    raw["grid_connection"]["import_capacity_kw"] = 0
    path = write(tmp_path, raw, "site.yaml")
    with pytest.raises(SiteModelError) as from_portfolio:
        load_portfolio(path)
    with pytest.raises(SiteModelError) as from_site:
        load_site(path)
    assert str(from_portfolio.value) == str(from_site.value)


def test_an_unreadable_portfolio_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SiteModelError, match=r"portfolio file .*missing\.yaml: cannot be read"):
        load_portfolio(tmp_path / "missing.yaml")


def test_from_site_round_trips(site: Site) -> None:
    portfolio = Portfolio.from_site(site, "martinique")
    assert portfolio.site("martinique") == site
    assert parse_portfolio(portfolio.model_dump()).only_site() == site


def test_each_site_of_a_fleet_has_its_own_derived_sensors() -> None:
    portfolio = parse_portfolio(bundled_raw())
    pointe, armes = (derived_sensors(portfolio.site(site_id)) for site_id in portfolio.site_ids)
    assert (pointe.total_flexibility, pointe.ev_flexibility_potential) == (101, 105)  # the seed's, for Grafana
    assert (armes.total_flexibility, armes.grid_impact, armes.ev_flexibility_potential) == (111, 112, 115)


def test_derived_sensor_ranges_that_overlap_or_take_a_sensor_are_refused() -> None:
    raw = bundled_raw()
    raw["sites"][1]["derived_sensors_from"] = 104
    with pytest.raises(PortfolioError, match=r"site 'place-d-armes', field derived_sensors_from: derived sensors "
                                             r"104-108 overlap site 'pointe-simon''s \(sensor 104\); give each site"):
        parse_portfolio(raw)
    raw["sites"][1]["derived_sensors_from"] = 84
    with pytest.raises(PortfolioError, match=r"site 'place-d-armes', field derived_sensors_from: derived sensors "
                                             r"84-88 take sensor 84, in the shared sensors"):
        parse_portfolio(raw)
    del raw["sites"][1]["derived_sensors_from"]  # both on the default 101-105
    with pytest.raises(PortfolioError, match=r"derived sensors 101-105 overlap site 'pointe-simon''s"):
        parse_portfolio(raw)


def test_the_portfolio_places_every_sensor_station_and_device_in_its_site() -> None:
    portfolio = load_portfolio(BUNDLED)
    owners = portfolio.sensor_sites()
    assert owners[61] == "pointe-simon" and owners[70] == "place-d-armes" and owners[84] is None
    assert sorted(owners) == sorted(sensor.id for sensor in portfolio.all_sensors())
    stations = portfolio.station_sites()
    assert stations["CP005"] == "pointe-simon" and stations["CP006"] == "place-d-armes" and len(stations) == 10
    devices = portfolio.device_sites()
    assert devices["battery_05"] == "pointe-simon" and devices["v2g_06"] == "place-d-armes" and len(devices) == 20


def test_a_plain_site_file_places_everything_in_its_one_site(site: Site) -> None:
    portfolio = Portfolio.from_site(site)
    assert set(portfolio.sensor_sites().values()) == {"cariflex-martinique"}
    assert set(portfolio.station_sites().values()) == set(portfolio.device_sites().values()) == {"cariflex-martinique"}
