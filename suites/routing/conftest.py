from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from suites.conftest import scenario_beside

from ._support import THREADS

SCENARIO = scenario_beside(__file__)


@pytest.fixture(scope="package")
def routing_mesh(mesh):
    """The routing scenario, deployed once for the whole routing suite."""
    return mesh.deploy(SCENARIO)


@pytest.fixture
def scenario():
    return SCENARIO


@pytest.fixture
def deployment(routing_mesh):
    """The deployment under test, for harness fixtures that need it (``background_load``)."""
    return routing_mesh


@pytest.fixture(scope="package")
def sender():
    """The thread pool the checks send concurrent requests through (``THREADS`` at a time)."""
    with ThreadPoolExecutor(THREADS, thread_name_prefix="routing") as pool:
        yield pool
