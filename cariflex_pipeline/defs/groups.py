"""Asset group names that more than one stage refers to (the derived series are kept out of the latency-critical
jobs by their group)."""

DERIVED_GROUP = "derived"
