"""Asset sync with CitrineOS: the site model's charge points against the device models CitrineOS's REST data API
serves, here from the CitrineOS 1.8.3 double (`citrineos_rest.py`) on loopback."""

import socket

import pytest

from cariflex_pipeline.defs.dispatch import BrokerResource
from cariflex_pipeline.defs.dispatch.sync import citrineos_asset_sync
from cariflex_pipeline.defs.resources import SiteResource
from cariflex_pipeline.dispatch.citrineos_assets import (
    NOT_COMPARED,
    CitrineUnavailable,
    Difference,
    compare,
    fetch_inventory,
    read_citrineos,
)
from cariflex_pipeline.site_model import load_site
from cariflex_pipeline_tests.dispatch.citrineos_graphql import HasuraDouble, LocationRow
from cariflex_pipeline_tests.dispatch.citrineos_rest import CitrineRestDouble

TOKEN = "sync-secret-token"
SITE = load_site()
STATIONS = [cp.id for cp in SITE.charge_points]
# The site's two pools as an operator enters them in CitrineOS (one point each, near their charge points)
POINTE_SIMON = LocationRow(1, "Pointe Simon", 14.6045, -61.0653)
LAMENTIN = LocationRow(2, "Place d'Armes, Le Lamentin", 14.6135, -60.9993)


def _report_site(double: CitrineRestDouble, *, skip: str = "") -> None:
    """Every charge point of the bundled site reports the device model the site model expects."""
    for cp in SITE.charge_points:
        if cp.id != skip:
            double.report_device_model(cp.id, {cp.evse_id: ((cp.connector_id,), cp.max_power_kw * 1000)})


def _place_site(graphql: HasuraDouble, *, skip: str = "") -> None:
    """Every charge point of the bundled site is a ChargingStation at its pool's Location."""
    for cp in SITE.charge_points:
        if cp.id != skip:
            graphql.add_station(cp.id, POINTE_SIMON if "Pointe Simon" in cp.location.address else LAMENTIN)


@pytest.fixture
def double():
    with CitrineRestDouble(token=TOKEN) as running:
        yield running


@pytest.fixture
def graphql():
    with HasuraDouble(token=TOKEN) as running:
        yield running


def _check(double: CitrineRestDouble | None, **broker):
    url = {"rest_url": double.url, "rest_token": TOKEN} if double else {}
    return citrineos_asset_sync(site=SiteResource(), dispatch_broker=BrokerResource(**{**url, **broker}))


def test_all_in_sync_passes_and_says_what_it_could_not_compare(double):
    _report_site(double)
    result = _check(double)
    assert result.passed is True
    assert result.description == "10 charge points match CitrineOS's device models"
    assert result.metadata["missing"].value == 0
    assert result.metadata["not_compared"].value == NOT_COMPARED
    # one GET per station, the documented route, the tenant, and the token in the header only
    assert [(c.path, c.query, c.auth) for c in double.calls] == [
        ("/data/monitoring/variableAttribute", {"stationId": s, "tenantId": "1"}, f"Bearer {TOKEN}")
        for s in STATIONS]


def test_missing_station_extra_evse_and_differing_power_are_exactly_the_diff(double):
    _report_site(double, skip="CP004")
    double.device_models["CP007"] = []  # reported again below with a second EVSE and 7.4 kW on EVSE 1
    double.report_device_model("CP007", {1: ((1,), 7400.0), 2: ((1,), 11000.0)})
    result = _check(double)
    diff = compare(SITE.charge_points, read_citrineos(double.url, STATIONS, token=TOKEN))
    assert diff.differences == (
        Difference("CP004", "missing", "EVSE 1 connector 1, 22 kW",
                   "no device model (station unknown, or it never sent NotifyReport)"),
        Difference("CP007", "extra", "-", "EVSE 2 connector 1"),
        Difference("CP007", "power", "11 kW", "EVSE 1 Power maxLimit 7.4 kW"),
    )
    assert result.passed is False
    assert result.severity.value == "WARN"
    assert result.description == "site model and CitrineOS differ: 1 missing, 1 extra, 1 power"
    assert result.metadata["differences"].value == "\n".join([
        "| station | difference | site model | CitrineOS |", "|---|---|---|---|",
        "| CP004 | missing | EVSE 1 connector 1, 22 kW | no device model (station unknown, or it never sent "
        "NotifyReport) |",
        "| CP007 | extra | - | EVSE 2 connector 1 |",
        "| CP007 | power | 11 kW | EVSE 1 Power maxLimit 7.4 kW |"])


def test_a_station_with_another_connector_is_missing_ours_and_extra_its_own(double):
    _report_site(double, skip="CP002")
    double.report_device_model("CP002", {1: ((2,), 22000.0)})
    diff = compare(SITE.charge_points, read_citrineos(double.url, STATIONS, token=TOKEN))
    assert diff.differences == (
        Difference("CP002", "missing", "EVSE 1 connector 1", "EVSE 1 connector(s) [2]"),
        Difference("CP002", "extra", "-", "EVSE 1 connector 2"),
    )


def test_power_not_reported_is_a_difference(double):
    _report_site(double, skip="CP010")
    double.report_device_model("CP010", {1: ((1,), None)})
    diff = compare(SITE.charge_points, read_citrineos(double.url, STATIONS, token=TOKEN))
    assert diff.differences == (Difference("CP010", "power", "11 kW", "EVSE 1 Power maxLimit not reported"),)


def test_a_malformed_row_is_named_and_the_rest_still_compared(double):
    _report_site(double)
    rows = double.device_models["CP003"]
    power_row = next(r for r in rows if r["component"]["name"] == "EVSE")
    power_row["variable"]["variableCharacteristics"]["maxLimit"] = "lots"
    double.device_models["CP005"].append("not a row")
    del double.device_models["CP008"][2]["component"]["evse"]  # CP008's Connector row: no evse
    result = _check(double)
    assert result.metadata["unreadable"].value == "\n".join([
        f"- CP003 variableAttribute row 1 (id {power_row['id']}): EVSE.Power variableCharacteristics.maxLimit is "
        "'lots', not a number",
        "- CP005 variableAttribute row 3 (id ?): a str, not an object",
        "- CP008 variableAttribute row 2 (id 3): component Connector evse missing or not an object",
    ])
    diff = compare(SITE.charge_points, read_citrineos(double.url, STATIONS, token=TOKEN))
    # CP003's power is unknown (its only Power row was unreadable), CP008's connector is unknown; others compared
    assert diff.differences == (
        Difference("CP003", "power", "22 kW", "EVSE 1 Power maxLimit not reported"),
        Difference("CP008", "missing", "EVSE 1 connector 1", "EVSE 1 connector(s) none"),
    )
    assert result.passed is False
    assert result.description == "site model and CitrineOS differ: 1 missing, 1 power, 3 unreadable row(s)"


def test_a_power_that_is_not_finite_is_unreadable(double):
    _report_site(double)
    next(r for r in double.device_models["CP006"] if r["component"]["name"] == "EVSE")[
        "variable"]["variableCharacteristics"]["maxLimit"] = "NaN"
    diff = compare(SITE.charge_points, read_citrineos(double.url, STATIONS, token=TOKEN))
    assert diff.skipped == ("CP006 variableAttribute row 1 (id 2): EVSE.Power variableCharacteristics.maxLimit is "
                            "'NaN', not a finite number",)
    assert diff.differences == (Difference("CP006", "power", "11 kW", "EVSE 1 Power maxLimit not reported"),)


def test_citrineos_down_is_a_clear_warning_not_a_crash():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = citrineos_asset_sync(site=SiteResource(), dispatch_broker=BrokerResource(
        rest_url=f"http://127.0.0.1:{port}", rest_token=TOKEN))
    assert result.passed is False
    assert result.severity.value == "WARN"
    assert result.description == (f"not compared: CitrineOS REST data API at http://127.0.0.1:{port}: ConnectError "
                                  "reading the device model of CP001")
    assert TOKEN not in str(result.metadata) + result.description


def test_an_http_error_names_the_status_and_station(double):
    _report_site(double)
    double.fail_next_request(503)
    with pytest.raises(CitrineUnavailable, match="HTTP 503 reading the device model of CP001"):
        read_citrineos(double.url, STATIONS, token=TOKEN)
    result = _check(double, rest_token="wrong-token")
    assert result.passed is False
    assert result.description.endswith("HTTP 401 reading the device model of CP001")


def test_no_rest_url_is_not_green():
    result = _check(None)
    assert result.passed is False
    assert result.severity.value == "WARN"
    assert result.description == "not compared: CARIFLEX_CITRINEOS_URL is not set"


def test_with_graphql_all_in_sync_compares_everything(double, graphql):
    _report_site(double)
    _place_site(graphql)
    graphql.add_station("OTHER1", None, tenant_id=2)  # another tenant's station is not ours to compare
    result = _check(double, graphql_url=graphql.url)
    assert result.passed is True
    assert result.metadata["not_compared"].value == "nothing"
    assert graphql.requests == [{"query": "query CariflexAssetSync($tenantId: Int!) { ChargingStations(where: "
                                          "{tenantId: {_eq: $tenantId}}) { id locationId Location { id name "
                                          "coordinates } } }", "variables": {"tenantId": 1}}]


def test_with_graphql_an_extra_station_a_missing_one_and_a_differing_location_are_exactly_the_diff(double, graphql):
    _report_site(double)
    _place_site(graphql, skip="CP009")
    graphql.stations[5]["Location"] = graphql.stations[0]["Location"]  # CP006 filed under Pointe Simon
    graphql.add_station("CP011", LAMENTIN)
    graphql.add_station("CP012", None)
    result = _check(double, graphql_url=graphql.url)
    assert result.passed is False
    assert result.description == "site model and CitrineOS differ: 1 missing, 2 extra, 1 location"
    assert result.metadata["differences"].value == "\n".join([
        "| station | difference | site model | CitrineOS |", "|---|---|---|---|",
        "| CP006 | location | 14.61270, -61.00030 | Pointe Simon at 14.60450, -61.06530 (7.1 km away) |",
        "| CP009 | missing | EVSE 1 connector 1, 11 kW | no ChargingStation of that id |",
        "| CP011 | extra | - | a ChargingStation not in the site model |",
        "| CP012 | extra | - | a ChargingStation not in the site model |"])


def test_with_graphql_a_station_without_location_and_a_malformed_row_are_named(double, graphql):
    _report_site(double)
    _place_site(graphql)
    graphql.stations[1]["Location"] = None
    graphql.stations[2]["Location"]["coordinates"] = "14.6, -61.0"
    graphql.stations.append({"id": 42, "tenantId": 1, "locationId": None, "Location": None})
    inventory = fetch_inventory(graphql.url, token=TOKEN)
    assert inventory.skipped == (
        "ChargingStations row 2: station CP003: Location.coordinates is '14.6, -61.0', not a GeoJSON Point",
        "ChargingStations row 10: id is 42, not a station id")
    diff = compare(SITE.charge_points, read_citrineos(double.url, STATIONS, token=TOKEN), inventory)
    # CP003's row was unreadable, so CP003 is unknown to the station list: missing, the others still compared
    assert diff.differences == (
        Difference("CP002", "location", "14.60410, -61.06590", "no Location coordinates"),
        Difference("CP003", "missing", "EVSE 1 connector 1, 22 kW", "no ChargingStation of that id"),
    )
    assert diff.skipped == inventory.skipped


def test_graphql_errors_are_a_clear_warning(double, graphql):
    _report_site(double)
    result = _check(double, graphql_url=graphql.url, rest_token="wrong-token")
    assert result.description.endswith("HTTP 401 reading the device model of CP001")
    with pytest.raises(CitrineUnavailable, match=r"CitrineOS GraphQL at http://127\.0\.0\.1:\d+/v1/graphql: "
                                                 "Could not verify JWT: JWSError JWSInvalidSignature"):
        fetch_inventory(graphql.url, token="wrong-token")
