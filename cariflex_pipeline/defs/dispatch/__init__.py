"""Dagster shell of the dispatch stage: profiles, dispatch, the EV-session and answer sensors, the broker."""

import dagster as dg

from cariflex_pipeline.defs.dispatch.assets import ocpp_charging_profiles, ocpp_dispatch
from cariflex_pipeline.defs.dispatch.resources import BrokerResource, broker_resource_from_env
from cariflex_pipeline.defs.dispatch.sensors import ev_session_sensor, ocpp_answer_sensor

defs = dg.Definitions(
    assets=[ocpp_charging_profiles, ocpp_dispatch],
    sensors=[ev_session_sensor, ocpp_answer_sensor],
    resources={"dispatch_broker": broker_resource_from_env()},
)

__all__ = ["BrokerResource", "defs"]
