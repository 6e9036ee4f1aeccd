"""The plan to the S2 devices: `s2_instructions` stages the battery and V2G part of the current plan as FRBC
instructions in the store for the CEM service (python -m cariflex_pipeline.s2) to send, waits a little for the
RMs' answers, and shows per device its RM, mode, setpoint, fill level and last instruction status.

Its check `s2_rms_accepted` says whether every connected RM accepted the instructions in force (a warning while
some are unanswered or refused: the CEM keeps retrying, and the next run shows the outcome).
"""

import time
from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from cariflex_pipeline.defs.partitions import plan_partitions
from cariflex_pipeline.defs.resources import SiteResource, TimeSeriesStoreResource
from cariflex_pipeline.s2.devices import site_devices
from cariflex_pipeline.s2.planning import DeviceStaging, stage_plan
from cariflex_pipeline.s2.report import DeviceReport, awaiting_answers, device_reports
from cariflex_pipeline.scheduling.signals import SCHEDULER_SOURCE, current_slot

ACCEPTED_CHECK = "s2_rms_accepted"


class S2InstructionsConfig(dg.Config):
    horizon_hours: float = Field(default=24.0, gt=0, le=72, description="Planned power staged from now on.")
    confirm_seconds: float = Field(default=10.0, ge=0, le=120,
                                   description="How long to wait for the CEM to send and the RMs to accept.")
    now: str | None = Field(default=None, description="ISO time to stage from (replays, tests); default: now.")


@dg.asset(
    group_name="s2",
    partitions_def=plan_partitions,
    deps=[dg.AssetKey("ev_charging_schedule")],
    kinds={"s2"},
    check_specs=[dg.AssetCheckSpec(ACCEPTED_CHECK, asset="s2_instructions",
                                   description="Every connected S2 resource manager accepted the instructions in "
                                               "force, and refused none of this plan's.")],
)
def s2_instructions(context: dg.AssetExecutionContext, config: S2InstructionsConfig, site: SiteResource,
                    store: TimeSeriesStoreResource) -> dg.MaterializeResult:
    """The battery and V2G part of the plan as FRBC instructions, per connected RM, stored for the CEM."""
    run_site = site.for_run(context)
    site_model = run_site.model
    series = store.open(run_site.portfolio)
    devices = site_devices(site_model, run_site.id)
    now = datetime.fromisoformat(config.now) if config.now else datetime.now(UTC)
    staging = stage_plan(series, devices, SCHEDULER_SOURCE, current_slot(now, site_model.resolution),
                         timedelta(hours=config.horizon_hours), context.run.run_id, now, site_id=run_site.id)
    deadline = time.monotonic() + config.confirm_seconds
    while awaiting_answers(series, devices, now) and time.monotonic() < deadline:
        time.sleep(0.2)  # the CEM polls the store each second; the RMs answer within their processing delay
    reports = device_reports(series, devices, context.run.run_id, now)
    for report in reports:
        if report.refused:
            context.log.warning("S2 %s refused instructions: %s", report.device, "; ".join(report.refused[:5]))
    return dg.MaterializeResult(metadata=_metadata(staging, reports), check_results=[_accepted_check(reports)])


def _metadata(staging: list[DeviceStaging], reports: list[DeviceReport]) -> dict[str, object]:
    staged = [item.staged for item in staging if item.staged is not None]
    metadata: dict[str, object] = {
        "rms_connected": sum(report.status == "connected" for report in reports),
        "rms_uncontrolled": sum(report.status == "uncontrolled" for report in reports),
        "rms_disconnected": sum(report.status == "disconnected" for report in reports),
        "instructions_added": sum(item.added for item in staged),
        "instructions_kept": sum(item.kept for item in staged),
        "instructions_revoked": sum(item.revoking for item in staged),
        "instructions_superseded": sum(item.superseded for item in staged),
        "devices": dg.MetadataValue.md(_device_table(reports)),
        "staging": dg.MetadataValue.md("\n".join(
            f"- {item.device}: {item.reason or f'{item.setpoints} setpoints'}" for item in staging)),
    }
    for report in reports:
        if report.fill_level is not None:
            metadata[f"fill_level_kwh_{report.device}"] = float(report.fill_level)
    return metadata


def _device_table(reports: list[DeviceReport]) -> str:
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    rows = [f"| {r.device} | {r.status} | {r.mode or '-'} | {number(r.setpoint_kw)} | {number(r.fill_level)} | "
            f"{r.instruction_status or '-'} | {r.accepted}/{r.accepted + r.awaiting} | "
            f"{(r.reason or '').replace('|', '/')[:120] or '-'} |" for r in reports]
    return "\n".join(["| device | RM | mode now | setpoint kW | fill level kWh | last instruction status | "
                      "accepted in force | note |", "|---|---|---|---|---|---|---|---|", *rows])


def _accepted_check(reports: list[DeviceReport]) -> dg.AssetCheckResult:
    connected = [report for report in reports if report.status == "connected"]
    awaiting = [report.device for report in connected if report.awaiting]
    refused = [report.device for report in connected if report.refused]
    lines = [f"- {report.device}: {report.awaiting} awaiting; " + ("; ".join(report.refused[:5]) or "none refused")
             for report in connected if report.awaiting or report.refused]
    return dg.AssetCheckResult(
        check_name=ACCEPTED_CHECK, passed=not awaiting and not refused, severity=dg.AssetCheckSeverity.WARN,
        description=(f"awaiting an answer: {', '.join(awaiting) or 'none'}; refused: {', '.join(refused) or 'none'}"
                     if awaiting or refused else f"{len(connected)} connected RM(s), every instruction in force "
                                                 "accepted"),
        metadata={"awaiting": len(awaiting), "refused": len(refused),
                  "details": dg.MetadataValue.md("\n".join(lines) or "none")})
