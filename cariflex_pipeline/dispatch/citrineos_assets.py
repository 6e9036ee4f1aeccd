"""What CitrineOS knows about our charge points, read from its REST data API, and how it differs from the site model.

CitrineOS 1.8.3 (citrineos/citrineos-core, tag v1.8.3) serves a station's device model at
`GET /data/monitoring/variableAttribute?stationId=..&tenantId=..` (03_Modules/Monitoring/src/module/DataApi.ts,
route path from 00_Base/src/interfaces/api/AbstractModuleApi.ts `_toDataPath`): a JSON array of VariableAttribute
rows, each with its `component` (name, and `evse` {id, connectorId}) and its `variable` (name, and
`variableCharacteristics` with `maxLimit`) (01_Data/src/layers/sequelize/repository/DeviceModel.ts
`readAllByQuerystring`). From it: the EVSEs (component `EVSE`), the connectors (component `Connector`) and each
EVSE's maximum power (`EVSE.Power`'s maxLimit in W, as OCPP 2.0.1 defines it; a numeric column, so it may come as
a string). An empty array means CitrineOS holds no device model for the station: it is "missing" here.

What that API cannot tell: `stationId` is required, and 1.8.3 has no REST data route for ChargingStation or
Location. Those tables reach CitrineOS's operator UI through the Hasura GraphQL engine of its compose stack
(Server/docker-compose.yml `graphql-engine`, metadata in Server/hasura-metadata/; citrineos-operator-ui asks
`ChargingStations { id locationId Location { ... coordinates } }`). When its URL is given, the station list and
each station's Location come from there: stations CitrineOS knows beyond the site model are "extra", and a charge
point farther than LOCATION_TOLERANCE_M from its station's Location (a PostGIS point, GeoJSON [longitude,
latitude]) differs in location. Without it the diff says what it could not compare rather than passing it as equal.
Addresses are not compared: CitrineOS splits them into name/address/city, the site model keeps one free text.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from cariflex_pipeline.dispatch.connections import safe_url, tls_context
from cariflex_pipeline.site_model import ChargePoint

DEVICE_MODEL_PATH = "/data/monitoring/variableAttribute"
# What the REST data API of 1.8.3 does not serve (see the module docstring): shown when GraphQL is not configured.
NOT_COMPARED = ("stations CitrineOS knows beyond the site model, and locations: CitrineOS 1.8.3's REST data API "
                "has no ChargingStation or Location route; set CARIFLEX_CITRINEOS_GRAPHQL_URL (its Hasura GraphQL)")
STATIONS_QUERY = ("query CariflexAssetSync($tenantId: Int!) { ChargingStations(where: {tenantId: {_eq: $tenantId}}) "
                  "{ id locationId Location { id name coordinates } } }")
POWER_TOLERANCE_W = 1.0  # maxLimit is stored as a decimal; a rounding in W is not a difference
# A Location is the pool (one point for all its stations); the seed's pools span under 200 m.
LOCATION_TOLERANCE_M = 250.0
EARTH_RADIUS_M = 6_371_000.0


class CitrineUnavailable(Exception):
    """CitrineOS's REST data API could not be read at all (down, refused, unauthorized)."""


@dataclass(frozen=True)
class KnownEvse:
    """One EVSE of a station's device model in CitrineOS."""

    evse_id: int
    connector_ids: frozenset[int]
    max_power_w: float | None  # EVSE.Power maxLimit; None when the station did not report it


@dataclass(frozen=True)
class KnownStation:
    """What CitrineOS's device model holds for one station, and the rows it could not read."""

    station_id: str
    evses: Mapping[int, KnownEvse]
    skipped: tuple[str, ...] = ()  # one text per malformed row, naming the station, the row and the field


@dataclass(frozen=True)
class KnownLocation:
    """The Location CitrineOS has for a station (None fields when the station has none)."""

    name: str | None
    latitude: float | None
    longitude: float | None


@dataclass(frozen=True)
class Inventory:
    """Every station CitrineOS knows (from GraphQL), with its Location, and the rows it could not read."""

    locations: Mapping[str, KnownLocation]
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Difference:
    """One way the site model and CitrineOS disagree."""

    station_id: str
    kind: str  # missing | extra | power | location
    site_model: str
    citrineos: str


@dataclass(frozen=True)
class AssetDiff:
    """The comparison: its differences, the rows that could not be read, and what it could not compare."""

    differences: tuple[Difference, ...]
    skipped: tuple[str, ...]
    compared: tuple[str, ...]  # the stations compared
    not_compared: str  # "nothing", or what this source of CitrineOS's data could not compare

    def of_kind(self, kind: str) -> list[Difference]:
        return [d for d in self.differences if d.kind == kind]


@dataclass
class _Evse:
    connector_ids: set[int] = field(default_factory=set)
    max_power_w: float | None = None


def fetch_device_model(client: httpx.Client, station_id: str, tenant_id: str) -> list[Any]:
    """The station's VariableAttribute rows; CitrineUnavailable when CitrineOS does not answer with a JSON array."""
    try:
        response = client.get(DEVICE_MODEL_PATH, params={"stationId": station_id, "tenantId": tenant_id})
    except httpx.HTTPError as error:
        raise CitrineUnavailable(f"CitrineOS REST data API at {safe_url(str(client.base_url))}: "
                                 f"{type(error).__name__} reading the device model of {station_id}") from error
    if response.status_code != 200:
        raise CitrineUnavailable(f"CitrineOS REST data API at {safe_url(str(client.base_url))}: HTTP "
                                 f"{response.status_code} reading the device model of {station_id}")
    try:
        rows = response.json()
    except ValueError as error:
        raise CitrineUnavailable(f"CitrineOS REST data API: the device model of {station_id} is not JSON") from error
    if not isinstance(rows, list):
        raise CitrineUnavailable(f"CitrineOS REST data API: the device model of {station_id} is a "
                                 f"{type(rows).__name__}, not a list of VariableAttribute rows")
    return rows


def read_station(station_id: str, rows: Sequence[Any]) -> KnownStation:
    """The EVSEs, connectors and EVSE powers in a station's VariableAttribute rows; a malformed row is named in
    `skipped` and left out, the others still count."""
    evses: dict[int, _Evse] = {}
    skipped = []
    for index, row in enumerate(rows):
        try:
            _read_row(row, evses)
        except (TypeError, ValueError) as error:
            row_id = row.get("id", "?") if isinstance(row, dict) else "?"
            skipped.append(f"{station_id} variableAttribute row {index} (id {row_id}): {error}")
    return KnownStation(station_id, {evse_id: KnownEvse(evse_id, frozenset(e.connector_ids), e.max_power_w)
                                     for evse_id, e in sorted(evses.items())}, tuple(skipped))


def _read_row(row: Any, evses: dict[int, _Evse]) -> None:
    if not isinstance(row, dict):
        raise TypeError(f"a {type(row).__name__}, not an object")
    component = _object(row, "component")
    name = component.get("name")
    if name not in ("EVSE", "Connector"):
        return  # the rest of the device model (OCPPCommCtrlr, SmartChargingCtrlr, ...) says nothing of assets
    evse = _object(component, "evse", f"component {name}")
    evse_id = _integer(evse.get("id"), f"component {name} evse.id")
    known = evses.setdefault(evse_id, _Evse())
    if name == "Connector":
        known.connector_ids.add(_integer(evse.get("connectorId"), "component Connector evse.connectorId"))
        return
    variable = _object(row, "variable")
    if variable.get("name") != "Power":
        return
    characteristics = variable.get("variableCharacteristics")
    if characteristics is None:
        return  # reported without characteristics: no maximum known, which the diff shows
    if not isinstance(characteristics, dict):
        raise TypeError("variable Power variableCharacteristics is not an object")
    if characteristics.get("maxLimit") is not None:
        known.max_power_w = _number(characteristics["maxLimit"], "EVSE.Power variableCharacteristics.maxLimit")


def _object(parent: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"{where + ' ' if where else ''}{key} missing or not an object")
    return value


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} is {value!r}, not an integer")
    return value


def _number(value: Any, what: str) -> float:
    """A decimal column: a number, or the numeric string PostgreSQL returns for it."""
    if isinstance(value, bool):
        raise ValueError(f"{what} is {value!r}, not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} is {value!r}, not a number") from None
    if not math.isfinite(number):  # float() takes "NaN" and "Infinity"; no power or coordinate is either
        raise ValueError(f"{what} is {value!r}, not a finite number")
    return number


def compare(charge_points: Iterable[ChargePoint], known: Mapping[str, KnownStation],
            inventory: Inventory | None = None) -> AssetDiff:
    """The site model's charge points against CitrineOS's device models, by station id, and against its station
    list and Locations when `inventory` is given."""
    charge_points = list(charge_points)
    differences = []
    skipped: list[str] = list(inventory.skipped) if inventory else []
    for cp in charge_points:
        station = known.get(cp.id)
        if station is not None:
            skipped.extend(station.skipped)
        if inventory is not None and cp.id not in inventory.locations:
            differences.append(Difference(cp.id, "missing", f"EVSE {cp.evse_id} connector {cp.connector_id}, "
                                          f"{cp.max_power_kw:g} kW", "no ChargingStation of that id"))
            continue
        differences.extend(_station_differences(cp, station))
        if inventory is not None:
            differences.extend(_location_difference(cp, inventory.locations[cp.id]))
    if inventory is not None:
        ours = {cp.id for cp in charge_points}
        differences.extend(Difference(station_id, "extra", "-", "a ChargingStation not in the site model")
                           for station_id in sorted(set(inventory.locations) - ours))
    return AssetDiff(tuple(differences), tuple(skipped), tuple(cp.id for cp in charge_points),
                     "nothing" if inventory is not None else NOT_COMPARED)


def _location_difference(cp: ChargePoint, location: KnownLocation) -> list[Difference]:
    ours = f"{cp.location.latitude:.5f}, {cp.location.longitude:.5f}"
    if location.latitude is None or location.longitude is None:
        return [Difference(cp.id, "location", ours, "no Location coordinates")]
    distance = _distance_m(cp.location.latitude, cp.location.longitude, location.latitude, location.longitude)
    if distance <= LOCATION_TOLERANCE_M:
        return []
    return [Difference(cp.id, "location", ours, f"{location.name or 'Location'} at {location.latitude:.5f}, "
                                                f"{location.longitude:.5f} ({distance / 1000:.1f} km away)")]


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Equirectangular distance: exact enough at the few-km scale of a site's pools."""
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    return EARTH_RADIUS_M * math.hypot(x, math.radians(lat2 - lat1))


def _station_differences(cp: ChargePoint, station: KnownStation | None) -> list[Difference]:
    wanted = f"EVSE {cp.evse_id} connector {cp.connector_id}"
    if station is None or not station.evses:
        return [Difference(cp.id, "missing", f"{wanted}, {cp.max_power_kw:g} kW",
                           "no device model (station unknown, or it never sent NotifyReport)")]
    out = []
    evse = station.evses.get(cp.evse_id)
    if evse is None or cp.connector_id not in evse.connector_ids:
        out.append(Difference(cp.id, "missing", wanted, _describe(station)))
    out.extend(Difference(cp.id, "extra", "-", f"EVSE {e.evse_id} connector {c}")
               for e in station.evses.values() for c in sorted(e.connector_ids)
               if (e.evse_id, c) != (cp.evse_id, cp.connector_id))
    if evse is not None and (evse.max_power_w is None
                             or abs(evse.max_power_w - cp.max_power_kw * 1000) > POWER_TOLERANCE_W):
        shown = "not reported" if evse.max_power_w is None else f"{evse.max_power_w / 1000:g} kW"
        out.append(Difference(cp.id, "power", f"{cp.max_power_kw:g} kW", f"EVSE {cp.evse_id} Power maxLimit {shown}"))
    return out


def _describe(station: KnownStation) -> str:
    return ", ".join(f"EVSE {e.evse_id} connector(s) {sorted(e.connector_ids) or 'none'}"
                     for e in station.evses.values())


def read_citrineos(base_url: str, station_ids: Iterable[str], *, tenant_id: str = "1", token: str | None = None,
                   ca_file: str | None = None, timeout: float = 10.0) -> dict[str, KnownStation]:
    """Every station's device model over the REST data API (one GET each); CitrineUnavailable on the first that
    cannot be read, since a partial read would show the rest as missing."""
    # the same client as the REST transport: Bearer token in a header (never logged), private CA for https
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers,
                      verify=tls_context(ca_file)) as http:
        return {station_id: read_station(station_id, fetch_device_model(http, station_id, tenant_id))
                for station_id in station_ids}


def fetch_inventory(graphql_url: str, *, tenant_id: str = "1", token: str | None = None,
                    ca_file: str | None = None, timeout: float = 10.0) -> Inventory:
    """Every ChargingStation of the tenant with its Location, from CitrineOS's Hasura GraphQL; CitrineUnavailable
    when it cannot be read or answers with GraphQL errors."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    where = f"CitrineOS GraphQL at {safe_url(graphql_url)}"
    try:
        with httpx.Client(timeout=timeout, headers=headers, verify=tls_context(ca_file)) as http:
            response = http.post(graphql_url, json={"query": STATIONS_QUERY,
                                                    "variables": {"tenantId": int(tenant_id)}})
    except httpx.HTTPError as error:
        raise CitrineUnavailable(f"{where}: {type(error).__name__} reading the station list") from error
    if response.status_code != 200:
        raise CitrineUnavailable(f"{where}: HTTP {response.status_code} reading the station list")
    try:
        document = response.json()
    except ValueError as error:
        raise CitrineUnavailable(f"{where}: the station list is not JSON") from error
    if not isinstance(document, dict):
        raise CitrineUnavailable(f"{where}: the answer is not a GraphQL response object")
    errors = document.get("errors")
    if errors:
        first = errors[0] if isinstance(errors, list) else errors
        raise CitrineUnavailable(f"{where}: {first.get('message') if isinstance(first, dict) else first}")
    data = document.get("data")
    rows = data.get("ChargingStations") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise CitrineUnavailable(f"{where}: no data.ChargingStations list in the answer")
    return read_inventory(rows)


def read_inventory(rows: Sequence[Any]) -> Inventory:
    """The stations and their Locations; a malformed row is named in `skipped` and left out."""
    locations: dict[str, KnownLocation] = {}
    skipped = []
    for index, row in enumerate(rows):
        try:
            station_id, location = _inventory_row(row)
        except (TypeError, ValueError) as error:
            skipped.append(f"ChargingStations row {index}: {error}")
            continue
        locations[station_id] = location
    return Inventory(locations, tuple(skipped))


def _inventory_row(row: Any) -> tuple[str, KnownLocation]:
    if not isinstance(row, dict):
        raise TypeError(f"a {type(row).__name__}, not an object")
    station_id = row.get("id")
    if not isinstance(station_id, str) or not station_id:
        raise ValueError(f"id is {station_id!r}, not a station id")
    location = row.get("Location")
    if location is None:
        return station_id, KnownLocation(None, None, None)
    if not isinstance(location, dict):
        raise TypeError(f"station {station_id}: Location is not an object")
    point = location.get("coordinates")
    if point is None:
        return station_id, KnownLocation(location.get("name"), None, None)
    # GeoJSON, as Hasura serves a PostGIS point: {"type": "Point", "coordinates": [longitude, latitude]}
    pair = point.get("coordinates") if isinstance(point, dict) else None
    if not (isinstance(pair, list) and len(pair) >= 2):
        raise ValueError(f"station {station_id}: Location.coordinates is {point!r}, not a GeoJSON Point")
    longitude = _number(pair[0], f"station {station_id}: Location longitude")
    latitude = _number(pair[1], f"station {station_id}: Location latitude")
    return station_id, KnownLocation(location.get("name"), latitude, longitude)
