"""EV sessions for the scheduler: live ones from the bus, or a day template repeated on every day of the horizon.

Before the bus has brought any session (and on the embedded default) the schedule takes its sessions from a
template file. Template format (see data/sessions_day.json)::

    {"timezone": "America/Martinique",
     "sessions": [{"id": "cp001-commuter", "charge_point": "CP001", "arrival": "07:30", "departure": "17:00",
                   "energy_needed_kwh": 32, "max_power_kw": 11, "efficiency": 0.92}, ...]}

Times are local wall-clock ``HH:MM``; ``"06:45+1"`` means the next day. Any other EvSession field may be given.
A static template knows nothing of what an EV already received: a session already plugged in when the horizon
starts is assumed to have received its energy in proportion to the time elapsed (``energy_needed_kwh`` scaled by
the share of its stay still ahead; with SoC fields, ``soc_now`` moved towards ``soc_target`` by the share behind).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from cariflex_pipeline.scheduling.problem import EvSession, ProblemError

BUNDLED_DAY = Path(__file__).with_name("data") / "sessions_day.json"
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?:\+(\d+))?$")


def load_day_template(path: str | Path | None = None) -> dict[str, Any]:
    """Read a day template; raise ProblemError naming the file on any problem."""
    template_path = Path(path) if path else BUNDLED_DAY
    try:
        template = json.loads(template_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ProblemError(f"session template {template_path}: cannot be read ({error})") from None
    if not isinstance(template, dict) or not isinstance(template.get("sessions"), list):
        raise ProblemError(f"session template {template_path}: expected an object with a 'sessions' list")
    template.setdefault("timezone", "America/Martinique")
    return template


def _local(day: date, clock: str, tz: ZoneInfo, session_id: str) -> datetime:
    match = _CLOCK.match(clock)
    if not match:
        raise ProblemError(f"session template entry {session_id!r}: time {clock!r} is not HH:MM or HH:MM+1")
    hours, minutes, days = int(match[1]), int(match[2]), int(match[3] or 0)
    return datetime.combine(day + timedelta(days=days), time(hours, minutes), tzinfo=tz)


def sessions_for_horizon(template: dict[str, Any], start: datetime, end: datetime,
                         devices_elsewhere: Collection[str] = ()) -> list[EvSession]:
    """The template's sessions on every local day that touches [start, end), those still plugged in or arriving;
    without those at `devices_elsewhere` (another site's of a fleet: the bundled day covers the seed's ten).

    Ids get the local date of arrival appended (``cp001-commuter@2026-11-28``).
    """
    tz = ZoneInfo(template["timezone"])
    first_day = start.astimezone(tz).date() - timedelta(days=1)
    last_day = end.astimezone(tz).date()
    sessions: list[EvSession] = []
    day = first_day
    while day <= last_day:
        for entry in template["sessions"]:
            if entry.get("charge_point") in devices_elsewhere:
                continue
            session_id = str(entry.get("id", "?"))
            fields = dict(entry)
            fields["id"] = f"{session_id}@{day.isoformat()}"
            fields["arrival"] = _local(day, str(entry.get("arrival", "")), tz, session_id)
            fields["departure"] = _local(day, str(entry.get("departure", "")), tz, session_id)
            try:
                session = EvSession.model_validate(fields)
            except ValidationError as error:
                messages = "; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors())
                raise ProblemError(f"session template entry {session_id!r}: {messages}") from None
            if session.departure > start and session.arrival < end:
                sessions.append(_pro_rata(session, start))
        day += timedelta(days=1)
    return sessions


def _pro_rata(session: EvSession, start: datetime) -> EvSession:
    """A session that arrived before `start` keeps the share of its need that matches the stay still ahead."""
    if session.arrival >= start:
        return session
    behind = (start - session.arrival) / (session.departure - session.arrival)
    if session.energy_needed_kwh is not None:
        return session.model_copy(update={"energy_needed_kwh": session.energy_needed_kwh * (1 - behind)})
    assert session.soc_now is not None and session.soc_target is not None
    if session.soc_target <= session.soc_now:
        return session
    return session.model_copy(update={"soc_now": session.soc_now + (session.soc_target - session.soc_now) * behind})


class LiveSessions(NamedTuple):
    sessions: list[EvSession]
    superseded: list[str]  # ids of sessions left out: a later transaction started at the same EVSE


def sessions_from_live(records: list[dict[str, Any]], start: datetime, resolution: timedelta) -> LiveSessions:
    """EV sessions from the live session table (cariflex_pipeline.dispatch.active_sessions records).

    An EV still plugged in after its (stated or default) departure keeps charging as soon as possible: its
    departure is moved to the end of the current slot, so the LP serves what it can at once and reports the rest
    as unserved, instead of dropping a car that is still there.

    One EVSE holds one EV: when the table has several active transactions at one EVSE (a lost TransactionEvent
    Ended), only the latest arrival is scheduled and the others are returned as superseded, instead of
    overlapping sessions that would refuse the whole site's schedule.
    """
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    superseded = []
    for record in sorted(records, key=lambda r: r["arrival"]):
        key = (record["station_id"], record.get("evse_id", 1))
        if key in latest:
            older = latest[key]
            superseded.append(f"{older['station_id']}:{older['transaction_id']}")
        latest[key] = record
    sessions = []
    for record in latest.values():
        departure = max(record["departure"], start + resolution)
        sessions.append(
            EvSession(
                id=f"{record['station_id']}:{record['transaction_id']}",
                charge_point=record["station_id"],
                arrival=min(record["arrival"], departure - resolution),
                departure=departure,
                energy_needed_kwh=record["energy_needed_kwh"],
            )
        )
    return LiveSessions(sessions, superseded)
