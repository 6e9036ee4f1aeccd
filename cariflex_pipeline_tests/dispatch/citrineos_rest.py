"""A CitrineOS 1.8.3 REST double: the smartcharging routes, their business rules, its profile table and callbacks.

Test scaffolding, not a mock of our code: it stands in for CitrineOS, which is built only by hand here. Its rules
and texts are read from the v1.8.3 source (citrineos/citrineos-core, tag v1.8.3):
- 00_Base/src/interfaces/api/AbstractModuleApi.ts: POST /ocpp/2.0.1/smartcharging/{setChargingProfile,
  clearChargingProfile,getCompositeSchedule}?identifier=..&tenantId=..&callbackUrl=..; `identifier` may repeat and
  the answer is one {success, payload} per identifier; the body is checked against CitrineOS's schema first
  (fastify: HTTP 400 FST_ERR_VALIDATION; here with python-jsonschema on the same files, `peer_schemas`, so the
  message is python-jsonschema's wording, not AJV's);
- 02_Util/src/authorization/ApiAuthPlugin.ts: without a Bearer token, 401 (when the double has a token);
- 02_Util/src/util/validator.ts `validateChargingProfileType`, then
  03_Modules/SmartCharging/src/module/2.0.1/MessageApi.ts `setChargingProfile` (K01.FR.36/37/03/09/16/34/39/22/38,
  same stack level and purpose, K01.FR.31/40/41/19), `clearChargingProfile` (K10.FR.02/06) and
  `getCompositeSchedule` (K08.FR.05), in their order and with their texts; the checks on device-model variables
  CitrineOS only makes when a station reported them (RateUnit, PeriodsPerSchedule) are absent, as for a station
  that did not; ACPhaseSwitchingSupported is never reported, so phaseToUse is always refused;
  the one-fraction-digit rule is left out: the schema's multipleOf 0.1 already refuses every such value;
- 01_Data/src/layers/sequelize/repository/ChargingProfile.ts `createOrUpdateChargingProfile`: the profile table,
  keyed by station + profile id; the REST call saves the profile (isActive false, also when it updates the row)
  before it knows whether the station is connected;
- 03_Modules/SmartCharging/src/module/module.ts: on a SetChargingProfile answer other than Rejected, the station's
  active CSO profiles become inactive, then GetChargingProfiles(CSO) and the station's ReportChargingProfiles make
  what it holds active; on a ClearChargingProfile Accepted, all its active profiles become inactive, then it is
  re-read the same way;
- 00_Base/src/interfaces/modules/AbstractModule.ts: `sendCall` answers "No connection found for identifier:
  <tenant>:<station>" for an unconnected station; `handleMessageApiCallback` POSTs the station's response payload
  (JSON, nothing else) to the callbackUrl once the station answers, and only when that answer passes the response
  schema; a failed POST is only logged.

- the REST data API's device model, `GET /data/monitoring/variableAttribute?stationId=..&tenantId=..`
  (03_Modules/Monitoring/src/module/DataApi.ts `getDeviceModelVariables`; path from AbstractModuleApi.ts
  `_toDataPath` with the shipped endpointPrefix `/monitoring`, Server/src/config/envs/local.ts): `stationId` is
  required (01_Data/src/interfaces/queries/VariableAttribute.ts), the answer is the JSON array of VariableAttribute
  rows of 01_Data/src/layers/sequelize/repository/DeviceModel.ts `readAllByQuerystring` (each row with `component`
  and its `evse`, `variable` and its `variableCharacteristics`, and `statuses`; columns from
  01_Data/src/layers/sequelize/model/DeviceModel/*.ts; `maxLimit` is a DECIMAL, which PostgreSQL returns as a
  string), `[]` for a station without a device model. `report_device_model` builds the rows a station's
  NotifyReport leaves; a test may append rows of its own to `device_models`.

Differences on purpose: CitrineOS posts the callback before it updates its table and re-reads the station (a few
tens of ms); the double updates its table first, so a test that saw the callback sees the table it implies. It
never sends its own TxProfile on NotifyEVChargingNeeds (it gets none). EVSEs come from `connect(evse_ids=...)`
(what the station's NotifyReport tells CitrineOS); like 1.8.3, the EVSE lookup is by id across stations.

The station behind it is `station_model.StationProfiles`. The station applies a call as soon as it is made; its
answer (table transitions, then the callback) follows on one worker thread, after `delay_answers` seconds, or is
lost before the callback (`drop_next_answer`): CitrineOS updates its table but the POST never comes. `settle()`
waits until every answer so far is done.
"""

from __future__ import annotations

import copy
import json
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from cariflex_pipeline.dispatch.peer_schemas import violations
from cariflex_pipeline_tests.dispatch.station_model import StationProfiles
from cariflex_pipeline_tests.http_double import LoopbackJsonServer

SMARTCHARGING = "/ocpp/2.0.1/smartcharging/"
DEVICE_MODEL = "/data/monitoring/variableAttribute"
ROUTES = {"setChargingProfile": "SetChargingProfile", "clearChargingProfile": "ClearChargingProfile",
          "getCompositeSchedule": "GetCompositeSchedule"}
TX, MAX, EXTERNAL = "TxProfile", "ChargingStationMaxProfile", "ChargingStationExternalConstraints"
CSO = "CSO"
DEFAULT_TENANT_ID = 1


class Refusal(Exception):
    """A business rule's `{"success": false, "payload": text}`."""


class HttpError(Exception):
    """What fastify answers before the handler runs: status and JSON document."""

    def __init__(self, status: int, document: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {document}")
        self.status = status
        self.document = document


def _validation_error(message: str) -> HttpError:
    return HttpError(400, {"statusCode": 400, "code": "FST_ERR_VALIDATION", "error": "Bad Request",
                           "message": message})


def _truthy(value: Any) -> bool:
    """JavaScript's truthiness, which the TypeScript rules use: 0 and "" are false, every object is true."""
    return isinstance(value, dict | list) or bool(value)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _fastify_query(text: str) -> dict[str, str | list[str]]:
    """The querystring as fastify parses it: a repeated key gives a list."""
    values: dict[str, list[str]] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        values.setdefault(key, []).append(value)
    return {key: found[0] if len(found) == 1 else found for key, found in values.items()}


@dataclass(frozen=True)
class RestCall:
    """One request as the double received it."""

    path: str
    query: dict[str, str | list[str]]  # as fastify parses it: a repeated key gives a list
    body: Any  # parsed JSON, or the raw text when it is not JSON
    auth: str | None  # the Authorization header


@dataclass
class StoredProfile:
    """A row of CitrineOS's ChargingProfiles table."""

    station_id: str
    profile: dict[str, Any]
    evse_id: int | None
    transaction_db_id: int | None
    source: str
    is_active: bool

    @property
    def id(self) -> int:
        return self.profile["id"]

    @property
    def stack_level(self) -> int:
        return self.profile["stackLevel"]

    @property
    def purpose(self) -> str:
        return self.profile["chargingProfilePurpose"]

    @property
    def valid_to(self) -> datetime | None:
        return _instant(self.profile["validTo"]) if self.profile.get("validTo") else None


@dataclass
class StationAnswer:
    """A station's answer to a call CitrineOS made for a REST request, and what became of its callback."""

    station_id: str
    action: str
    correlation_id: str  # CitrineOS's own (the OCPP message id), not ours: ours travels in the callback URL
    request: dict[str, Any]
    response: dict[str, Any]
    callback_url: str | None
    delivery: str = "pending"  # pending | posted | dropped | no callbackUrl | invalid: .. | failed: ..
    callback_status: int | None = None


@dataclass
class CitrineTables:
    """CitrineOS's database, as far as these routes read and write it."""

    profiles: dict[tuple[str, int], StoredProfile] = field(default_factory=dict)
    transactions: dict[tuple[str, str], int] = field(default_factory=dict)  # (station, transactionId) -> db id
    evse_ids: set[int] = field(default_factory=set)

    def transaction_db_id(self, station_id: str, transaction_id: str) -> int | None:
        return self.transactions.get((station_id, transaction_id))

    def save(self, station_id: str, profile: dict[str, Any], evse_id: int | None, *, is_active: bool,
             source: str = CSO) -> None:
        """createOrUpdateChargingProfile: create or overwrite the row of station + profile id."""
        tx_db_id = self.transaction_db_id(station_id, profile["transactionId"]) if profile.get(
            "transactionId") else None
        self.profiles[(station_id, profile["id"])] = StoredProfile(station_id, copy.deepcopy(profile), evse_id,
                                                                   tx_db_id, source, is_active)

    def active(self, **where: Any) -> list[StoredProfile]:
        return [row for row in self.profiles.values()
                if row.is_active and all(getattr(row, key) == value for key, value in where.items())]

    def deactivate(self, station_id: str, source: str | None = None) -> None:
        for row in self.active(station_id=station_id):
            if source is None or row.source == source:
                row.is_active = False

    def reread(self, station: StationProfiles) -> None:
        """GetChargingProfiles and the station's ReportChargingProfiles: what it holds is saved as active."""
        for evse_id, profile in station.installed():
            self.save(station.station_id, profile, evse_id, is_active=True)


# --- the business rules, each raising Refusal with CitrineOS's text --------------------------------------------

def validate_profile_type(tables: CitrineTables, station_id: str, evse_id: int, profile: dict[str, Any]) -> None:
    """02_Util/src/util/validator.ts validateChargingProfileType (stackLevel >= 0 is the schema's)."""
    purpose, transaction_id = profile["chargingProfilePurpose"], profile.get("transactionId")
    if purpose == MAX and evse_id != 0:
        raise Refusal("When chargingProfilePurpose is ChargingStationMaxProfile, evseId SHALL be 0")
    if purpose != TX and _truthy(transaction_id):
        raise Refusal("transactionId SHALL only be included when ChargingProfilePurpose is set to TxProfile.")
    if _truthy(transaction_id) and _truthy(evse_id):
        if tables.transaction_db_id(station_id, transaction_id) is None:
            raise Refusal(f"Transaction {transaction_id} not found on station {station_id}.")
        if evse_id not in tables.evse_ids:
            raise Refusal(f"Evse {evse_id} not found.")


def check_validity(profile: dict[str, Any], now: datetime) -> None:
    """K01.FR.36 and K01.FR.37."""
    if profile.get("validFrom") and _instant(profile["validFrom"]) > now:
        raise Refusal(f"chargingProfile validFrom {profile['validFrom']} should not be in the future.")
    if profile.get("validTo") and _instant(profile["validTo"]) <= now:
        raise Refusal(f"chargingProfile validTo {profile['validTo']} should be in the future.")


def check_tx_profile(tables: CitrineTables, station_id: str, evse_id: int, profile: dict[str, Any]) -> None:
    """K01.FR.03, .09, .16, the EVSE, .34 and .39 (no active TxProfile of that transaction at that stack level)."""
    transaction_id = profile.get("transactionId")
    if not _truthy(transaction_id):
        raise Refusal("Missing transactionId for chargingProfilePurpose TxProfile.")
    tx_db_id = tables.transaction_db_id(station_id, transaction_id)
    if tx_db_id is None:
        raise Refusal(f"Transaction {transaction_id} not found on station {station_id}.")
    if evse_id <= 0:
        raise Refusal("TxProfile SHALL only be used with evseId > 0.")
    if evse_id not in tables.evse_ids:
        raise Refusal(f"Evse {evse_id} not found.")
    if len(profile["chargingSchedule"]) > 1:  # the double never receives NotifyEVChargingNeeds
        raise Refusal(f"No prior NotifyEVChargingNeedsReq found for this transaction {tx_db_id}. "
                      "Only one ChargingScheduleType allowed without it.")
    # K01.FR.39 as 1.8.3 queries it: by transaction, stack level and purpose, whatever the station or EVSE
    existing = tables.active(stack_level=profile["stackLevel"], transaction_db_id=tx_db_id, purpose=TX)
    if existing:
        raise Refusal(f"{len(existing)} ChargingProfile with stackLevel {profile['stackLevel']} and transactionId "
                      f"{transaction_id} already exists.")


def check_other_purpose(tables: CitrineTables, station_id: str, evse_id: int, profile: dict[str, Any]) -> None:
    """K01.FR.22, K01.FR.38, and no two active profiles of one stack level + purpose + EVSE unless the new one
    ends later than each of them."""
    purpose = profile["chargingProfilePurpose"]
    if purpose == EXTERNAL:
        raise Refusal("The CSMS SHALL NOT set chargingProfilePurpose to ChargingStationExternalConstraints.")
    if purpose == MAX and profile["chargingProfileKind"] == "Relative":
        raise Refusal("When chargingProfilePurpose is ChargingStationMaxProfile, chargingProfileKind SHALL NOT be "
                      "Relative.")
    existing = tables.active(station_id=station_id, stack_level=profile["stackLevel"], purpose=purpose,
                             evse_id=evse_id)
    valid_to = _instant(profile["validTo"]) if profile.get("validTo") else None
    if existing and (valid_to is None or any(row.valid_to is None or row.valid_to >= valid_to for row in existing)):
        raise Refusal("No two charging profiles with the same stack level and purpose can be valid at the same time.")


def check_schedules(station_id: str, profile: dict[str, Any]) -> None:
    """K01.FR.31, .40, .41 and .19, per schedule; the periods are sorted by startPeriod on the way, as CitrineOS
    does before sending (after checking the first one as given)."""
    kind = profile["chargingProfileKind"]
    for schedule in profile["chargingSchedule"]:
        where = f"ChargingSchedule {schedule['id']}: "
        if schedule["chargingSchedulePeriod"][0]["startPeriod"] != 0:
            raise Refusal(where + "The startPeriod of the first chargingSchedulePeriod SHALL be 0.")
        if kind in ("Absolute", "Recurring") and not schedule.get("startSchedule"):
            raise Refusal(where + "startSchedule SHALL be set when chargingProfileKind is Absolute or Recurring.")
        if kind == "Relative" and schedule.get("startSchedule"):
            raise Refusal(where + "startSchedule SHALL be absent when chargingProfileKind is Relative.")
        schedule["chargingSchedulePeriod"].sort(key=lambda period: period["startPeriod"])
        for period in schedule["chargingSchedulePeriod"]:
            if _truthy(period.get("phaseToUse")):
                if period.get("numberPhases") != 1:
                    raise Refusal("chargingSchedulePeriod with phaseToUse requires numberPhases=1")
                raise Refusal(f"phaseToUse not allowed if AC phase switching is not supported by station "
                              f"{station_id}.")


def check_set_charging_profile(tables: CitrineTables, station_id: str, request: dict[str, Any],
                               now: datetime) -> None:
    """Every rule of MessageApi.ts setChargingProfile, in its order."""
    profile, evse_id = request["chargingProfile"], request["evseId"]
    validate_profile_type(tables, station_id, evse_id, profile)
    check_validity(profile, now)
    if profile["chargingProfilePurpose"] == TX:
        check_tx_profile(tables, station_id, evse_id, profile)
    else:
        check_other_purpose(tables, station_id, evse_id, profile)
    check_schedules(station_id, profile)


def check_clear_charging_profile(request: dict[str, Any]) -> None:
    """K10.FR.02 and K10.FR.06 of MessageApi.ts clearChargingProfile."""
    criteria = request.get("chargingProfileCriteria")
    if not _truthy(request.get("chargingProfileId")):
        if not _truthy(criteria):
            raise Refusal("Either chargingProfileId or chargingProfileCriteria must be provided")
        if not any(_truthy(criteria.get(key)) for key in ("chargingProfilePurpose", "stackLevel", "evseId")):
            raise Refusal("At least one of chargingProfilePurpose, stackLevel, or evseId must be provided when "
                          "chargingProfileId is not provided.")
    elif _truthy(criteria):
        raise Refusal("chargingProfileCriteria is not needed when chargingProfileId is provided.")
    if _truthy(criteria) and criteria.get("chargingProfilePurpose") == EXTERNAL:
        raise Refusal("The CSMS SHALL NOT set chargingProfilePurpose to ChargingStationExternalConstraints.")


def check_get_composite_schedule(tables: CitrineTables, station_id: str, request: dict[str, Any]) -> None:
    """K08.FR.05 of MessageApi.ts getCompositeSchedule."""
    if request["evseId"] != 0 and request["evseId"] not in tables.evse_ids:
        raise Refusal(f"EVSE {request['evseId']} not found for station {station_id}.")


# --- the double ---------------------------------------------------------------------------------------------------

@dataclass
class _Pending:
    due: float  # time.monotonic()
    station: StationProfiles
    answer: StationAnswer
    drop: bool


class CitrineRestDouble:
    """CitrineOS 1.8.3's smartcharging REST routes on 127.0.0.1, with its rules, its table and its callbacks.

    `token`: the Bearer token required (None: `localByPass`, none needed). `clock`: CitrineOS's "now" for the
    validFrom/validTo rules and the station's composite schedule. `callback_timeout`: seconds per callback POST.
    Recorded: `calls` (every request), `answers` (every station answer and its callback), `profiles()` (the
    table)."""

    def __init__(self, *, token: str | None = None, clock: Callable[[], datetime] | None = None,
                 callback_timeout: float = 5.0, tls: ssl.SSLContext | None = None) -> None:
        self.token = token
        self.tls = tls  # serve HTTPS with this server context
        self.clock = clock or (lambda: datetime.now(UTC))
        self.callback_timeout = callback_timeout
        self.tables = CitrineTables()
        self.calls: list[RestCall] = []
        self.answers: list[StationAnswer] = []
        self._stations: dict[str, StationProfiles] = {}
        self.device_models: dict[str, list[Any]] = {}  # station -> its VariableAttribute rows, as the API serves them
        self._drops: dict[str, int] = {}
        self._failures: list[int] = []
        self._delay = 0.0
        self._lock = threading.RLock()  # CitrineOS's state: tables, stations, records
        self._queue: deque[_Pending] = deque()
        self._queue_changed = threading.Condition()
        self._busy = 0  # answers queued or being delivered
        self._stopping = False
        self._server: LoopbackJsonServer | None = None
        self._delivery: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> CitrineRestDouble:
        self._server = LoopbackJsonServer(self.handle, ["GET", "POST"], tls=self.tls)
        self._delivery = threading.Thread(target=self._deliver_answers, daemon=True)
        self._delivery.start()
        return self

    def stop(self) -> None:
        """Stop serving; answers not yet delivered are never delivered."""
        with self._queue_changed:
            self._stopping = True
            self._queue_changed.notify_all()
        if self._server is not None:
            self._server.stop()
        if self._delivery is not None:
            self._delivery.join(10)

    def __enter__(self) -> CitrineRestDouble:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "the double is not started"
        return self._server.base_url

    # --- the world around CitrineOS -------------------------------------------------------------------------
    def connect(self, station_id: str, *, evse_ids: tuple[int, ...] = (1,), **station_options: Any) -> StationProfiles:
        """A station connects and reports its EVSEs (NotifyReport); `station_options` go to StationProfiles. A station
        connected again keeps what it holds."""
        with self._lock:
            station = self._stations.get(station_id) or StationProfiles(station_id, **station_options)
            self._stations[station_id] = station
            self.tables.evse_ids.update(evse_ids)
            return station

    def disconnect(self, station_id: str) -> None:
        """The station's websocket closes: CitrineOS has no connection for it any more."""
        with self._lock:
            self._stations.pop(station_id, None)

    def station(self, station_id: str) -> StationProfiles:
        with self._lock:
            return self._connected(station_id)

    def start_transaction(self, station_id: str, evse_id: int, transaction_id: str) -> None:
        """The station starts a transaction and tells CitrineOS (TransactionEvent Started)."""
        with self._lock:
            station = self._connected(station_id)
            self.tables.transactions.setdefault((station_id, transaction_id), len(self.tables.transactions) + 1)
            station.active_transactions[evse_id] = transaction_id

    def end_transaction(self, station_id: str, evse_id: int) -> None:
        """The station ends it (dropping its TxProfiles); CitrineOS still knows the transaction and its rows."""
        with self._lock:
            self._connected(station_id).end_transaction(evse_id)

    def profiles(self, station_id: str | None = None) -> list[StoredProfile]:
        """A copy of CitrineOS's profile table (of one station), by station and profile id."""
        with self._lock:
            return [replace(row, profile=copy.deepcopy(row.profile))
                    for key, row in sorted(self.tables.profiles.items()) if station_id in (None, key[0])]

    def report_device_model(self, station_id: str, evses: dict[int, tuple[tuple[int, ...], float | None]],
                            tenant_id: int = DEFAULT_TENANT_ID) -> list[dict[str, Any]]:
        """The station's NotifyReport, stored as CitrineOS stores it: per EVSE id (connector ids, EVSE.Power maxLimit
        in W or None when the station reports no characteristics), an `EVSE.Power` row and a `Connector.Available`
        row per connector, beside a `SmartChargingCtrlr.Enabled` row of the station itself."""
        with self._lock:
            rows = self.device_models.setdefault(station_id, [])
            stamp = self.clock().isoformat(timespec="milliseconds").replace("+00:00", "Z")
            rows.append(_variable_attribute(len(rows) + 1, station_id, tenant_id, stamp, "SmartChargingCtrlr", None,
                                            "Enabled", "boolean", "true", None))
            for evse_id, (connector_ids, max_power_w) in sorted(evses.items()):
                rows.append(_variable_attribute(len(rows) + 1, station_id, tenant_id, stamp, "EVSE", (evse_id, None),
                                                "Power", "decimal", "0", max_power_w))
                for connector_id in connector_ids:
                    rows.append(_variable_attribute(len(rows) + 1, station_id, tenant_id, stamp, "Connector",
                                                    (evse_id, connector_id), "Available", "boolean", "true", None))
            return rows

    # --- knobs -------------------------------------------------------------------------------------------------
    def drop_next_answer(self, station_id: str, n: int = 1) -> None:
        """The callbacks for the station's next `n` answers are never posted (CitrineOS still updates its table)."""
        with self._lock:
            self._drops[station_id] = self._drops.get(station_id, 0) + n

    def fail_next_request(self, status: int = 503, n: int = 1) -> None:
        """The next `n` requests get HTTP `status` before anything else happens (CitrineOS restarting, a proxy in
        front of it failing): nothing is saved or sent."""
        with self._lock:
            self._failures.extend([status] * n)

    def delay_answers(self, seconds: float) -> None:
        """Answers to calls made from now on arrive `seconds` later (0: at once)."""
        with self._lock:
            self._delay = seconds

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every answer to the calls made so far is applied and its callback posted (or dropped)."""
        with self._queue_changed:
            if not self._queue_changed.wait_for(lambda: self._busy == 0, timeout):
                raise TimeoutError(f"{self._busy} CitrineOS answer(s) still undelivered after {timeout} s")

    # --- the routes ----------------------------------------------------------------------------------------
    def handle(self, method: str, target: str, auth: str | None, body: bytes) -> tuple[int, Any]:
        """One HTTP request: (status, JSON document)."""
        parts = urlsplit(target)
        query = _fastify_query(parts.query)
        try:
            document: Any = json.loads(body) if body else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            document = body.decode(errors="replace")
        with self._lock:
            self.calls.append(RestCall(parts.path, query, copy.deepcopy(document), auth))
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return failure, {"statusCode": failure, "error": "Service Unavailable", "message": "injected by the test"}
        try:
            self._authenticate(auth)
            if method == "GET" and parts.path == DEVICE_MODEL:
                return 200, self._device_model(query)
            action = ROUTES.get(parts.path.removeprefix(SMARTCHARGING))
            if method != "POST" or action is None:
                raise HttpError(404, {"message": f"Route {method}:{target} not found", "error": "Not Found",
                                      "statusCode": 404})
            identifiers, tenant_id, callback = self._validate(action, query, document)
        except HttpError as error:
            return error.status, error.document
        return 200, [self._one(action, station_id, copy.deepcopy(document), tenant_id, callback)
                     for station_id in identifiers]

    def _authenticate(self, auth: str | None) -> None:
        if self.token is None:
            return
        if not auth or not auth.startswith("Bearer "):
            raise HttpError(401, {"error": "Unauthorized", "message": "Missing or invalid authorization header"})
        if auth[len("Bearer "):].strip() != self.token:
            raise HttpError(401, {"error": "Unauthorized", "message": "Invalid token"})

    def _device_model(self, query: dict[str, str | list[str]]) -> list[Any]:
        """getDeviceModelVariables: fastify's querystring check, then the station's rows of that tenant."""
        station_id = query.get("stationId")
        if station_id is None:
            raise _validation_error("querystring must have required property 'stationId'")
        tenant = query.get("tenantId", str(DEFAULT_TENANT_ID))
        if not isinstance(tenant, str) or not tenant.lstrip("-").isdigit():
            raise _validation_error("querystring/tenantId must be number")
        with self._lock:
            return [copy.deepcopy(row) for row in self.device_models.get(str(station_id), [])
                    if not isinstance(row, dict) or row.get("tenantId") == int(tenant)]

    @staticmethod
    def _validate(action: str, query: dict[str, str | list[str]], document: Any) -> tuple[list[str], int, str | None]:
        """fastify's body then querystring validation: (identifiers, tenantId, callbackUrl)."""
        if isinstance(document, str):
            raise HttpError(400, {"statusCode": 400, "code": "FST_ERR_CTP_INVALID_JSON_BODY", "error": "Bad Request",
                                  "message": "Body is not valid JSON but content-type is set to 'application/json'"})
        problems = violations(action, document, "Request")
        if problems:
            raise _validation_error(problems[0])
        if "identifier" not in query:
            raise _validation_error("querystring must have required property 'identifier'")
        tenant = query.get("tenantId", str(DEFAULT_TENANT_ID))
        if not isinstance(tenant, str) or not tenant.lstrip("-").isdigit():
            raise _validation_error("querystring/tenantId must be number")
        identifier, callback = query["identifier"], query.get("callbackUrl")
        identifiers = [identifier] if isinstance(identifier, str) else identifier
        return identifiers, int(tenant), callback if isinstance(callback, str) else None

    def _one(self, action: str, station_id: str, request: dict[str, Any], tenant_id: int,
             callback: str | None) -> dict[str, Any]:
        """One identifier: the rules, then sendCall; {"success": ..., "payload"?: ...}."""
        with self._lock:
            try:
                self._check(action, station_id, request)
            except Refusal as refusal:
                return {"success": False, "payload": str(refusal)}
            if action == "SetChargingProfile":
                # saved before sendCall looks for the station's connection, inactive until the station answers
                self.tables.save(station_id, request["chargingProfile"], request["evseId"], is_active=False)
            station = self._stations.get(station_id)
            if station is None:
                return {"success": False, "payload": f"No connection found for identifier: {tenant_id}:{station_id}"}
            self._call_station(station, action, request, callback)
            return {"success": True}

    def _check(self, action: str, station_id: str, request: dict[str, Any]) -> None:
        if action == "SetChargingProfile":
            check_set_charging_profile(self.tables, station_id, request, self.clock())
        elif action == "ClearChargingProfile":
            check_clear_charging_profile(request)
        else:
            check_get_composite_schedule(self.tables, station_id, request)

    def _call_station(self, station: StationProfiles, action: str, request: dict[str, Any],
                      callback: str | None) -> None:
        """The station gets the call at once; its answer is queued for the delivery thread."""
        answer = StationAnswer(station.station_id, action, str(uuid.uuid4()), request,
                               self._station_response(station, action, request), callback)
        self.answers.append(answer)
        drop = self._drops.get(station.station_id, 0) > 0
        if drop:
            self._drops[station.station_id] -= 1
        with self._queue_changed:
            self._queue.append(_Pending(time.monotonic() + self._delay, station, answer, drop))
            self._busy += 1
            self._queue_changed.notify_all()

    def _station_response(self, station: StationProfiles, action: str, request: dict[str, Any]) -> dict[str, Any]:
        if action == "SetChargingProfile":
            status, reason_code = station.set_profile(request["evseId"], copy.deepcopy(request["chargingProfile"]))
            return {"status": status, **({"statusInfo": {"reasonCode": reason_code}} if reason_code else {})}
        if action == "ClearChargingProfile":
            return {"status": station.clear(copy.deepcopy(request))}
        # without a chargingRateUnit the station picks one; these report W
        return {"status": "Accepted", "schedule": station.composite(
            request["evseId"], request["duration"], request.get("chargingRateUnit", "W"), self.clock())}

    def _apply_answer(self, station: StationProfiles, answer: StationAnswer) -> None:
        """module.ts's response handlers: what the answer changes in the table (a composite schedule is stored
        by CitrineOS, which nothing here reads)."""
        status = answer.response["status"]
        if answer.action == "SetChargingProfile" and status != "Rejected":
            self.tables.deactivate(station.station_id, source=CSO)
            self.tables.reread(station)
        elif answer.action == "ClearChargingProfile" and status == "Accepted":
            self.tables.deactivate(station.station_id)
            self.tables.reread(station)

    # --- answers -----------------------------------------------------------------------------------------------
    def _deliver_answers(self) -> None:
        while (pending := self._next_due()) is not None:
            try:
                self._deliver(pending)
            finally:
                with self._queue_changed:
                    self._busy -= 1
                    self._queue_changed.notify_all()

    def _next_due(self) -> _Pending | None:
        with self._queue_changed:
            while not self._stopping:
                if self._queue and self._queue[0].due <= time.monotonic():
                    return self._queue.popleft()
                self._queue_changed.wait(max(0.0, self._queue[0].due - time.monotonic()) if self._queue else None)
            return None

    def _deliver(self, pending: _Pending) -> None:
        answer = pending.answer
        problems = violations(answer.action, answer.response, "Response")
        with self._lock:
            if problems:  # CitrineOS drops an answer its schema refuses: no table change, no callback
                answer.delivery = f"invalid: {problems[0]}"
                return
            self._apply_answer(pending.station, answer)
            if pending.drop or answer.callback_url is None:
                answer.delivery = "dropped" if pending.drop else "no callbackUrl"
                return
        try:
            response = httpx.post(answer.callback_url, json=answer.response, timeout=self.callback_timeout)
        except httpx.HTTPError as error:
            with self._lock:
                answer.delivery = f"failed: {type(error).__name__}"
            return
        with self._lock:
            answer.delivery, answer.callback_status = "posted", response.status_code

    def _connected(self, station_id: str) -> StationProfiles:
        if station_id not in self._stations:
            raise KeyError(f"station {station_id} is not connected to the CitrineOS double")
        return self._stations[station_id]


def _variable_attribute(row_id: int, station_id: str, tenant_id: int, stamp: str, component: str,
                        evse: tuple[int, int | None] | None, variable: str, data_type: str, value: str,
                        max_limit: float | None) -> dict[str, Any]:
    """One VariableAttribute row as readAllByQuerystring serializes it (ids are made up but consistent)."""
    base = {"tenantId": tenant_id, "createdAt": stamp, "updatedAt": stamp}
    evse_row = None if evse is None else {"databaseId": row_id, "id": evse[0], "connectorId": evse[1],
                                          "customData": None, **base}
    characteristics = None if max_limit is None else {
        "id": row_id, "unit": "W", "dataType": data_type, "minLimit": None, "maxLimit": f"{max_limit:g}",
        "valuesList": None, "supportsMonitoring": True, "variableId": row_id, "customData": None, **base}
    return {
        "id": row_id, "stationId": station_id, "type": "Actual", "dataType": data_type, "value": value,
        "mutability": "ReadOnly", "persistent": False, "constant": False, "generatedAt": stamp,
        "variableId": row_id, "componentId": row_id, "evseDatabaseId": evse_row and row_id, **base,
        "component": {"id": row_id, "name": component, "instance": None,
                      "evseDatabaseId": evse_row and row_id, "customData": None, **base, "evse": evse_row},
        "variable": {"id": row_id, "name": variable, "instance": None, "customData": None, **base,
                     "variableCharacteristics": characteristics},
        "statuses": [{"id": row_id, "value": value, "status": "Accepted", "statusInfo": None,
                      "variableAttributeId": row_id, **base}],
    }
