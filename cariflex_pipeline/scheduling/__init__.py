"""EV-charging schedules as a linear program (PuLP + HiGHS); no Dagster import.

    problem = parse_problem(json_text)                 # or SchedulingProblem(...)
    resolved = resolve(problem, load_site())           # validated against the site: ProblemError otherwise
    result = solve(resolved)                           # SolverError / SolverTimeLimitError: no schedule
    assert not verify(resolved, result)                # every violation, from the power series alone
"""

from cariflex_pipeline.scheduling.model import build_model, solve
from cariflex_pipeline.scheduling.problem import (
    BatterySpec,
    EvSession,
    ProblemError,
    SchedulingProblem,
    fill_missing_prices,
    parse_problem,
)
from cariflex_pipeline.scheduling.resolve import ResolvedProblem, resolve
from cariflex_pipeline.scheduling.result import (
    ScheduleResult,
    SessionOutcome,
    SolverError,
    SolverTimeLimitError,
)
from cariflex_pipeline.scheduling.verify import Violation, verify

__all__ = [
    "BatterySpec",
    "EvSession",
    "ProblemError",
    "ResolvedProblem",
    "ScheduleResult",
    "SchedulingProblem",
    "SessionOutcome",
    "SolverError",
    "SolverTimeLimitError",
    "Violation",
    "build_model",
    "fill_missing_prices",
    "parse_problem",
    "resolve",
    "solve",
    "verify",
]
