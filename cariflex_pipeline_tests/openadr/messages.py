"""Builders of OpenADR messages for the tests: 2.0b oadrDistributeEvent XML (via openleadr) and 3.0.1 JSON."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from openleadr import objects

from cariflex_pipeline.openadr.oadr20b import create_message

PRICE_CONTEXT = "oadr://martinique/price"
LOAD_CONTEXT = "oadr://martinique/load-control"
DR_CONTEXT = "oadr://martinique/demand-response"
H = timedelta(hours=1)


def event_20b(event_id: str, context: str, name: str, signal_type: str,
              intervals: list[tuple[datetime, timedelta, float]], measurement: dict[str, str] | None = None,
              modification: int = 0, status: str = "far") -> objects.Event:
    created = datetime(2026, 11, 27, 16, tzinfo=UTC)
    return objects.Event(
        event_descriptor=objects.EventDescriptor(
            event_id=event_id, modification_number=modification, market_context=context, event_status=status,
            created_date_time=created, modification_date_time=created),
        event_signals=[objects.EventSignal(
            intervals=[objects.Interval(dtstart=start, duration=duration, signal_payload=value, uid=index)
                       for index, (start, duration, value) in enumerate(intervals)],
            signal_name=name, signal_type=signal_type, signal_id=f"{event_id}-signal",
            measurement=objects.Measurement(**measurement) if measurement else None)],
        targets=[{"ven_id": "ven_1"}], response_required="never")


def distribute_xml(*events: objects.Event, vtn_id: str = "MARTINIQUE_VTN") -> str:
    return create_message("oadrDistributeEvent", request_id="req-1", vtn_id=vtn_id,
                          events=[asdict(event) for event in events])


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def event_301(event_id: str, start: datetime, values: list[Any], *, program: str = "martinique-price",
              payload_type: str = "PRICE", units: str | None = "KWH", currency: str | None = "EUR",
              duration: str = "PT1H", modified: datetime | None = None) -> dict[str, Any]:
    descriptor: dict[str, Any] = {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": payload_type}
    if units is not None:
        descriptor["units"] = units
    if currency is not None:
        descriptor["currency"] = currency
    modified = modified or datetime(2026, 11, 27, 16, tzinfo=UTC)
    return {
        "id": event_id,
        "objectType": "EVENT",
        "programID": program,
        "eventName": f"{payload_type.lower()} {event_id}",
        "createdDateTime": iso(datetime(2026, 11, 27, 16, tzinfo=UTC)),
        "modificationDateTime": iso(modified),
        "priority": 0,
        "payloadDescriptors": [descriptor],
        "intervalPeriod": {"start": iso(start), "duration": duration},
        "intervals": [{"id": index, "payloads": [{"type": payload_type, "values": [value]}]}
                      for index, value in enumerate(values)],
    }
