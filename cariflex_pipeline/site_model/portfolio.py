"""A portfolio: several sites, each behind its own grid connection, in one file validated once at load.

The file (martinique_portfolio.yaml is the bundled one; docs/fleet.md explains it)::

    name, timezone, resolution, first_day   the portfolio's; timezone and first_day are each site's default
    sensors     the sensors the sites share (site-wide signals, weather)
    signals     which sensor holds each site-wide signal, for every site that names none of its own
    openadr     ven_name and the VTN signal -> sensor mapping; each mapping targets `sites: all` or a list of ids
    sites       each: id (a slug), name, grid_connection (import/export kW), its own sensors, charge_points,
                pv_installations, batteries, v2g_chargers, citrineos_tenant, openadr (ven_name, 3.0.1 targets);
                optionally timezone, first_day, signals

Each site becomes a `Site` (model.py): its own sensors followed by the shared ones, the mappings that target it.
A plain site file is a one-site portfolio whose site is exactly that file's `Site`. The rules across sites
(`portfolio_rules.py`) and every site's own rules are checked at load; any problem raises `PortfolioError`
naming the site, the entry and the field.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, model_validator

from cariflex_pipeline.site_model.model import (
    Battery,
    ChargePoint,
    GridConnection,
    OpenAdr,
    OpenAdrSignal,
    PvInstallation,
    Sensor,
    SignalSensors,
    Site,
    SiteModelError,
    StrictModel,
    Timezone,
    V2gCharger,
    default_site_file,
    describe,
    describe_location,
    read_mapping,
    validate_site,
)
from cariflex_pipeline.site_model.portfolio_rules import cross_site_problems

PORTFOLIO_FILE_ENV = "CARIFLEX_PORTFOLIO_FILE"

# A site id goes into partition keys, run keys and queue names: lower-case letters, digits and single hyphens.
SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
SiteId = Annotated[str, Field(pattern=SLUG_PATTERN, max_length=63)]


class PortfolioError(SiteModelError):
    """A portfolio that cannot be used; the message names the file, the site, the entry and the field."""


class OpenAdrTarget(StrictModel):
    """An OpenADR 3.0.1 target (valuesMap): the site's VEN asks for the events of these (GET /events?targetType=)."""

    type: str = Field(min_length=1, max_length=128)
    values: list[str] = Field(min_length=1)


class SiteOpenAdr(StrictModel):
    """A site's own side of OpenADR: its VEN name (None: the portfolio's) and its 3.0.1 targets."""

    ven_name: str | None = Field(default=None, min_length=1)
    targets: list[OpenAdrTarget] = []


class PortfolioSignal(OpenAdrSignal):
    """One VTN signal feeding one sensor, for the sites it names, or for all of them."""

    sites: list[str] | Literal["all"] = "all"


class PortfolioOpenAdr(StrictModel):
    ven_name: str = Field(default="cariflex", min_length=1)
    signals: list[PortfolioSignal]


class PortfolioSite(StrictModel):
    """One site as the portfolio file gives it; `Portfolio.site` is the validated `Site`."""

    id: SiteId
    name: str = Field(min_length=1)
    timezone: Timezone | None = None  # None: the portfolio's
    first_day: date | None = None  # None: the portfolio's
    grid_connection: GridConnection
    sensors: list[Sensor] = []
    signals: SignalSensors | None = None  # None: the portfolio's
    charge_points: list[ChargePoint]
    pv_installations: list[PvInstallation] = []
    batteries: list[Battery] = []
    v2g_chargers: list[V2gCharger] = []
    # None: the deployment's CARIFLEX_CITRINEOS_TENANT. Sites may share a tenant (docs/fleet.md).
    citrineos_tenant: str | None = Field(default=None, min_length=1)
    openadr: SiteOpenAdr = SiteOpenAdr()
    # The first id of the site's five derived site-wide series; None: 101, so each other site of a fleet names its own.
    derived_sensors_from: int | None = Field(default=None, ge=1)


class Portfolio(StrictModel):
    name: str = Field(min_length=1)
    timezone: Timezone
    resolution: timedelta = timedelta(minutes=15)
    first_day: date | None = None
    sensors: list[Sensor] = []
    signals: SignalSensors | None = None
    openadr: PortfolioOpenAdr | None = None
    sites: list[PortfolioSite] = Field(min_length=1)
    _built: dict[str, Site] = PrivateAttr(default_factory=dict)
    _entries: dict[str, PortfolioSite] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _build_sites(self) -> Portfolio:
        problems = cross_site_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        self._entries = {entry.id: entry for entry in self.sites}
        mappings = _plain_mappings(self)
        for entry in self.sites:  # every site's problems at once: one broken site must not hide another's
            try:
                self._built[entry.id] = self._site(entry, mappings.get(entry.id, []))
            except ValueError as error:
                problems.append(str(error))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _site(self, entry: PortfolioSite, mappings: list[OpenAdrSignal]) -> Site:
        openadr = None
        if self.openadr is not None:
            openadr = OpenAdr(ven_name=entry.openadr.ven_name or self.openadr.ven_name, signals=mappings)
        try:
            return Site(
                name=entry.name, timezone=entry.timezone or self.timezone, resolution=self.resolution,
                grid_connection=entry.grid_connection, sensors=[*entry.sensors, *self.sensors],
                signals=entry.signals or self.signals, charge_points=entry.charge_points,
                pv_installations=entry.pv_installations, batteries=entry.batteries, v2g_chargers=entry.v2g_chargers,
                openadr=openadr, first_day=entry.first_day or self.first_day,
                **({} if entry.derived_sensors_from is None else {"derived_sensors_from": entry.derived_sensors_from}),
            )
        except ValidationError as error:
            raw = entry.model_dump()
            raise ValueError(describe(error, raw, where=lambda location: f"site {entry.id!r}{_where(location, raw)}")
                             ) from None

    @property
    def site_ids(self) -> list[str]:
        return [entry.id for entry in self.sites]

    def site(self, site_id: str) -> Site:
        """The validated `Site` of `site_id`, for everything that knows one site (scheduling, dispatch)."""
        try:
            return self._built[site_id]
        except KeyError:
            raise KeyError(f"portfolio {self.name!r} has no site {site_id!r}; sites: "
                           f"{', '.join(self.site_ids)}") from None

    def entry(self, site_id: str) -> PortfolioSite:
        """The site as the file gives it: its tenant and OpenADR targets, which `Site` does not hold."""
        self.site(site_id)  # the same error for an unknown id
        return self._entries[site_id]

    def devices_elsewhere(self, site_id: str) -> frozenset[str]:
        """The charge point ids and V2G charger names of the other sites: what a fleet-wide input (the bundled
        session day) names that is not `site_id`'s to plan."""
        return frozenset(name for other in self.site_ids if other != site_id
                         for name in [*(cp.id for cp in self._built[other].charge_points),
                                      *(v.name for v in self._built[other].v2g_chargers)])

    def sensor_sites(self) -> dict[int, str | None]:
        """Every sensor the file defines -> the site that owns it, None for a shared one (the store's
        `sensors.site_id`)."""
        owners: dict[int, str | None] = {sensor.id: None for sensor in self.sensors}
        owners.update((sensor.id, entry.id) for entry in self.sites for sensor in entry.sensors)
        return owners

    def all_sensors(self) -> list[Sensor]:
        """Every sensor of the file once: the shared ones, then each site's own."""
        return [*self.sensors, *(sensor for entry in self.sites for sensor in entry.sensors)]

    def station_sites(self) -> dict[str, str]:
        """Charge point id -> its site (ids are unique across the portfolio): how a bus message finds its site."""
        return {cp.id: entry.id for entry in self.sites for cp in entry.charge_points}

    def device_sites(self) -> dict[str, str]:
        """Battery or V2G charger name -> its site (names are unique across the portfolio): how an S2 resource
        manager, which names its device, finds its site."""
        return {device.name: entry.id for entry in self.sites for device in [*entry.batteries, *entry.v2g_chargers]}

    def only_site(self) -> Site:
        """The site of a one-site portfolio (what today's single-site pipeline runs on)."""
        if len(self.sites) != 1:
            raise ValueError(f"portfolio {self.name!r} has {len(self.sites)} sites, not one: "
                             f"{', '.join(self.site_ids)}")
        return self._built[self.sites[0].id]

    @classmethod
    def from_site(cls, site: Site, site_id: str | None = None) -> Portfolio:
        """The one-site portfolio whose site is exactly `site` (a plain site file loaded as a portfolio)."""
        openadr = None
        if site.openadr is not None:
            openadr = PortfolioOpenAdr(ven_name=site.openadr.ven_name, signals=[
                PortfolioSignal(**mapping.model_dump()) for mapping in site.openadr.signals])
        entry = PortfolioSite(
            id=site_id or slug(site.name), name=site.name, grid_connection=site.grid_connection,
            sensors=site.sensors, charge_points=site.charge_points, pv_installations=site.pv_installations,
            batteries=site.batteries, v2g_chargers=site.v2g_chargers, derived_sensors_from=site.derived_sensors_from,
        )
        return cls(name=site.name, timezone=site.timezone, resolution=site.resolution, first_day=site.first_day,
                   signals=site.signals, openadr=openadr, sites=[entry])


def _plain_mappings(portfolio: Portfolio) -> dict[str, list[OpenAdrSignal]]:
    """Per site id, the mappings that target it, as the `OpenAdrSignal`s a `Site` holds (shared, they are frozen)."""
    out: dict[str, list[OpenAdrSignal]] = {}
    if portfolio.openadr is None:
        return out
    for mapping in portfolio.openadr.signals:
        plain = OpenAdrSignal(**mapping.model_dump(exclude={"sites"}))
        for site_id in portfolio.site_ids if mapping.sites == "all" else mapping.sites:
            out.setdefault(site_id, []).append(plain)
    return out


def slug(name: str) -> str:
    """A site id made from a name: 'Cariflex Martinique' -> 'cariflex-martinique' (accents dropped)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:63].strip("-") or "site"


def parse_portfolio(raw: Mapping[str, Any], source: str = "portfolio") -> Portfolio:
    """The portfolio `raw` describes (a file's mapping, or one built in memory); PortfolioError naming `source`,
    the site, the entry and the field on any problem."""
    try:
        return Portfolio.model_validate(raw)
    except ValidationError as error:
        raise PortfolioError(f"{source}: {describe(error, dict(raw), where=lambda loc: _place(loc, raw))}") from None


def _place(location: list[Any], raw: Mapping[str, Any]) -> str | None:
    """Pydantic's location as the file's names: sites.1.charge_points.3.max_power_kw becomes
    "site 'le-lamentin', charge_points entry 'CP009', field max_power_kw"; None for a rule across the file,
    whose message names the site itself."""
    if not location:
        return None
    sites = raw.get("sites")
    if location[0] == "sites" and len(location) >= 2 and isinstance(location[1], int):
        entry = sites[location[1]] if isinstance(sites, list) and location[1] < len(sites) else None
        label = entry.get("id") if isinstance(entry, dict) else None
        site = repr(label) if isinstance(label, str) else f"entry #{location[1]}"
        return f"site {site}{_where(location[2:], entry)}"
    return describe_location(location, dict(raw))


def _where(location: list[Any], raw_site: Any) -> str:
    """", <entry and field>" inside a site, or nothing for a rule of the whole site (its message names the entry)."""
    return f", {describe_location(location, raw_site)}" if location else ""


def default_portfolio_file() -> Path:
    """The portfolio file named by CARIFLEX_PORTFOLIO_FILE, else the site file (a one-site portfolio, as today)."""
    configured = os.environ.get(PORTFOLIO_FILE_ENV)
    if configured:
        return Path(configured)
    return default_site_file()


def load_portfolio(path: str | Path | None = None) -> Portfolio:
    """Read and validate a portfolio file, or a plain site file as a one-site portfolio (with the errors
    `load_site` gives); raise SiteModelError naming the file, the site, the entry and the field."""
    portfolio_path = Path(path) if path is not None else default_portfolio_file()
    raw = read_mapping(portfolio_path, "portfolio file")
    if "sites" not in raw:
        return Portfolio.from_site(validate_site(raw, portfolio_path))
    return parse_portfolio(raw, f"portfolio file {portfolio_path}")
