"""The rules across the sites of a portfolio, each broken rule one message naming the site, the entry and the field.

A site's own rules (a sensor it names exists, units, powers, SoC bounds) are the `Site` model's; these are the
ones only the whole file can break:

- site ids are unique;
- a sensor id is defined once in the file: in the shared `sensors` or in one site's own;
- a site names only shared sensors and its own, never another site's;
- a charge point (its id, or the sensor of any device) belongs to one site;
- a battery or V2G charger name belongs to one device of one site: an S2 resource manager names its device by it,
  and the store keys the RM's rows by that device's site;
- every site has signals: its own or the portfolio's;
- an OpenADR mapping targets `all` or known site ids, and feeds a shared sensor or one of each target's own;
- the ids of each site's derived series (`derived_sensors_from` and the four after it) are its own: no other site's
  range and no sensor of the file.

A site's grid connection is required and positive (`GridConnection`), so no site plans without a limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cariflex_pipeline.site_model.portfolio import Portfolio, PortfolioSite

SHARED = ""  # the owner of a sensor in the portfolio's own `sensors`


def cross_site_problems(portfolio: Portfolio) -> list[str]:
    """Every broken rule of the module docstring, in file order; empty when the sites fit together."""
    problems = _duplicate_site_ids(portfolio)
    owner, duplicates = _sensor_owners(portfolio)
    problems += duplicates
    used_by: dict[int, tuple[str, str]] = {}  # device sensor -> (site, entry)
    charge_point_site: dict[str, str] = {}
    device_names: dict[str, tuple[str, str]] = {}  # battery / V2G charger name -> (site, entry)
    for entry in portfolio.sites:
        for cp in entry.charge_points:
            other = charge_point_site.setdefault(cp.id, entry.id)
            if other != entry.id:
                problems.append(f"site {entry.id!r}, charge_points entry {cp.id!r}, field id: charge point "
                                f"{cp.id!r} is already in site {other!r}")
        problems += _duplicate_device_names(entry, device_names)
        for where, sensor_id in _device_refs(entry):
            problems += _foreign(entry.id, where, sensor_id, owner)
            first = used_by.setdefault(sensor_id, (entry.id, where))
            if first[0] != entry.id:
                problems.append(f"site {entry.id!r}, {where}: sensor {sensor_id} is already used by site "
                                f"{first[0]!r} ({first[1]})")
    for entry in portfolio.sites:
        problems += _signal_problems(portfolio, entry, owner, used_by)
    problems += _mapping_problems(portfolio, owner, used_by)
    problems += _derived_range_problems(portfolio, owner)
    return problems


DEFAULT_DERIVED_FROM = 101  # Site.derived_sensors_from's default
DERIVED_RANGE = 5  # site-wide derived series per site (derived/sensors.py)


def _derived_range_problems(portfolio: Portfolio, owner: dict[int, str]) -> list[str]:
    taken: dict[int, str] = {}
    problems = []
    for entry in portfolio.sites:
        first = entry.derived_sensors_from or DEFAULT_DERIVED_FROM
        ids = range(first, first + DERIVED_RANGE)
        where = f"site {entry.id!r}, field derived_sensors_from: derived sensors {ids[0]}-{ids[-1]}"
        clash = next((i for i in ids if i in taken), None)
        if clash is not None:
            problems.append(f"{where} overlap site {taken[clash]!r}'s (sensor {clash}); give each site its own range")
        defined = next((i for i in ids if i in owner), None)
        if defined is not None:
            problems.append(f"{where} take sensor {defined}, {_defined_by(owner[defined])}")
        taken.update(dict.fromkeys(ids, entry.id))
    return problems


def _duplicate_site_ids(portfolio: Portfolio) -> list[str]:
    seen: dict[str, int] = {}
    problems = []
    for index, entry in enumerate(portfolio.sites):
        first = seen.setdefault(entry.id, index)
        if first != index:
            problems.append(f"site {entry.id!r} (sites entry #{index}), field id: duplicate site id, already "
                            f"sites entry #{first}")
    return problems


def _duplicate_device_names(entry: PortfolioSite, seen: dict[str, tuple[str, str]]) -> list[str]:
    """Batteries and V2G chargers whose name an earlier device already has, in this site or another."""
    problems = []
    for key, names in (("batteries", [b.name for b in entry.batteries]),
                       ("v2g_chargers", [v.name for v in entry.v2g_chargers])):
        for name in names:
            where = f"{key} entry {name!r}"
            first = seen.setdefault(name, (entry.id, where))
            if first != (entry.id, where):
                problems.append(f"site {entry.id!r}, {where}, field name: device name {name!r} is already used by "
                                f"site {first[0]!r} ({first[1]}); an S2 resource manager names its device by it")
    return problems


def _sensor_owners(portfolio: Portfolio) -> tuple[dict[int, str], list[str]]:
    """Sensor id -> the site that defines it (SHARED for the portfolio's own), and the ids defined twice."""
    owner: dict[int, str] = {}
    problems = []
    defined = [(SHARED, sensor.id) for sensor in portfolio.sensors]
    defined += [(entry.id, sensor.id) for entry in portfolio.sites for sensor in entry.sensors]
    for site_id, sensor_id in defined:
        if sensor_id not in owner:
            owner[sensor_id] = site_id
            continue
        where = f"site {site_id!r}, sensors entry {sensor_id}" if site_id else f"sensors entry {sensor_id}"
        problems.append(f"{where}, field id: sensor {sensor_id} is already defined {_defined_by(owner[sensor_id])}")
    return owner, problems


def _defined_by(site_id: str) -> str:
    return f"by site {site_id!r}" if site_id else "in the shared sensors"


def _device_refs(entry: PortfolioSite) -> Iterator[tuple[str, int]]:
    """(entry and field as the file names them, sensor id) of every device of the site."""
    for key, devices in (("charge_points", [(cp.id, cp.sensor_id) for cp in entry.charge_points]),
                         ("pv_installations", [(pv.name, pv.sensor_id) for pv in entry.pv_installations]),
                         ("batteries", [(b.name, b.sensor_id) for b in entry.batteries]),
                         ("v2g_chargers", [(v.name, v.sensor_id) for v in entry.v2g_chargers])):
        for label, sensor_id in devices:
            yield f"{key} entry {label!r}, field sensor_id", sensor_id


def _foreign(site_id: str, where: str, sensor_id: int, owner: dict[int, str]) -> list[str]:
    """A sensor another site defines, named by `site_id`'s entry; a sensor no one defines is the Site's to name."""
    other = owner.get(sensor_id, SHARED)
    if other in (SHARED, site_id):
        return []
    return [f"site {site_id!r}, {where}: sensor {sensor_id} belongs to site {other!r}"]


def _signal_problems(portfolio: Portfolio, entry: PortfolioSite, owner: dict[int, str],
                     used_by: dict[int, tuple[str, str]]) -> list[str]:
    signals = entry.signals or portfolio.signals
    if signals is None:
        return [f"site {entry.id!r}, field signals: missing, and the portfolio names no signals for all sites"]
    problems = []
    where_from = "signals" if entry.signals else "the portfolio's signals"
    for field, sensor_id in signals.model_dump().items():
        where = f"{where_from}, field {field}"
        problems += _foreign(entry.id, where, sensor_id, owner)
        device = used_by.get(sensor_id)
        if device is not None and device[0] != entry.id:
            problems.append(f"site {entry.id!r}, {where}: sensor {sensor_id} is a device sensor of site "
                            f"{device[0]!r} ({device[1]})")
    return problems


def _mapping_problems(portfolio: Portfolio, owner: dict[int, str],
                      used_by: dict[int, tuple[str, str]]) -> list[str]:
    if portfolio.openadr is None:
        return []
    known = {entry.id for entry in portfolio.sites}
    problems = []
    for index, mapping in enumerate(portfolio.openadr.signals):
        where = f"openadr signals entry #{index} (sensor {mapping.sensor_id})"
        targets = sorted(known) if mapping.sites == "all" else mapping.sites
        if not targets:
            problems.append(f"{where}, field sites: names no site; give site ids or all")
        for site_id in targets:
            if site_id not in known:
                problems.append(f"{where}, field sites: unknown site {site_id!r}; the portfolio's sites are "
                                f"{', '.join(entry.id for entry in portfolio.sites)}")
        if mapping.sensor_id not in owner:
            problems.append(f"{where}, field sensor_id: sensor {mapping.sensor_id} is defined nowhere in the file")
            continue
        sensor_site = owner[mapping.sensor_id] or (used_by.get(mapping.sensor_id) or (SHARED,))[0]
        strangers = [site_id for site_id in targets if site_id in known and sensor_site not in (SHARED, site_id)]
        if strangers:
            problems.append(f"{where}, field sensor_id: sensor {mapping.sensor_id} belongs to site "
                            f"{sensor_site!r}, the signal targets site {strangers[0]!r}")
    return problems
