"""OpenADR VEN (2.0b and 3.0.1): price and grid signals into sensors 84, 86 and 87. No Dagster import here."""

from cariflex_pipeline.openadr.errors import (
    EventRejected,
    MalformedMessageError,
    OpenAdrError,
    UnsafeXmlError,
    VtnAuthError,
    VtnError,
)
from cariflex_pipeline.openadr.ingest import IngestReport, ingest_events, source_name
from cariflex_pipeline.openadr.model import EventSignal, OpenAdrEvent, SignalInterval

__all__ = [
    "EventRejected",
    "EventSignal",
    "IngestReport",
    "MalformedMessageError",
    "OpenAdrError",
    "OpenAdrEvent",
    "SignalInterval",
    "UnsafeXmlError",
    "VtnAuthError",
    "VtnError",
    "ingest_events",
    "source_name",
]
