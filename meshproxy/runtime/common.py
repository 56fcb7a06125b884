"""What every runtime of the reference mesh does the same way: the control-plane side of a running mesh.

:class:`ControlPlaneMesh` is the half of ``LocalMesh`` (processes) and ``DockerMesh`` (containers) that
talks to the control plane through the admin :class:`~meshproxy.cpclient.ControlPlaneClient`: apply a
scenario (queued while the control plane is down), wait until every workload acked it, the state file,
the context manager. A runtime gives it ``state_dir``, ``scenario``, ``state``, ``_client`` (None until
started), ``_started``, ``start()``, ``stop()`` and ``_wait_in_effect(deadline)``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from meshruntime.processes import wait_until
from meshscenario import Scenario


class ControlPlaneMesh:
    state_dir: Path
    scenario: Scenario
    state: dict[str, Any]
    _client: Any
    _started: bool

    def start(self) -> Any:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _wait_in_effect(self, deadline: float) -> None:
        raise NotImplementedError

    @property
    def bundle_path(self) -> Path:
        return self.state_dir / "bundle.pem"

    def _work_dir(self, workload: str) -> Path:
        return self.state_dir / "workloads" / workload

    def apply(self, scenario: Scenario, timeout: float = 30.0) -> float:
        """Put ``scenario`` and wait until every workload acked it; returns the seconds that took.

        Only the policies and routes may change: a different set of workloads or trust domain needs a
        new mesh (see :meth:`can_apply`).

        While the control plane is down (killed, not started again yet) the change is queued here: this
        call waits until the control plane answers again (its restart), then stores the change and waits
        for it to be in effect, all within ``timeout`` (as ``kubectl apply`` while istiod is down: the
        change is kept and reaches the proxies once istiod is back).
        """
        if not self.can_apply(scenario):
            raise ValueError("apply() cannot change the workloads or the trust domain; start a new mesh")
        began = time.monotonic()
        self._put_scenario(scenario, began + timeout)
        self.scenario = scenario
        self._wait_in_effect(began + timeout)
        return time.monotonic() - began

    def _put_scenario(self, scenario: Scenario, deadline: float) -> None:
        """Store ``scenario`` in the control plane; while it is unreachable, wait for it (bounded)."""
        from meshproxy.cpclient import ControlPlaneUnavailable

        while True:  # bounded: each round either stores, raises, or waits for the control plane by deadline
            try:
                self._client.put_scenario(scenario)
                return
            except ControlPlaneUnavailable:
                if time.monotonic() >= deadline:
                    raise
            wait_until(self._client_healthy, timeout=max(0.0, deadline - time.monotonic()), interval=0.1,
                       what="the control plane to answer again (a change applied while it is down waits for it)")

    def wait_in_effect(self, timeout: float = 30.0) -> float:
        """Wait until every workload acked the current generation (e.g. after an endpoint override)."""
        began = time.monotonic()
        self._wait_in_effect(began + timeout)
        return time.monotonic() - began

    def can_apply(self, scenario: Scenario) -> bool:
        """True when ``scenario`` runs on this mesh (same workloads and trust domain)."""
        return (scenario.trust_domain == self.scenario.trust_domain
                and [w.model_dump() for w in scenario.workloads()]
                == [w.model_dump() for w in self.scenario.workloads()])

    @property
    def running(self) -> bool:
        return self._started

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def write_state(self, path: str | Path) -> Path:
        """Write the state as JSON, mode 0600 (it holds the admin token), atomically."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(self.state, out, indent=2)
        os.replace(tmp, path)
        return path

    @property
    def client(self):
        """The admin ControlPlaneClient of this mesh."""
        if self._client is None:
            raise RuntimeError("the mesh is not started")
        return self._client

    def _client_healthy(self) -> bool:
        try:
            return bool(self._client.healthz())
        except Exception:  # not listening yet
            return False
