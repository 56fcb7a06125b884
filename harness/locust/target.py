"""The mesh a load run sends to: started through the adapter registry, or one already running.

``start`` finds the adapter by name in the ``meshconform.adapters`` entry points (as the pytest plugin
does, harness/session.py), sets it up and deploys the scenario; ``attach`` uses a reference mesh that
``meshconform up --state FILE`` runs, reading the scenario in effect from its control plane. Either way
the run gets the scenario, where each workload's outbound listener (the adapter's
``outbound_address``) and echo control port are, and a ``close`` that stops only what it started.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

ENTRY_POINT_GROUP = "meshconform.adapters"  # the group harness/session.py reads


class TargetError(RuntimeError):
    """The mesh could not be started or reached; ``usage`` marks the user's mistake (exit 2)."""

    def __init__(self, message: str, *, usage: bool = False):
        super().__init__(message)
        self.usage = usage


@dataclass
class MeshUnderLoad:
    name: str
    version: str
    scenario: Any  # meshscenario.Scenario
    workloads: Mapping[str, Mapping[str, Any]]
    close: Callable[[], None]


def mesh_names() -> list[str]:
    return sorted(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))


def load_scenario_file(path: Path | None):
    from meshscenario import DEFAULT_SCENARIO_PATH, ScenarioError, load_scenario

    try:
        return load_scenario(path or DEFAULT_SCENARIO_PATH)
    except ScenarioError as exc:
        raise TargetError(f"--scenario: {' '.join(str(exc).split())}", usage=True) from None


def start(name: str, scenario) -> MeshUnderLoad:
    """Set up adapter ``name`` and deploy ``scenario`` (observed in effect before it returns)."""
    (ep,) = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    adapter = ep.load()(options={})
    try:
        adapter.setup()
        workloads = workload_states(adapter, adapter.deploy(scenario))
        version = adapter.implementation().version
    except BaseException:
        adapter.close()
        raise
    return MeshUnderLoad(name=name, version=version, scenario=scenario, workloads=workloads, close=adapter.close)


def workload_states(adapter: Any, deployment: Any) -> dict[str, dict[str, Any]]:
    """The state mapping of a deployment's workloads, by name, with each one's outbound listener from
    the adapter's ``MeshDataPlane`` capability (a TargetError when the adapter does not offer it)."""
    from harness.adapters.base import MeshDataPlane

    if not isinstance(adapter, MeshDataPlane):
        raise TargetError(f"the {adapter.name} adapter does not offer MeshDataPlane (outbound_address), "
                          "so Locust cannot be pointed at its workloads' outbound listeners")
    return {w.name: {"service": w.service, "namespace": w.namespace, "version": w.version,
                     "instance": w.instance, "echo_control": w.echo_control,
                     "outbound": adapter.outbound_address(w.name)}
            for w in deployment.workloads.values()}


def attach(state_path: Path) -> MeshUnderLoad:
    """The reference mesh ``meshconform up`` runs with this state file; ``close`` leaves it running."""
    from meshproxy.cpclient import ControlPlaneClient, ControlPlaneError
    from meshscenario import ScenarioError, parse_scenario

    try:
        state = json.loads(state_path.read_text())
        controlplane = state["controlplane"]
        workloads = state["workloads"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TargetError(f"--state: {state_path} is not a state file of `meshconform up` ({exc})",
                          usage=True) from None
    try:
        client = ControlPlaneClient(controlplane["url"], state["bundle"], admin_token=controlplane["admin_token"])
        scenario = parse_scenario(client.get_scenario()["scenario"], "the running mesh's scenario")
    except (ControlPlaneError, OSError, KeyError) as exc:
        raise TargetError(f"--state: the mesh of {state_path} does not answer at {controlplane['url']}: {exc}") from None
    except ScenarioError as exc:
        raise TargetError(str(exc)) from None
    return MeshUnderLoad(name="reference", version=_version(), scenario=scenario, workloads=workloads,
                         close=lambda: None)


def _version() -> str:
    try:
        return metadata.version("meshconform")
    except metadata.PackageNotFoundError:
        return "0+unknown"
