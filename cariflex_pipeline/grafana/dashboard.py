"""The Cariflex dashboard as Grafana JSON, built with grafana-foundation-sdk from the panel specs (panels.py)."""

from __future__ import annotations

import json

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardLinkType,
    DataSourceRef,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
)

from cariflex_pipeline.grafana.panels import PanelSpec, fleet_panels, seed_panels
from cariflex_pipeline.site_model import Portfolio, Site

DASHBOARD_UID = "cariflex-site"
FLEET_UID = "cariflex-fleet"
# Provisioned in deploy/grafana/provisioning/datasources/cariflex.yaml under this uid.
DATASOURCE = DataSourceRef(type_val="grafana-postgresql-datasource", uid="cariflex-store")
PANEL_WIDTH, PANEL_HEIGHT, COLUMNS = 12, 8, 2


class SqlQuery(cogvariants.Dataquery):
    """A raw SQL target of Grafana's PostgreSQL datasource (the SDK ships no builder for it)."""

    def __init__(self, ref_id: str, sql: str) -> None:
        self.ref_id = ref_id
        self.sql = sql

    def to_json(self) -> dict[str, object]:
        return {"refId": self.ref_id, "datasource": DATASOURCE, "editorMode": "code", "format": "time_series",
                "rawQuery": True, "rawSql": self.sql}


class SqlQueryBuilder(cogbuilder.Builder[SqlQuery]):
    def __init__(self, ref_id: str, sql: str) -> None:
        self._query = SqlQuery(ref_id, sql)

    def build(self) -> SqlQuery:
        return self._query


def _panel(spec: PanelSpec) -> timeseries.Panel | stat.Panel:
    if spec.kind == "stat":
        panel = (stat.Panel().graph_mode(common.BigValueGraphMode.AREA)
                 .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
    else:
        panel = (timeseries.Panel().axis_label(spec.axis_label).fill_opacity(10).line_width(1).show_points(
            common.VisibilityMode.NEVER).legend(common_builders.VizLegendOptions().display_mode(
                common.LegendDisplayMode.LIST).placement(common.LegendPlacement.BOTTOM).show_legend(True)))
        if spec.stacked:
            panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        if spec.limit is not None:
            panel = (panel.thresholds(dashboard_builders.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([
                Threshold(value=None, color="green"), Threshold(value=spec.limit, color="red")]))
                .thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(
                    common.GraphTresholdsStyleMode.LINE)))
        for series, (unit, label) in spec.unit_overrides.items():
            panel = panel.override_by_name(series, [
                DynamicConfigValue(id_val="unit", value=unit),
                DynamicConfigValue(id_val="custom.axisLabel", value=label),
                DynamicConfigValue(id_val="custom.axisPlacement", value="right")])
    return (panel.title(spec.title).description(spec.description).datasource(DATASOURCE).unit(spec.unit)
            .decimals(1).with_target(SqlQueryBuilder("A", spec.sql)).height(PANEL_HEIGHT).span(PANEL_WIDTH))


def build_dashboard(site: Site, uid: str = DASHBOARD_UID) -> dict[str, object]:
    """The dashboard as the JSON object Grafana's file provisioning reads; `uid` is a fleet site's own."""
    builder = (dashboard_builders.Dashboard(f"{site.name}: site").uid(uid).tags(["cariflex"])
               .timezone(site.timezone).time("now/d", "now/d").refresh("1m").readonly()
               .description("The seed dashboard's 17 panels on the time-series store (cariflex_pipeline.grafana; "
                            "regenerate with python -m cariflex_pipeline.grafana)."))
    for spec in seed_panels(site):
        builder = builder.with_panel(_panel(spec))
    return json.loads(json.dumps(builder.build(), cls=JSONEncoder))


def build_fleet_dashboard(portfolio: Portfolio) -> dict[str, object]:
    """The fleet's overview (`fleet_panels`), with a link to each site's own dashboard (uid `cariflex-site-<id>`,
    as the CLI writes them). In the sites' time zone when they share one, else UTC."""
    zones = {portfolio.site(site_id).timezone for site_id in portfolio.site_ids}
    builder = (dashboard_builders.Dashboard(f"{portfolio.name}: fleet").uid(FLEET_UID).tags(["cariflex"])
               .timezone(zones.pop() if len(zones) == 1 else "utc").time("now/d", "now/d").refresh("1m").readonly()
               .description(f"Every site of {portfolio.name}, one series each; a site's own dashboard has its "
                            "17 panels (cariflex_pipeline.grafana)."))
    for site_id in portfolio.site_ids:
        builder = builder.link(dashboard_builders.DashboardLink(portfolio.site(site_id).name)
                               .type(DashboardLinkType.LINK).url(f"/d/{DASHBOARD_UID}-{site_id}").keep_time(True))
    for spec in fleet_panels(portfolio):
        builder = builder.with_panel(_panel(spec))
    return json.loads(json.dumps(builder.build(), cls=JSONEncoder))


def dashboard_json(site: Site, uid: str = DASHBOARD_UID) -> str:
    """The committed file's exact text: sorted keys, two-space indent, final newline (stable diffs)."""
    return _stable_text(build_dashboard(site, uid))


def fleet_dashboard_json(portfolio: Portfolio) -> str:
    return _stable_text(build_fleet_dashboard(portfolio))


def _stable_text(dashboard: dict[str, object]) -> str:
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
