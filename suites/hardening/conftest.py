from __future__ import annotations

import pytest

from suites.conftest import scenario_beside

SCENARIO = scenario_beside(__file__)


@pytest.fixture(scope="package")
def hardening_mesh(mesh):
    """The hardening scenario, deployed once for the whole hardening suite."""
    return mesh.deploy(SCENARIO)


@pytest.fixture
def scenario():
    return SCENARIO
