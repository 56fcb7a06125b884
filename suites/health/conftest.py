from __future__ import annotations

import pytest

from suites.conftest import scenario_beside

SCENARIO = scenario_beside(__file__)


@pytest.fixture(scope="package")
def health_mesh(mesh):
    """The health scenario, deployed once for the whole health suite."""
    return mesh.deploy(SCENARIO)


@pytest.fixture
def scenario():
    return SCENARIO
