"""A ``Deployment`` backed by a state mapping of docs/architecture.md's "State file" shape."""

from __future__ import annotations

from typing import Any, Mapping

from harness.adapters.base import WorkloadInfo


class StateDeployment:
    """Where each workload of a deployed scenario lives, and its echo's control client."""

    def __init__(self, state: Mapping[str, Any]):
        self.state = state
        self.workloads: dict[str, WorkloadInfo] = {
            name: WorkloadInfo(name=name, service=w["service"], version=w["version"], instance=w["instance"],
                               spiffe_id=w["spiffe_id"], inbound=w["inbound"], app=w["app"],
                               echo_control=w["echo_control"], namespace=w["namespace"])
            for name, w in state["workloads"].items()}

    def echo(self, workload: str):
        from fixtures.echo.client import EchoControl

        return EchoControl(self.workloads[workload].echo_control)
