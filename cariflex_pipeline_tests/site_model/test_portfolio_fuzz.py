"""Property tests of the portfolio: generated fleets keep each site's own limits through a file, and a mangled
bundled file is either still a portfolio or a SiteModelError naming the site, never any other exception."""

import copy
import math

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cariflex_pipeline.site_model import SiteModelError, parse_portfolio

from .test_portfolio import bundled_raw

SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
KW = st.floats(min_value=0.1, max_value=1e4, allow_nan=False, allow_infinity=False)


@st.composite
def fleets(draw: st.DrawFn) -> dict:
    """A portfolio of 1-6 sites, each with 0-4 charge points of its own sensors and its own connection."""
    sites, next_sensor = [], 100
    for index in range(draw(st.integers(min_value=1, max_value=6))):
        points = []
        for number in range(draw(st.integers(min_value=0, max_value=4))):
            points.append({"id": f"S{index}-CP{number}", "max_power_kw": draw(KW), "sensor_id": next_sensor + number,
                           "location": {"latitude": 14.6, "longitude": -61.0}})
        sites.append({
            "id": f"site-{index}", "name": f"Site {index}",
            "grid_connection": {"import_capacity_kw": draw(KW), "export_capacity_kw": draw(KW)},
            "sensors": [{"id": p["sensor_id"], "name": f"{p['id']}_power", "unit": "kW"} for p in points],
            "charge_points": points,
            "citrineos_tenant": draw(st.sampled_from(["1", "2", f"tenant-{index}"])),
            "derived_sensors_from": 1000 + 10 * index,  # each site's derived series apart from the others'
        })
        next_sensor += 10
    shared = [{"id": n, "name": f"signal_{n}", "unit": unit} for n, unit in
              ((1, "W/m²"), (2, "°C"), (3, "EUR/MWh"), (4, "EUR/MWh"), (5, "%"), (6, "dimensionless"))]
    return {"name": "fleet", "timezone": "America/Martinique", "sensors": shared, "sites": sites,
            "signals": {"irradiance": 1, "temperature": 2, "consumption_price": 3, "dso_price": 4, "load_control": 5,
                        "demand_response": 6}}


@SETTINGS
@given(fleets())
def test_a_generated_fleet_round_trips_and_every_site_keeps_its_own_limits(raw: dict) -> None:
    portfolio = parse_portfolio(yaml.safe_load(yaml.safe_dump(raw, allow_unicode=True)))
    assert portfolio.site_ids == [entry["id"] for entry in raw["sites"]]
    for entry in raw["sites"]:
        site = portfolio.site(entry["id"])
        assert site.grid_connection.model_dump() == entry["grid_connection"]
        assert [(cp.id, cp.sensor_id) for cp in site.charge_points] == [
            (cp["id"], cp["sensor_id"]) for cp in entry["charge_points"]]
        assert {s.id for s in site.sensors} == {s["id"] for s in entry["sensors"]} | set(range(1, 7))
        assert portfolio.entry(entry["id"]).citrineos_tenant == entry["citrineos_tenant"]
    assert math.isclose(sum(portfolio.site(i).grid_connection.import_capacity_kw for i in portfolio.site_ids),
                        sum(entry["grid_connection"]["import_capacity_kw"] for entry in raw["sites"]))


BUNDLED = bundled_raw()
# Values of every kind a hand-edited file can hold, and the other site's ids: clashes are the likely edit.
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**6, max_value=10**6), st.floats(), st.text(max_size=12),
    st.lists(st.integers(min_value=0, max_value=100), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from(["CP001", "CP006", 61, 66, 84, 0, -1, "pointe-simon", "America/Martinique", "kW", "%"]),
)
DELETE = object()


@st.composite
def site_mutations(draw: st.DrawFn) -> tuple[int, list, object]:
    """(site index, path inside that site, new value or DELETE)."""
    index = draw(st.sampled_from([0, 1]))
    site = BUNDLED["sites"][index]
    key = draw(st.sampled_from([key for key in site if key != "id"] + ["timezone", "first_day", "signals"]))
    path: list = [key]
    value = site.get(key)
    while isinstance(value, list | dict) and value and draw(st.booleans()):
        step = draw(st.sampled_from(range(len(value)) if isinstance(value, list) else list(value)))
        path.append(step)
        value = value[step]
    return index, path, draw(st.one_of(st.just(DELETE), VALUES))


def _has(container: object, key: object) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(container, list) and isinstance(key, int) and key < len(container)


def _apply(site: dict, path: list, value: object) -> None:
    """Set (or delete) the value at `path`; nothing when an earlier mutation removed or replaced the way there.
    A key the site does not have yet (timezone) is added."""
    parent: object = site
    for step in path[:-1]:
        if not _has(parent, step):
            return
        parent = parent[step]
    last = path[-1]
    if value is DELETE:
        if _has(parent, last):
            del parent[last]
    elif _has(parent, last) or (isinstance(parent, dict) and isinstance(last, str)):
        parent[last] = value


@SETTINGS
@given(st.lists(site_mutations(), min_size=1, max_size=3))
def test_a_mangled_site_is_refused_naming_it_or_still_loads(mutations: list) -> None:
    raw = copy.deepcopy(BUNDLED)
    for index, path, value in mutations:
        _apply(raw["sites"][index], path, value)
    mutated = {BUNDLED["sites"][index]["id"] for index, _, _ in mutations}
    try:
        portfolio = parse_portfolio(raw)
    except SiteModelError as error:
        assert any(f"site {site_id!r}" in str(error) for site_id in mutated), str(error)
    else:
        assert portfolio.site_ids == ["pointe-simon", "place-d-armes"]
