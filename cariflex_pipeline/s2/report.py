"""What the Dagster shell shows of the S2 devices, pure reads of the store: per device its RM, mode, setpoint,
fill level and last instruction status; whether the RMs accepted what is in force; why a re-plan is due."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from s2python.frbc import FRBCSystemDescription

from cariflex_pipeline.s2 import state
from cariflex_pipeline.s2.devices import S2Device
from cariflex_pipeline.s2.frbc import mode_ranges, planned_at
from cariflex_pipeline.s2.planning import planned_fill
from cariflex_pipeline.s2.tables import IN_FORCE_STATUSES
from cariflex_pipeline.store import TimeSeriesStore

ACCEPTED_STATUSES = ("accepted", "started", "succeeded")
REFUSED_STATUSES = ("rejected", "invalid", "outside_ranges", "aborted", "unanswered")


@dataclass(frozen=True)
class DeviceReport:
    device: str
    resource_id: str | None
    status: str  # connected | uncontrolled | disconnected | no RM
    reason: str
    fill_level: float | None
    mode: str | None  # of the instruction in effect now
    setpoint_kw: float | None
    instruction_status: str | None
    accepted: int  # of the instructions in force
    awaiting: int  # in force, not yet accepted
    refused: list[str]  # this plan's instructions the RM refused or never answered, with the reason


def _refused(rows: list[dict], plan_key: str) -> list[dict]:
    """This plan's refused instructions that no later attempt at the same time replaced."""
    replaced = {row["execution_time"] for row in rows if row["status"] in (*IN_FORCE_STATUSES, "succeeded")}
    return [row for row in rows if row["status"] in REFUSED_STATUSES and row["plan_key"] == plan_key
            and row["execution_time"] not in replaced]


def device_reports(store: TimeSeriesStore, devices: Mapping[str, S2Device], plan_key: str,
                   now: datetime) -> list[DeviceReport]:
    newest = state.newest_by_device(store.engine, devices)
    reports = []
    for device in sorted(devices):
        row = newest.get(device)
        if row is None:
            reports.append(DeviceReport(device, None, "no RM", "no resource manager ever connected", None, None,
                                        None, None, 0, 0, []))
            continue
        in_force = state.in_force(store.engine, row["resource_id"], now)
        current = next((r for r in reversed(in_force) if r["execution_time"] <= now), None)
        labels = {}
        if row["system_description"]:
            description = FRBCSystemDescription.from_json(row["system_description"])
            labels = {mode.mode_id: mode.label for mode in mode_ranges(description, row["fill_level"])}
        refused = _refused(state.instructions(store.engine, row["resource_id"]), plan_key)
        reports.append(DeviceReport(
            device, row["resource_id"], row["status"], row["status_reason"], row["fill_level"],
            None if current is None else labels.get(current["operation_mode_id"], current["operation_mode_id"]),
            None if current is None else current["power_kw"], None if current is None else current["status"],
            sum(r["status"] in ACCEPTED_STATUSES for r in in_force),
            sum(r["status"] not in ACCEPTED_STATUSES for r in in_force),
            [f"{r['execution_time'].isoformat()} {r['status']}: {r['status_reason']}" for r in refused]))
    return reports


def awaiting_answers(store: TimeSeriesStore, devices: Mapping[str, S2Device], now: datetime) -> int:
    """Instructions in force, for a connected RM, that it has not accepted yet."""
    return sum(report.awaiting for report in device_reports(store, devices, "", now)
               if report.status == "connected")


def replan_reasons(store: TimeSeriesStore, devices: Mapping[str, S2Device], seen: Mapping[str, str],
                   margin_kwh: float) -> tuple[list[str], list[str], dict[str, str]]:
    """Why the plan is out of date, a key per reason that names that very change, and what was seen now: an RM
    that connected or left since `seen` (resource id -> status), or a connected RM whose last reported fill level
    is more than `margin_kwh` from the plan's. The keys carry the time of each connect or leave, so the same RM
    coming back a second time is a new change, not one already requested."""
    reasons, keys, now_seen = [], [], {}
    for row in state.resources(store.engine):
        device = devices.get(row["device"] or "")
        if device is None:
            continue
        status, before = row["status"], seen.get(row["resource_id"], "disconnected")
        now_seen[row["resource_id"]] = status
        if before != status and "connected" in (status, before):
            connected = status == "connected"
            reasons.append(f"{device.name}: RM {'connected' if connected else 'left'}")
            since = row["connected_at"] if connected else row["disconnected_at"]
            keys.append(f"{row['resource_id']}:{status}@{since.isoformat() if since else row['updated_at']}")
            continue
        if status != "connected" or row["fill_level"] is None or row["fill_level_at"] is None:
            continue
        at = row["fill_level_at"]
        planned = planned_at(planned_fill(store, device, at - timedelta(hours=1), at + timedelta(hours=1)), at)
        if planned is not None and abs(row["fill_level"] - planned) > margin_kwh:
            reasons.append(f"{device.name}: fill level {row['fill_level']:.2f} kWh at {at.isoformat()}, plan "
                           f"{planned:.2f} kWh")
            keys.append(reasons[-1])
    return reasons, keys, now_seen
