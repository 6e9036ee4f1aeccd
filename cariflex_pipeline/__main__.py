"""`python -m cariflex_pipeline`: run the main job (the whole graph) once and say where to look.

With no environment configured this is fully offline: SQLite store under $DAGSTER_HOME, the bundled sample
event feed, dispatch into the outbox only. The run is recorded in the Dagster instance, so the UI shows it.

A fleet ($CARIFLEX_PORTFOLIO_FILE with several sites): the portfolio's sites are added to the dynamic partition
`sites` on the instance (what portfolio_sites_sensor does under the daemon), then the job runs once per site for
that site's today, one after the other; a failing site does not stop the next, and the exit code is 1 if any failed.
"""

import os
import sys
from datetime import UTC, datetime

import dagster as dg

from cariflex_pipeline.definitions import MAIN_JOB_NAME, defs
from cariflex_pipeline.defs.partitions import IS_FLEET, SITES_PARTITIONS_NAME, partition_key_for
from cariflex_pipeline.defs.site.sensors import missing_site_ids
from cariflex_pipeline.defs.sites import SITE_TAG, site_today
from cariflex_pipeline.site_model import load_portfolio, load_site
from cariflex_pipeline.store import default_database_url
from cariflex_pipeline.store.engine import describe_url, parse_database_url


def main() -> int:
    job = defs.resolve_job_def(MAIN_JOB_NAME)
    with dg.DagsterInstance.get() as instance:
        if IS_FLEET:
            succeeded = _run_fleet(job, instance)
        else:
            partition_key = None
            if job.partitions_def is not None:
                # Today's day in the site's time zone: the partition an operator expects a manual run to fill.
                partition_key = datetime.now(load_site().tz).strftime("%Y-%m-%d")
            succeeded = _run(job, instance, partition_key)
    print(f"\ntime-series store: {describe_url(parse_database_url(default_database_url()))}")
    print(f"Dagster home (runs, logs): {os.environ.get('DAGSTER_HOME', '(ephemeral)')}")
    print("open the UI: ./scripts/ui, then http://127.0.0.1:3000")
    return 0 if succeeded else 1


def _run_fleet(job: dg.JobDefinition, instance: dg.DagsterInstance) -> bool:
    """The job once per site for its today; True when every site's run succeeded."""
    portfolio = load_portfolio()
    missing = missing_site_ids(portfolio, instance.get_dynamic_partitions(SITES_PARTITIONS_NAME))
    if missing:
        instance.add_dynamic_partitions(SITES_PARTITIONS_NAME, missing)
    now = datetime.now(UTC)
    failed = []
    for site_id in portfolio.site_ids:
        print(f"\n== site {site_id} ({portfolio.site(site_id).name})")
        partition_key = partition_key_for(site_id, site_today(portfolio.site(site_id), now))
        try:
            succeeded = _run(job, instance, partition_key, tags={SITE_TAG: site_id})
        except Exception as error:  # a run that cannot even start (not a step failure): the next site still runs
            print(f"site {site_id}: the run did not start: {type(error).__name__}: {error}")
            succeeded = False
        if not succeeded:
            failed.append(site_id)
    print(f"\nsites: {len(portfolio.site_ids) - len(failed)} of {len(portfolio.site_ids)} succeeded"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return not failed


def _run(job: dg.JobDefinition, instance: dg.DagsterInstance, partition_key: str | None,
         tags: dict[str, str] | None = None) -> bool:
    """One run of the job, its figures and checks printed; True when it succeeded."""
    result = job.execute_in_process(instance=instance, partition_key=partition_key, tags=tags,
                                    raise_on_error=False)
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
    return result.success


if __name__ == "__main__":
    sys.exit(main())
