"""The observability scenario, deployed once for the suite, with its traces sent to the harness's own
Zipkin collector (one per session, on loopback, stopped at session end)."""

from __future__ import annotations

import pytest

from meshscenario import Scenario
from suites.conftest import scenario_beside

SCENARIO = scenario_beside(__file__)


@pytest.fixture(scope="session")
def zipkin():
    """The session's Zipkin v2 collector (harness/observability/zipkin_served.py)."""
    from harness.observability.zipkin_served import ZipkinCollector

    collector = ZipkinCollector.start("127.0.0.1:0")
    try:
        yield collector
    finally:
        collector.stop()


def traced_scenario(address: str) -> Scenario:
    """SCENARIO with ``telemetry.tracing.zipkin`` pointing at the collector, validated like any scenario."""
    data = SCENARIO.model_dump(mode="json", by_alias=True)
    data["telemetry"] = {**data["telemetry"], "tracing": {"zipkin": address, "sampling": 100.0}}
    return Scenario.model_validate(data)


@pytest.fixture(scope="package")
def observability_mesh(mesh, zipkin):
    """The observability scenario, deployed once for the whole suite."""
    return mesh.deploy(traced_scenario(zipkin.address))
