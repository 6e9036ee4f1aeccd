"""A double of CitrineOS 1.8.3's GraphQL (the Hasura graphql-engine of its compose stack) for the station list.

Test scaffolding: it stands in for the Hasura engine over CitrineOS's database, which cannot run here. What it
serves is read from citrineos/citrineos-core at tag v1.8.3 and citrineos/citrineos-operator-ui:
- Server/docker-compose.yml: `graphql-engine` (hasura/graphql-engine v2.40.3) on CitrineOS's database, POST
  /v1/graphql with `{"query", "variables"}`, answering `{"data": {...}}` or, with HTTP 200 too,
  `{"errors": [{"message", "extensions": {"path", "code"}}]}`;
- Server/hasura-metadata/databases/default/tables/public_ChargingStations.yaml and public_Locations.yaml: the
  root field `ChargingStations` (columns id, locationId, tenantId, ...), its object relationship `Location`
  (id, name, coordinates, ...); a role `user` sees only its tenant;
- 01_Data/src/layers/sequelize/model/Location/Location.ts: `coordinates` is a PostGIS POINT, [longitude,
  latitude], which Hasura serves as GeoJSON `{"type": "Point", "coordinates": [lon, lat]}`;
- citrineos-operator-ui src/pages/overview/queries.tsx: the UI asks `ChargingStations { id locationId Location
  { id name ... coordinates } }` the same way.
It answers only the root field `ChargingStations` with a `where: {tenantId: {_eq: $tenantId}}` filter (the one
query the asset sync makes); anything else gets Hasura's validation-failed error. With a token set, a request
without that Bearer token gets Hasura's JWT error (as with HASURA_GRAPHQL_JWT_SECRET configured).
"""

import json
import threading
from dataclasses import dataclass
from typing import Any

from cariflex_pipeline_tests.http_double import LoopbackJsonServer

GRAPHQL_PATH = "/v1/graphql"


@dataclass(frozen=True)
class LocationRow:
    """A row of CitrineOS's Locations table, as far as the sync reads it."""

    id: int
    name: str
    latitude: float
    longitude: float


class HasuraDouble:
    """Serves CitrineOS's ChargingStations (with their Location) over GraphQL on loopback."""

    def __init__(self, *, token: str | None = None) -> None:
        self.token = token
        # the rows as Hasura serves them; a test may put malformed ones in
        self.stations: list[Any] = []
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: LoopbackJsonServer | None = None

    def add_station(self, station_id: str, location: LocationRow | None, tenant_id: int = 1) -> None:
        """A ChargingStations row (after its BootNotification), placed at `location` by the operator."""
        with self._lock:
            self.stations.append({
                "id": station_id, "tenantId": tenant_id, "locationId": location and location.id,
                "Location": None if location is None else {
                    "id": location.id, "name": location.name,
                    "coordinates": {"type": "Point", "coordinates": [location.longitude, location.latitude]}}})

    def start(self) -> "HasuraDouble":
        self._server = LoopbackJsonServer(lambda _method, path, auth, body: self.handle(path, auth, body), ["POST"])
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> "HasuraDouble":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "the double is not started"
        return f"{self._server.base_url}{GRAPHQL_PATH}"

    def handle(self, path: str, auth: str | None, body: bytes) -> tuple[int, Any]:
        if path != GRAPHQL_PATH:
            return 404, {"path": "$", "error": "resource does not exist", "code": "not-found"}
        if self.token is not None and auth != f"Bearer {self.token}":
            return 200, _error("$", "invalid-jwt", "Could not verify JWT: JWSError JWSInvalidSignature")
        try:
            request = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return 200, _error("$", "invalid-json", "Error in $: Failed reading: not a valid json value")
        with self._lock:
            self.requests.append(request)
            query = request.get("query", "")
            tenant = (request.get("variables") or {}).get("tenantId")
            if "ChargingStations(where: {tenantId: {_eq: $tenantId}})" not in query or not isinstance(tenant, int):
                return 200, _error("$.selectionSet", "validation-failed", "the double serves only the asset "
                                   "sync's ChargingStations query with an integer $tenantId")
            rows = [{k: v for k, v in row.items() if k != "tenantId"} if isinstance(row, dict) else row
                    for row in self.stations if not isinstance(row, dict) or row.get("tenantId") == tenant]
        return 200, {"data": {"ChargingStations": rows}}


def _error(path: str, code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"extensions": {"path": path, "code": code}, "message": message}]}
