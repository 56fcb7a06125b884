"""Shared by every suite: unique request keys, and the scenario deployed for a suite."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from meshscenario import Scenario, load_scenario


@pytest.fixture
def key() -> str:
    """A request key no other request of the run uses, so journal look-ups see only this test."""
    return uuid.uuid4().hex


def scenario_beside(conftest_file: str, name: str = "scenario.yaml") -> Scenario:
    return load_scenario(Path(conftest_file).with_name(name))


def require(mesh, capability: type, why: str):
    """The adapter as ``capability``, or NOT_SUPPORTED when the adapter does not offer it."""
    from harness.outcome import NotSupported

    if not isinstance(mesh, capability):
        raise NotSupported(f"the {mesh.name} adapter does not offer {capability.__name__}, needed to {why}")
    return mesh
