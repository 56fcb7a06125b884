"""The small interface a mesh runtime implements: local processes today (the reference mesh's
``LocalMesh``, the third-party ``ThirdPartyMesh``), containers next (a Docker runtime is a sibling of
these, not a third copy).

A runtime runs one scenario's workloads for one run (``run_id`` tags everything it starts, so
:func:`meshruntime.sweep.sweep` can remove what a dead run left), reports where everything is
(``state``: the state-file mapping of docs/architecture.md), takes a new scenario in place when it can
(``can_apply``/``apply``, seconds until in effect), and controls its components by name
(ProcessControl: subclass :class:`meshruntime.control.ProcessControlled`).
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable

from meshscenario import Scenario


@runtime_checkable
class MeshRuntime(Protocol):
    run_id: str
    scenario: Scenario

    def start(self, timeout: float = ...) -> Any:
        """Start every component and return once all are ready and the scenario is in effect."""

    def stop(self) -> None:
        """Stop everything this runtime started (idempotent)."""

    def can_apply(self, scenario: Scenario) -> bool:
        """Whether ``apply(scenario)`` can take it in place (else stop and start a new runtime)."""

    def apply(self, scenario: Scenario) -> float:
        """Put ``scenario`` in effect; seconds until every proxy serves it."""

    @property
    def state(self) -> Mapping[str, Any]:
        """Addresses, pids and identities of every workload (docs/architecture.md, "State file")."""

    def kill(self, component: str) -> None: ...

    def pause(self, component: str) -> None: ...

    def resume(self, component: str) -> None: ...

    def restart(self, component: str) -> float: ...
