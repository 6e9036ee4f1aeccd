"""Run the code location's main job for sites of a fleet, in a process of its own, and print what each did as JSON.

The fleet shape of the code location (site x day partitions) is decided when it loads, from
$CARIFLEX_PORTFOLIO_FILE, so the fleet tests run this module with that variable set (test_fleet_graph.py):

    python -m cariflex_pipeline_tests.fleet.fleet_run SITE [SITE ...]

Each site's partition for today is added to the instance's dynamic `sites` partition first, as
`portfolio_sites_sensor` does, so a site appended to the file is runnable without reloading anything.
"""

import json
import sys
from datetime import datetime

import dagster as dg


def main(site_ids: list[str]) -> int:
    from cariflex_pipeline.definitions import MAIN_JOB_NAME, defs
    from cariflex_pipeline.defs.partitions import IS_FLEET, SITES_PARTITIONS_NAME, partition_key_for
    from cariflex_pipeline.defs.resources import SiteResource

    assert IS_FLEET, "CARIFLEX_PORTFOLIO_FILE must name a portfolio of several sites"
    portfolio = SiteResource().portfolio()  # read now: the file may have grown since the code location loaded
    job = defs.resolve_job_def(MAIN_JOB_NAME)
    report = {}
    with dg.DagsterInstance.get() as instance:
        known = set(instance.get_dynamic_partitions(SITES_PARTITIONS_NAME))
        instance.add_dynamic_partitions(SITES_PARTITIONS_NAME, [s for s in site_ids if s not in known])
        for site_id in site_ids:
            day = datetime.now(portfolio.site(site_id).tz).date().isoformat()
            result = job.execute_in_process(instance=instance, partition_key=partition_key_for(site_id, day),
                                            raise_on_error=False)
            report[site_id] = {
                "success": result.success,
                "partition": str(partition_key_for(site_id, day)),
                "failed_steps": sorted(event.step_key for event in result.all_events
                                       if event.event_type_value == "STEP_FAILURE"),
                "checks": {f"{check.asset_key.to_user_string()}:{check.check_name}": check.passed
                           for check in result.get_asset_check_evaluations()},
                "materialized": sorted({event.asset_key.to_user_string()
                                        for event in result.get_asset_materialization_events()}),
            }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
