"""The schedule's honesty checks: what it planned on in place of real inputs, and how current its signals are.

Both warn: the plan is made and dispatched, and the UI shows it amber with the reasons. With the policy `block`
(ScheduleConfig.on_defaulted_inputs, default from $CARIFLEX_ON_DEFAULTED_INPUTS) such a run fails before it plans,
naming the problems: no plan is written or dispatched (and the re-plan sensor has nothing to follow), so the
stations keep what they hold until a plan on real inputs comes. (The checks themselves are not blocking: a
warning must not keep a plan made under `warn` from reaching the stations.)
"""

import os
from typing import Literal

import dagster as dg

INPUTS_CHECK = "schedule_inputs_known"
FRESHNESS_CHECK = "signals_current"
POLICY_ENV = "CARIFLEX_ON_DEFAULTED_INPUTS"
Policy = Literal["warn", "block"]


def default_policy() -> Policy:
    value = os.environ.get(POLICY_ENV, "warn")
    if value not in ("warn", "block"):
        raise ValueError(f"{POLICY_ENV}={value!r}: expected 'warn' or 'block'")
    return value  # type: ignore[return-value]


def honesty_check_specs(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(INPUTS_CHECK, asset=asset,
                          description="Every input was known: prices, load control, demand response and live "
                                      "sessions with their needs (a warning names what was defaulted)."),
        dg.AssetCheckSpec(FRESHNESS_CHECK, asset=asset,
                          description="Signals are current: prices known for the next hours, load control for the "
                                      "slot in progress, a PV forecast when PV is counted on."),
    ]


def refuse_under_block(gaps: list[str], staleness: list[str], policy: Policy) -> None:
    """With the policy `block`, fail the run before anything is planned, naming every problem."""
    problems = gaps + staleness
    if policy == "block" and problems:
        raise dg.Failure(description=f"not planned ({POLICY_ENV}=block): " + "; ".join(problems),
                         metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems))})


def honesty_checks(gaps: list[str], staleness: list[str], policy: Policy) -> list[dg.AssetCheckResult]:
    def result(name: str, problems: list[str], fine: str) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name=name, passed=not problems, severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(problems) if problems else fine,
            metadata={"problems": len(problems), "policy": policy,
                      "details": dg.MetadataValue.md("\n".join(f"- {problem}" for problem in problems) or "none")})

    return [result(INPUTS_CHECK, gaps, "every input was known"),
            result(FRESHNESS_CHECK, staleness, "signals current")]
