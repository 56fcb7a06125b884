from __future__ import annotations

import pytest

from suites.conftest import scenario_beside

SCENARIO = scenario_beside(__file__)


@pytest.fixture(scope="package")
def security_mesh(mesh):
    """The security scenario, deployed once for the whole security suite."""
    deployment = mesh.deploy(SCENARIO)
    return deployment


@pytest.fixture
def scenario():
    return SCENARIO
