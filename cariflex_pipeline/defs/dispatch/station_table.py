"""What `ocpp_dispatch` shows first: one row per charge point, readable at a glance.

Status and answer, the first limits in kW at the site's local time, until when the profile is valid, and whether
the station's read-back matched; the UI renders it as a table in the run's metadata. The payloads as sent are
one markdown entry behind it (a link in the UI), for whoever needs the raw JSON.
"""

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg

from cariflex_pipeline.defs.tables import metadata_table
from cariflex_pipeline.dispatch import BuiltProfile
from cariflex_pipeline.dispatch.dispatcher import DispatchReport

FIRST_LIMITS = 4  # periods shown; the rest is in the raw payload
# What the outbox status says when the entry carries no reason of its own (an Accepted has none).
STATUS_ANSWERS = {
    "accepted": "Accepted",
    "sent": "no answer yet",
    "pending": "stored, not sent (outbox-only transport)",
    "unanswered": "no answer within the deadline: re-sent from the current plan",
}
COLUMNS = (
    ("station", "string", "charge point"),
    ("status", "string", "outbox status after this run: accepted, rejected, sent, pending, skipped, …"),
    ("answer", "string", "the station's answer or why nothing was sent"),
    ("first limits", "string", "the profile's first periods: site time and limit"),
    ("valid until", "string", "the profile's validTo, site time"),
    ("read back", "string", "GetCompositeSchedule after Accepted: matches, differs, requested, …"),
    ("profile", "string", "purpose and profile id"),
)


def _local(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%d %b %H:%M")


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _limit(value: float, unit: str) -> str:
    return f"{value / 1000:.1f} kW" if unit == "W" else f"{value:g} A"


def first_limits(payload: Mapping[str, Any], tz: ZoneInfo, count: int = FIRST_LIMITS) -> str:
    """'16:30 11.0 kW · 18:30 4.2 kW · …' from a SetChargingProfileRequest: each period's start in site time."""
    schedule = payload["chargingProfile"]["chargingSchedule"][0]
    start = _instant(schedule["startSchedule"]).timestamp()
    periods = schedule["chargingSchedulePeriod"]
    shown = [f"{datetime.fromtimestamp(start + period['startPeriod'], tz).strftime('%H:%M')} "
             f"{_limit(period['limit'], schedule['chargingRateUnit'])}" for period in periods[:count]]
    return " · ".join(shown) + (" · …" if len(periods) > count else "")


def valid_until(payload: Mapping[str, Any], tz: ZoneInfo) -> str:
    valid_to = payload["chargingProfile"].get("validTo")
    return _local(_instant(valid_to), tz) if valid_to else "-"


def station_rows(station_ids: Sequence[str], report: DispatchReport, built: Mapping[str, BuiltProfile],
                 tz: ZoneInfo) -> list[dict[str, str]]:
    """One row per station, in the site's order: what this run sent it, or why it left it alone."""
    rows = []
    for station in station_ids:
        entry = report.entries.get(station)
        profile = built.get(station)
        if entry is not None:
            answer = entry.status_reason or STATUS_ANSWERS.get(entry.status, "-")
            rows.append({"station": station, "status": entry.status, "answer": answer,
                         "first limits": first_limits(entry.payload, tz), "valid until": valid_until(entry.payload, tz),
                         "read back": entry.readback_status or "-",
                         "profile": f"{entry.purpose} #{entry.profile_id}"})
        elif profile is not None:
            rows.append({"station": station, "status": "skipped", "answer": report.skipped.get(station, "-"),
                         "first limits": first_limits(profile.payload, tz),
                         "valid until": valid_until(profile.payload, tz), "read back": "-",
                         "profile": f"{profile.purpose} #{profile.profile_id}"})
        else:
            rows.append({"station": station, "status": "skipped" if station in report.skipped else "no profile",
                         "answer": report.skipped.get(station, "nothing planned, no profile to stop"),
                         "first limits": "-", "valid until": "-", "read back": "-", "profile": "-"})
    return rows


def station_table(rows: Sequence[Mapping[str, str]]) -> dg.TableMetadataValue:
    return metadata_table(COLUMNS, rows)


def raw_payloads(report: DispatchReport) -> dg.MarkdownMetadataValue:
    """The SetChargingProfileRequests as sent this run, with their outbox bookkeeping, per station."""
    parts = []
    for station, entry in sorted(report.entries.items()):
        record = {"status": entry.status, "reason": entry.status_reason, "attempts": entry.attempts,
                  "correlation_id": entry.correlation_id, "readback": entry.readback_status,
                  "readback_detail": entry.readback_detail, "payload": entry.payload}
        parts.append(f"**{station}**\n\n```json\n{json.dumps(record, indent=1, sort_keys=True, default=str)}\n```")
    return dg.MetadataValue.md("\n\n".join(parts) or "nothing sent this run")
