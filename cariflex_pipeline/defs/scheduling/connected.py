"""Who is connected now: the schedule's sessions table an operator reads first, in site time.

One row per EV plugged in at the plan's start: station, since, leaves, the energy it needs and the energy the plan
delivers to it within the horizon, and whether its departure or energy is a default (no NotifyEVChargingNeeds
from the car) or the session comes from the bundled day template rather than the bus.
"""

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg

from cariflex_pipeline.defs.tables import metadata_table
from cariflex_pipeline.scheduling import EvSession, ScheduleResult

COLUMNS = (
    ("station", "string", "charge point"),
    ("since", "string", "arrival, site time"),
    ("leaves", "string", "departure, site time"),
    ("needed kWh", "float", "energy the EV asked for (or the default)"),
    ("planned kWh", "float", "energy the plan delivers within the horizon"),
    ("inputs", "string", "'stated', 'DEFAULT departure/energy', or 'SAMPLE day template'"),
)


def connected_rows(sessions: Sequence[EvSession], result: ScheduleResult, now: datetime, tz: ZoneInfo,
                   defaulted: Collection[str], from_template: bool) -> list[dict[str, object]]:
    delivered = {planned.id: planned for planned in result.sessions}
    rows = []
    for session in sorted(sessions, key=lambda s: (s.charge_point, s.arrival)):
        if not session.arrival <= now < session.departure:
            continue
        planned = delivered.get(session.id)
        inputs = "SAMPLE day template" if from_template else (
            "DEFAULT departure/energy" if session.id in defaulted else "stated")
        rows.append({"station": session.charge_point, "since": f"{session.arrival.astimezone(tz):%d %b %H:%M}",
                     "leaves": f"{session.departure.astimezone(tz):%d %b %H:%M}",
                     "needed kWh": round(planned.energy_needed_kwh, 1) if planned else None,
                     "planned kWh": round(planned.energy_delivered_kwh, 1) if planned else None,
                     "inputs": inputs})
    return rows


def connected_table(rows: Sequence[Mapping[str, object]]) -> dg.TableMetadataValue:
    return metadata_table(COLUMNS, rows)
