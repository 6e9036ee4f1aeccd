"""Fixtures of the OpenADR tests: the real OpenLEADR VTN (2.0b) and a 3.0.1 test VTN, both on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cariflex_pipeline_tests.openadr.vtn20b import InProcessVtn
from cariflex_pipeline_tests.openadr.vtn301 import Vtn301Server


@pytest.fixture
def vtn() -> Iterator[InProcessVtn]:
    server = InProcessVtn()
    yield server
    server.stop()


@pytest.fixture
def vtn3() -> Iterator[Vtn301Server]:
    server = Vtn301Server()
    yield server
    server.stop()
