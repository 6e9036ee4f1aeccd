"""The provenance label of a day's values: sample, partly sample, or the real sources."""

from cariflex_pipeline.defs.provenance import provenance_label

SAMPLE_PRICE = "openadr:CARIFLEX_SAMPLE_VTN/sample-price-20261128"


def test_all_sample_values_are_labelled_sample() -> None:
    assert provenance_label([SAMPLE_PRICE, "sample-weather-model"]) == "SAMPLE: bundled sample data, not the site's"


def test_a_mix_counts_the_sample_values_and_names_the_rest() -> None:
    assert provenance_label([SAMPLE_PRICE, SAMPLE_PRICE, "openadr:VTN/e1", "openadr:VTN/e1"]) == (
        "partly SAMPLE: 2 of 4 values are bundled sample data; the rest from openadr:VTN/e1")


def test_real_sources_are_named_the_first_three_and_a_count() -> None:
    sources = [f"openadr:VTN/e{n}" for n in range(5)]
    assert provenance_label(sources) == "from openadr:VTN/e0, openadr:VTN/e1, openadr:VTN/e2 and 2 more"
    # a VTN whose own name merely starts like the sample's is not the sample
    assert provenance_label(["openadr:CARIFLEX_SAMPLE_VTN2/x"]) == "from openadr:CARIFLEX_SAMPLE_VTN2/x"


def test_no_values() -> None:
    assert provenance_label([]) == "no values"
