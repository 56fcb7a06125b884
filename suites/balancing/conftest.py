from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from suites.conftest import scenario_beside

from ._support import THREADS

SCENARIO = scenario_beside(__file__)


@pytest.fixture(scope="package")
def balancing_mesh(mesh):
    """The balancing scenario, deployed once for the whole balancing suite."""
    return mesh.deploy(SCENARIO)


@pytest.fixture
def scenario():
    return SCENARIO


@pytest.fixture(scope="package")
def sender():
    """The thread pool the checks send concurrent requests through (``THREADS`` at a time)."""
    with ThreadPoolExecutor(THREADS, thread_name_prefix="balancing") as pool:
        yield pool
