"""Where a day's values came from, said in the metadata they feed: bundled sample data is labelled as such.

A backfilled past day on the embedded defaults holds the bundled sample feed's prices and the sample weather
model's PV; without a label its figures look like the site's own. The store keeps each value's data source, so
the label is read from the values themselves, not from today's configuration.
"""

from collections.abc import Iterable

from cariflex_pipeline.measurements import SAMPLE_SOURCE
from cariflex_pipeline.openadr.limits import source_name
from cariflex_pipeline.openadr.sample_feed import SAMPLE_VTN_ID

SAMPLE_PREFIXES = (source_name(SAMPLE_VTN_ID, ""), SAMPLE_SOURCE)
LABEL_KEY = "data"


def is_sample(source: str) -> bool:
    return source.startswith(SAMPLE_PREFIXES)


def provenance_label(sources: Iterable[str]) -> str:
    """'SAMPLE …' when every value is bundled sample data, 'partly SAMPLE …' when some are, else the real sources."""
    values = list(sources)
    if not values:
        return "no values"
    samples = sum(is_sample(source) for source in values)
    if samples == len(values):
        return "SAMPLE: bundled sample data, not the site's"
    real = sorted({source for source in values if not is_sample(source)})
    shown = ", ".join(real[:3]) + (f" and {len(real) - 3} more" if len(real) > 3 else "")
    if samples:
        return f"partly SAMPLE: {samples} of {len(values)} values are bundled sample data; the rest from {shown}"
    return f"from {shown}"
