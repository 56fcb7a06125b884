from __future__ import annotations

import pytest

from suites.conftest import scenario_beside

SCENARIO = scenario_beside(__file__)


@pytest.fixture(scope="package")
def chaos_mesh(mesh):
    """The chaos scenario, deployed once for the whole chaos suite."""
    return mesh.deploy(SCENARIO)


@pytest.fixture
def scenario():
    return SCENARIO
