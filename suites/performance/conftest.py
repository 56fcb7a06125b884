from __future__ import annotations

import pytest

from harness.settings import read_performance
from suites.conftest import scenario_beside

SCENARIO = scenario_beside(__file__)


@pytest.fixture(scope="package")
def perf_mesh(mesh):
    """The performance scenario, deployed once for the whole suite."""
    return mesh.deploy(SCENARIO)


@pytest.fixture(scope="session")
def budgets(pytestconfig):
    """--latency-budget, --latency-rates, ... (harness/settings.py PERFORMANCE_OPTIONS)."""
    return read_performance(pytestconfig)


@pytest.fixture
def scenario():
    return SCENARIO
