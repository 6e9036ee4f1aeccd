"""A job of per-site steps for test_celery_workers.py, loaded by the celery workers as well as by the test.

A fleet's runs of the code location are one site each (site x day partitions, docs/fleet.md); what the celery
executor spreads over workers is a run's steps, so here one run holds one step per site. Each does a site's real
work, the project's planner on the bundled sample problem (parse, resolve against the site file, solve, verify),
and records which process ran it. Before planning, each waits until every site's step has started:
with one step per worker at a time, the run can only get through when the steps run on different workers at once.
"""

import os
import time
from pathlib import Path

import dagster as dg

from cariflex_pipeline.defs.executor import job_executor
from cariflex_pipeline.scheduling.model import solve
from cariflex_pipeline.scheduling.problem import parse_problem
from cariflex_pipeline.scheduling.resolve import resolve
from cariflex_pipeline.scheduling.verify import verify
from cariflex_pipeline.site_model import load_site

SITES = ("pointe_simon", "place_d_armes")
SAMPLE_PROBLEM = Path(__file__).parents[2] / "cariflex_pipeline" / "scheduling" / "data" / "sample_problem.json"
JOB_NAME = "plan_sites"


class SiteStepConfig(dg.Config):
    barrier_dir: str  # shared by the workers (one file system): each site step leaves a file when it starts
    barrier_timeout_s: float = 30.0


def _wait_for_every_site(site_id: str, config: SiteStepConfig) -> None:
    folder = Path(config.barrier_dir)
    (folder / site_id).write_text(str(os.getpid()))
    deadline = time.monotonic() + config.barrier_timeout_s
    while missing := [site for site in SITES if not (folder / site).exists()]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"site {site_id}: the steps of {missing} did not start within "
                               f"{config.barrier_timeout_s} s while this one ran (not on a second worker)")
        time.sleep(0.1)


def _site_op(site_id: str) -> dg.OpDefinition:
    @dg.op(name=f"plan_{site_id}")
    def plan_site(context: dg.OpExecutionContext, config: SiteStepConfig) -> dg.Output[float]:
        _wait_for_every_site(site_id, config)
        resolved = resolve(parse_problem(SAMPLE_PROBLEM.read_text(encoding="utf-8")), load_site())
        result = solve(resolved)
        violations = verify(resolved, result)
        if violations:
            raise RuntimeError(f"site {site_id}: the plan fails the verifier: {[str(v) for v in violations]}")
        cost = result.cost_eur(resolved)
        context.log.info(f"site {site_id} planned in process {os.getpid()}: {cost:.2f} EUR")
        return dg.Output(cost, metadata={"site": site_id, "pid": os.getpid(), "cost_eur": cost})

    return plan_site


def site_job() -> dg.JobDefinition:
    """The per-site job on the executor CARIFLEX_EXECUTOR selects, as every job of the code location."""

    @dg.job(name=JOB_NAME, executor_def=job_executor())
    def plan_sites() -> None:
        for site_id in SITES:
            _site_op(site_id)()

    return plan_sites
