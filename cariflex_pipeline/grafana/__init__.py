"""Grafana as code: the seed's seventeen panels as SQL on the store (panels.py) and the dashboard JSON built from
them with grafana-foundation-sdk (dashboard.py); `python -m cariflex_pipeline.grafana [--check]` writes or checks
deploy/grafana/dashboards/cariflex.json. Needs the `grafana` extra; no Dagster here."""
