"""OCPP 2.0.1 dispatch to CitrineOS and live EV sessions from its bus (plain Python, no Dagster import).

Do not rename this package `ocpp`: it would shadow the `ocpp` library.
"""

from cariflex_pipeline.dispatch.amqp_transport import AmqpTransport
from cariflex_pipeline.dispatch.config import DispatchSettings
from cariflex_pipeline.dispatch.delivery import DeliveryPolicy, StationDelivery
from cariflex_pipeline.dispatch.dispatcher import DispatchReport, dispatch_profiles, record_answers
from cariflex_pipeline.dispatch.envelope import csms_request, decode, station_message
from cariflex_pipeline.dispatch.equivalence import DEFAULT_MIN_VALIDITY_AHEAD, EffectComparison, compare_effect
from cariflex_pipeline.dispatch.outbox import Outbox, OutboxEntry, payload_hash
from cariflex_pipeline.dispatch.planning import ProfileSet, profiles_from_plan
from cariflex_pipeline.dispatch.profiles import (
    BuiltProfile,
    ProfileBuildError,
    ProfileConfig,
    StationTarget,
    build_profile,
    emit_limit,
    profile_id_for,
)
from cariflex_pipeline.dispatch.rest_transport import AnswerBook, RestTransport
from cariflex_pipeline.dispatch.session_consumer import DrainReport, SessionConsumer
from cariflex_pipeline.dispatch.sessions import (
    METER_SOURCE,
    SessionBook,
    SessionChange,
    SessionDefaults,
    active_sessions,
    active_transactions,
    has_session_history,
    stations_from_portfolio,
)
from cariflex_pipeline.dispatch.transports import Answer, Call, OutboxOnlyTransport, SendResult, Transport
from cariflex_pipeline.dispatch.validation import ProfileValidationError, request_violations, validate_request

__all__ = [
    "DEFAULT_MIN_VALIDITY_AHEAD",
    "METER_SOURCE",
    "AmqpTransport",
    "Answer",
    "AnswerBook",
    "BuiltProfile",
    "Call",
    "DeliveryPolicy",
    "DispatchReport",
    "DispatchSettings",
    "DrainReport",
    "EffectComparison",
    "Outbox",
    "OutboxEntry",
    "OutboxOnlyTransport",
    "ProfileBuildError",
    "ProfileConfig",
    "ProfileSet",
    "ProfileValidationError",
    "RestTransport",
    "SendResult",
    "SessionBook",
    "SessionChange",
    "SessionConsumer",
    "SessionDefaults",
    "StationDelivery",
    "StationTarget",
    "Transport",
    "active_sessions",
    "active_transactions",
    "build_profile",
    "compare_effect",
    "csms_request",
    "decode",
    "dispatch_profiles",
    "emit_limit",
    "has_session_history",
    "payload_hash",
    "profile_id_for",
    "profiles_from_plan",
    "record_answers",
    "request_violations",
    "station_message",
    "stations_from_portfolio",
    "validate_request",
]
