"""Pydantic models of a site and the loader that validates a site file once, at start-up.

A bad file (negative power, duplicate sensor id, unknown unit, a device pointing at a missing sensor) raises
`SiteModelError` naming the entry and the field, so the pipeline never starts on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SITE_FILE_ENV = "CARIFLEX_SITE_FILE"

# Units the pipeline knows how to handle; anything else is a typo or a conversion we do not do.
ALLOWED_UNITS = frozenset({"kW", "kWh", "MW", "EUR/MWh", "EUR/kWh", "%", "dimensionless", "W/m²", "°C"})

PositiveKw = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def known_unit(unit: str, allowed: frozenset[str]) -> str:
    """`unit` if it is one of `allowed`, else a ValueError listing them (a typo, or a conversion we do not do)."""
    if unit not in allowed:
        raise ValueError(f"unknown unit {unit!r}; expected one of {sorted(allowed)}")
    return unit


def known_timezone(timezone: str) -> str:
    """`timezone` if the IANA database knows it, else a ValueError naming it."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown timezone {timezone!r}") from error
    return timezone


Timezone = Annotated[str, AfterValidator(known_timezone)]


class SiteModelError(ValueError):
    """A site file that cannot be used; the message names the file, the entry and the field."""


class StrictModel(BaseModel):
    """Frozen, and an unknown field is an error rather than silently ignored (a typo in a file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Sensor(StrictModel):
    id: int = Field(gt=0)
    name: str = Field(min_length=1)
    unit: str
    resolution: timedelta = timedelta(minutes=15)
    description: str = ""

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str) -> str:
        return known_unit(unit, ALLOWED_UNITS)

    @field_validator("resolution")
    @classmethod
    def _positive_resolution(cls, resolution: timedelta) -> timedelta:
        if resolution <= timedelta(0):
            raise ValueError("resolution must be positive")
        return resolution


class Location(StrictModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    address: str = ""


class ChargePoint(StrictModel):
    id: str = Field(min_length=1)
    evse_id: int = Field(default=1, gt=0)
    connector_id: int = Field(default=1, gt=0)
    max_power_kw: PositiveKw
    sensor_id: int
    location: Location


class PvInstallation(StrictModel):
    name: str
    sensor_id: int
    peak_power_kw: PositiveKw


class Battery(StrictModel):
    name: str
    sensor_id: int
    capacity_kwh: PositiveKw
    max_charge_kw: PositiveKw
    max_discharge_kw: PositiveKw
    soc_min_kwh: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    soc_max_kwh: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    initial_soc_kwh: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    round_trip_efficiency: float = Field(default=0.9, gt=0, le=1)

    @model_validator(mode="after")
    def _soc_bounds(self) -> Battery:
        soc_max = self.capacity_kwh if self.soc_max_kwh is None else self.soc_max_kwh
        if not self.soc_min_kwh <= soc_max <= self.capacity_kwh:
            raise ValueError("need soc_min_kwh <= soc_max_kwh <= capacity_kwh")
        if not self.soc_min_kwh <= self.initial_soc_kwh <= soc_max:
            raise ValueError("initial_soc_kwh must lie between soc_min_kwh and soc_max_kwh")
        return self


class V2gCharger(StrictModel):
    name: str
    sensor_id: int
    max_charge_kw: PositiveKw
    max_discharge_kw: PositiveKw
    round_trip_efficiency: float = Field(default=0.85, gt=0, le=1)


class SignalSensors(StrictModel):
    """Which sensor holds each site-wide signal."""

    consumption_price: int
    dso_price: int
    load_control: int
    demand_response: int
    irradiance: int
    temperature: int


class GridConnection(StrictModel):
    import_capacity_kw: PositiveKw
    export_capacity_kw: PositiveKw


# --- OpenADR: which VTN signal feeds which sensor (issue 3) ---------------------------------------------------

OPENADR_UNITS = frozenset({"EUR/MWh", "EUR/kWh", "%", "dimensionless", "kW", "MW"})


class OpenAdrSignal(StrictModel):
    """One VTN signal feeding one sensor.

    2.0b signals are matched on `signal_name` + `signal_type` (and `program`, the event's market context, when
    set); 3.0.1 payloads on `payload_type` (and `program`, the programID, when set). `unit` and `currency` are the
    program's convention, used when the event itself does not say (2.0b itemBase, 3.0.1 payloadDescriptors).
    """

    sensor_id: int
    program: str | None = None
    signal_name: str | None = None
    signal_type: str | None = None
    payload_type: str | None = None
    unit: str
    currency: str | None = None
    min_value: float | None = Field(default=None, allow_inf_nan=False)
    max_value: float | None = Field(default=None, allow_inf_nan=False)

    @field_validator("unit")
    @classmethod
    def _known_openadr_unit(cls, unit: str) -> str:
        return known_unit(unit, OPENADR_UNITS)

    @model_validator(mode="after")
    def _matches_something(self) -> OpenAdrSignal:
        has_20b = self.signal_name is not None and self.signal_type is not None
        if not has_20b and self.payload_type is None:
            raise ValueError("needs signal_name and signal_type (2.0b) or payload_type (3.0.1)")
        if (self.signal_name is None) != (self.signal_type is None):
            raise ValueError("signal_name and signal_type go together")
        return self


class OpenAdr(StrictModel):
    """The site's OpenADR VEN: its name towards the VTN and the signal -> sensor mapping."""

    ven_name: str = Field(default="cariflex", min_length=1)
    signals: list[OpenAdrSignal]


class Site(StrictModel):
    name: str
    timezone: Timezone
    resolution: timedelta = timedelta(minutes=15)
    grid_connection: GridConnection
    sensors: list[Sensor]
    signals: SignalSensors
    charge_points: list[ChargePoint]
    pv_installations: list[PvInstallation] = []
    batteries: list[Battery] = []
    v2g_chargers: list[V2gCharger] = []
    openadr: OpenAdr | None = None
    # The first day the pipeline holds data for: the first day partition (CARIFLEX_FIRST_DAY overrides it). None:
    # the day the code location first loads, for a new site.
    first_day: date | None = None
    # The first of the five sensor ids of the site-wide derived series (flexibility, grid impact...): 101-105 as
    # the seed's dashboards expect; each site of a fleet needs its own range (portfolio_rules.py).
    derived_sensors_from: int = Field(default=101, ge=1)

    @model_validator(mode="after")
    def _cross_references(self) -> Site:
        seen: dict[int, str] = {}
        for sensor in self.sensors:
            if sensor.id in seen:
                raise ValueError(f"duplicate sensor id {sensor.id} ({seen[sensor.id]!r} and {sensor.name!r})")
            seen[sensor.id] = sensor.name
        _unique("charge point id", [cp.id for cp in self.charge_points])
        claimed: dict[int, str] = {}
        sensor_by_id = self.sensor_by_id  # built once: the property makes a new dict on every call
        for kind, name, sensor_id, unit in self._device_sensor_refs():
            sensor = sensor_by_id.get(sensor_id)
            if sensor is None:
                raise ValueError(f"{kind} {name!r}: field sensor_id: sensor {sensor_id} is not in sensors")
            if unit is not None and sensor.unit != unit:
                raise ValueError(
                    f"{kind} {name!r}: field sensor_id: sensor {sensor_id} has unit {sensor.unit!r}, "
                    f"expected {unit!r}"
                )
            if sensor_id in claimed and claimed[sensor_id] != f"{kind} {name!r}":
                raise ValueError(f"{kind} {name!r}: field sensor_id: sensor {sensor_id} already used by "
                                 f"{claimed[sensor_id]}")
            claimed[sensor_id] = f"{kind} {name!r}"
        return self


    @model_validator(mode="after")
    def _openadr_sensors(self) -> Site:
        if self.openadr is None:
            return self
        sensor_by_id = self.sensor_by_id
        for index, mapping in enumerate(self.openadr.signals):
            if mapping.sensor_id not in sensor_by_id:
                raise ValueError(f"openadr signal #{index}: field sensor_id: sensor {mapping.sensor_id} "
                                 "is not in sensors")
        return self

    def _device_sensor_refs(self) -> list[tuple[str, str, int, str | None]]:
        refs: list[tuple[str, str, int, str | None]] = []
        refs += [("charge point", cp.id, cp.sensor_id, "kW") for cp in self.charge_points]
        refs += [("pv installation", pv.name, pv.sensor_id, "kW") for pv in self.pv_installations]
        refs += [("battery", b.name, b.sensor_id, "kW") for b in self.batteries]
        refs += [("v2g charger", v.name, v.sensor_id, "kW") for v in self.v2g_chargers]
        refs += [("signal", field, sensor_id, None) for field, sensor_id in self.signals.model_dump().items()]
        return refs

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def sensor_by_id(self) -> dict[int, Sensor]:
        return {sensor.id: sensor for sensor in self.sensors}

    @property
    def charge_point_by_id(self) -> dict[str, ChargePoint]:
        return {cp.id: cp for cp in self.charge_points}

    def sensor(self, sensor_id: int) -> Sensor:
        try:
            return self.sensor_by_id[sensor_id]
        except KeyError:
            raise KeyError(f"site {self.name!r} has no sensor {sensor_id}") from None

    def charge_point(self, charge_point_id: str) -> ChargePoint:
        try:
            return self.charge_point_by_id[charge_point_id]
        except KeyError:
            raise KeyError(f"site {self.name!r} has no charge point {charge_point_id!r}") from None


def _unique(what: str, values: list[Any]) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)


def default_site_file() -> Path:
    """The site file named by CARIFLEX_SITE_FILE, else the bundled Martinique site."""
    configured = os.environ.get(SITE_FILE_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).with_name("martinique.yaml")


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """The YAML mapping in `path`; SiteModelError naming `what` and the file when it cannot be read or is no mapping."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SiteModelError(f"{what} {path}: cannot be read ({error.strerror})") from error
    except yaml.YAMLError as error:
        raise SiteModelError(f"{what} {path}: not valid YAML ({error})") from error
    if not isinstance(raw, dict):
        raise SiteModelError(f"{what} {path}: expected a mapping at the top level")
    return raw


def load_site(path: str | Path | None = None) -> Site:
    """Read and validate a site file; raise SiteModelError naming the entry and field on any problem."""
    site_path = Path(path) if path is not None else default_site_file()
    return validate_site(read_mapping(site_path, "site file"), site_path)


def validate_site(raw: dict[str, Any], site_path: Path) -> Site:
    """The site a site file's mapping describes; SiteModelError naming the file, the entry and the field."""
    try:
        return Site.model_validate(raw)
    except ValidationError as error:
        raise SiteModelError(f"site file {site_path}: {describe(error, raw)}") from None


def describe(error: ValidationError, raw: dict[str, Any],
             where: Callable[[list[Any]], str | None] | None = None) -> str:
    """Every problem of `error`, joined by '; ', each after where it is: `where(location)` (None: the message
    alone, for a rule whose message names its place), by default `describe_location` in `raw`."""
    locate = where or (lambda location: describe_location(location, raw))
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        place = locate(list(item["loc"]))
        problems.append(message if place is None else f"{place}: {message}")
    return "; ".join(problems)


def describe_location(location: list[Any], raw: Any) -> str:
    """Turn pydantic's locations (charge_points.3.max_power_kw) into entry names (charge_points entry 'CP004').

    `raw` is what was validated; whatever shape it has (a fuzzed file), this only names, never fails."""
    if len(location) >= 2 and isinstance(location[1], int):
        entries = raw.get(str(location[0])) if isinstance(raw, dict) else None
        entry = entries[location[1]] if isinstance(entries, list) and location[1] < len(entries) else {}
        label = entry.get("id", entry.get("name", f"#{location[1]}")) if isinstance(entry, dict) else f"#{location[1]}"
        field = ".".join(str(part) for part in location[2:]) or "entry"
        return f"{location[0]} entry {label!r}, field {field}"
    return f"field {'.'.join(str(part) for part in location)}" if location else "site"
