"""Dagster shell of the dispatch stage: profiles, dispatch, the EV-session and answer sensors, the broker, and the
asset sync with CitrineOS."""

import dagster as dg

from cariflex_pipeline.defs.dispatch.assets import ocpp_charging_profiles, ocpp_dispatch
from cariflex_pipeline.defs.dispatch.resources import BrokerResource, broker_resource_from_env
from cariflex_pipeline.defs.dispatch.sensors import ev_session_sensor, ocpp_answer_sensor
from cariflex_pipeline.defs.dispatch.sync import citrineos_asset_sync

# Evaluates FOLLOW_THE_PLAN: a plan materialized on its own is dispatched within this interval. Automation conditions
# are evaluated per asset partition, so in a fleet this is already per site x day: one site's new plan requests the
# dispatch of that site's partition only, and a site whose plan failed its blocking checks holds back only its own.
replan_dispatch_sensor = dg.AutomationConditionSensorDefinition(
    "replan_dispatch_sensor", target=[ocpp_charging_profiles, ocpp_dispatch],
    default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=15,
    description="Dispatches a plan materialized on its own (UI, CLI): profiles and dispatch follow "
                "ev_charging_schedule unless one of its blocking checks failed.")

defs = dg.Definitions(
    assets=[ocpp_charging_profiles, ocpp_dispatch],
    asset_checks=[citrineos_asset_sync],
    sensors=[ev_session_sensor, ocpp_answer_sensor, replan_dispatch_sensor],
    resources={"dispatch_broker": broker_resource_from_env()},
)

__all__ = ["BrokerResource", "defs"]
