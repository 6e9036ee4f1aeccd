"""`python -m cariflex_pipeline`: run the main job (the whole graph) once and say where to look.

With no environment configured this is fully offline: SQLite store under $DAGSTER_HOME, the bundled sample
event feed, dispatch into the outbox only. The run is recorded in the Dagster instance, so the UI shows it.
"""

import os
import sys
from datetime import datetime

import dagster as dg

from cariflex_pipeline.definitions import MAIN_JOB_NAME, defs
from cariflex_pipeline.site_model import load_site
from cariflex_pipeline.store import default_database_url
from cariflex_pipeline.store.engine import describe_url, parse_database_url


def main() -> int:
    job = defs.resolve_job_def(MAIN_JOB_NAME)
    partition_key = None
    if job.partitions_def is not None:
        # Today's day in the site's time zone: the partition an operator expects a manual run to fill.
        partition_key = datetime.now(load_site().tz).strftime("%Y-%m-%d")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(instance=instance, partition_key=partition_key, raise_on_error=False)
    print(f"\nrun {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'}"
          + (f" (partition {partition_key})" if partition_key else ""))
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        figures = {
            key: value.value
            for key, value in materialization.metadata.items()
            if isinstance(value, dg.FloatMetadataValue | dg.IntMetadataValue)
        }
        shown = ", ".join(f"{key}={value:g}" for key, value in list(figures.items())[:6])
        print(f"  {materialization.asset_key.to_user_string():<28} {shown}")
    checks = result.get_asset_check_evaluations()
    if checks:
        print("\nchecks (a warning is not a failure of the run, but says what it worked without):")
    for check in checks:
        verdict = "passed" if check.passed else f"{check.severity.value.lower()}"
        print(f"  {check.asset_key.to_user_string() + ':' + check.check_name:<50} {verdict:<8} "
              f"{check.description or ''}")
    print(f"\ntime-series store: {describe_url(parse_database_url(default_database_url()))}")
    print(f"Dagster home (runs, logs): {os.environ.get('DAGSTER_HOME', '(ephemeral)')}")
    print("open the UI: ./scripts/ui, then http://127.0.0.1:3000")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
