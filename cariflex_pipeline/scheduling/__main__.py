"""`python -m cariflex_pipeline.scheduling PROBLEM.json`: solve a JSON problem and print the schedule as JSON.

Exit codes: 0 schedule printed (verified), 2 bad problem, 3 solver failure or time limit, 4 verifier violations.
`--schema` prints the problem's JSON schema instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cariflex_pipeline.scheduling.model import solve
from cariflex_pipeline.scheduling.problem import ProblemError, SchedulingProblem, parse_problem
from cariflex_pipeline.scheduling.resolve import resolve
from cariflex_pipeline.scheduling.result import SolverError
from cariflex_pipeline.scheduling.verify import verify
from cariflex_pipeline.site_model import SiteModelError, load_site


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cariflex_pipeline.scheduling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("problem", nargs="?", help="problem JSON file ('-' for stdin)")
    parser.add_argument("--site", help="site file (default: CARIFLEX_SITE_FILE or the bundled site)")
    parser.add_argument("--solver", choices=["auto", "highs", "highs_pulp", "cbc"], default="auto")
    parser.add_argument("--time-limit", type=float, default=60.0, help="solver time limit in seconds")
    parser.add_argument("--schema", action="store_true", help="print the problem JSON schema and exit")
    args = parser.parse_args(argv)
    if args.schema:
        print(json.dumps(SchedulingProblem.model_json_schema(), indent=2))
        return 0
    if not args.problem:
        parser.error("a problem file is required")
    try:
        text = sys.stdin.read() if args.problem == "-" else Path(args.problem).read_text(encoding="utf-8")
        site = load_site(args.site)
        resolved = resolve(parse_problem(text), site)
    except (OSError, SiteModelError, ProblemError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _silence_highs_banner()
    try:
        result = solve(resolved, solver=args.solver, time_limit_s=args.time_limit)
    except SolverError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    violations = verify(resolved, result)
    output = result.to_dict()
    output["violations"] = [str(v) for v in violations]
    print(json.dumps(output, indent=2))
    return 4 if violations else 0


def _silence_highs_banner() -> None:
    """HiGHS prints a banner on stdout when the first Highs object is made; send it to stderr instead."""
    try:
        import highspy
    except ImportError:
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


if __name__ == "__main__":
    sys.exit(main())
