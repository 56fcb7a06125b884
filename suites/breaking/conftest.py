from __future__ import annotations

import pytest

from suites.conftest import scenario_beside

SCENARIO = scenario_beside(__file__)


@pytest.fixture(scope="package")
def breaking_mesh(mesh):
    """The breaking scenario, deployed once for the whole suite."""
    return mesh.deploy(SCENARIO)


@pytest.fixture
def scenario():
    return SCENARIO
