"""Checks of `ocpp_dispatch`: does every station hold a profile it confirmed, and does it do what we planned.

Both run in the dispatch run itself, on the outbox as the run left it (answers that arrive later show in the
next run). Times are shown in the site's local time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg

from cariflex_pipeline.dispatch import DeliveryPolicy, StationDelivery

CONFIRMED_CHECK = "stations_confirmed"
FOLLOW_CHECK = "stations_follow_plan"


def _local(moment: datetime | None, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "-"


def _cell(text: str, limit: int = 300) -> str:
    return text.replace("|", "/").replace("\n", " ")[:limit]


def confirmed_check(delivery: Mapping[str, StationDelivery], now: datetime, policy: DeliveryPolicy, tz: ZoneInfo,
                    transport: str) -> dg.AssetCheckResult:
    """Warn while a station's wanted profile is unconfirmed; fail with an error once that lasts past the bound."""
    unconfirmed = {s: d for s, d in delivery.items() if d.state == "unconfirmed"}
    overdue = {s: d for s, d in unconfirmed.items()
               if d.unconfirmed_since is not None and now - d.unconfirmed_since >= policy.unconfirmed_error_after}
    rows = [f"| {s} | {d.state} | {_local(d.unconfirmed_since, tz)} | {_cell(d.detail)} |"
            for s, d in sorted(delivery.items())]
    note = " (outbox-only transport: nothing is sent)" if transport == "outbox" else ""
    return dg.AssetCheckResult(
        check_name=CONFIRMED_CHECK, asset_key="ocpp_dispatch", passed=not unconfirmed,
        severity=dg.AssetCheckSeverity.ERROR if overdue else dg.AssetCheckSeverity.WARN,
        description=(f"{len(unconfirmed)} station(s) without a confirmed profile{note}, {len(overdue)} for longer "
                     f"than {policy.unconfirmed_error_after}" if unconfirmed else
                     "every station that should follow a profile confirmed it"),
        metadata={
            "unconfirmed": len(unconfirmed), "overdue": len(overdue),
            "unconfirmed_stations": ", ".join(sorted(unconfirmed)) or "none",
            "stations": dg.MetadataValue.md("\n".join(
                ["| station | state | unconfirmed since | detail |", "|---|---|---|---|", *rows])),
        })


def follow_plan_check(delivery: Mapping[str, StationDelivery]) -> dg.AssetCheckResult:
    """Compare each station's read-back composite schedule with the profile it confirmed. A station that should
    follow a profile but has none confirmed, or whose read-back is missing, is 'not read back' (a warning): no
    read-back at all is not a pass."""
    differs: dict[str, str] = {}
    unknown: dict[str, str] = {}
    matches = []
    for station, state in sorted(delivery.items()):
        entry = state.confirmed
        if state.state == "nothing_wanted":
            continue
        if entry is None:
            unknown[station] = "no confirmed profile to read back"
        elif entry.readback_status == "matches":
            matches.append(station)
        elif entry.readback_status == "differs":
            differs[station] = entry.readback_detail or ""
        else:
            unknown[station] = f"read-back {entry.readback_status or 'not asked'}: {entry.readback_detail or ''}"
    lines = [f"- **{s}** (differs): {_cell(d, 1000)}" for s, d in differs.items()]
    lines += [f"- {s}: {_cell(d.strip(': '), 300)}" for s, d in unknown.items()]
    return dg.AssetCheckResult(
        check_name=FOLLOW_CHECK, asset_key="ocpp_dispatch", passed=not differs and not unknown,
        severity=dg.AssetCheckSeverity.ERROR if differs else dg.AssetCheckSeverity.WARN,
        description=(f"{len(differs)} station(s) whose composite schedule differs from the plan, {len(unknown)} "
                     "not read back" if differs or unknown else
                     f"{len(matches)} station(s) read back, all following the plan"),
        metadata={"differs": len(differs), "not_read_back": len(unknown), "matches": len(matches),
                  "stations": dg.MetadataValue.md("\n".join(lines) or "every read-back matches the plan")})
