"""What the HAProxy and nginx adapters share: the MeshAdapter Protocol over a :class:`ThirdPartyMesh`,
plus MeshCertificates (the adapter holds the run's CA) and HopInterposer (re-render with the proxy's
address for one workload, reload, wait until in effect).

A subclass gives its ``name``, its :class:`ProxyFlavor`, its :class:`Implementation`, and its honest
:class:`~harness.adapters.kit.FeatureClaims` ``FEATURES``: the features it claims, and a one-line reason
for those it does not; a feature it does not list is not supported.
Options (``--mesh-option KEY=VALUE``): ``binary=/path/to/proxy`` tests a user's own build (default:
the proxy found on PATH); ``keep_state=1`` leaves the rendered configs and logs in the state dir.
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from harness.adapters.base import HttpRequest, HttpResponse, Implementation
from harness.adapters.kit import (START_TIMEOUT_S, FeatureClaims, InterposedHop, KeepAliveClient, StateDeployment,
                                  Withdrawal, workload_certificate)
from harness.adapters.thirdparty.runtime import ProxyFlavor, ThirdPartyMesh, find_binary
from harness.features import Feature
from meshscenario import Scenario




class ThirdPartyAdapter:
    """MeshAdapter + MeshCertificates + HopInterposer + EndpointMembership + ProcessControl for a proxy run as every
    workload's sidecar (ProcessControl: "<workload>" is its proxy, "<workload>/echo" its app)."""

    name: ClassVar[str]
    binary_name: ClassVar[str]
    FEATURES: ClassVar[FeatureClaims]

    def __init__(self, options: Mapping[str, str] | None = None):
        options = dict(options or {})
        self._binary_option = options.pop("binary", None)
        if options:
            raise ValueError(f"unknown {self.name} mesh options: {', '.join(sorted(options))} (known: binary)")
        self._mesh: ThirdPartyMesh | None = None
        self._pool = KeepAliveClient()
        self._lock = threading.RLock()
        self.bundle_path = ""  # MeshCertificates; a plain attribute so isinstance() works unstarted

    # -- subclass hooks ------------------------------------------------------------------------------
    def flavor(self) -> ProxyFlavor:
        raise NotImplementedError

    def proxy_version(self, binary: str) -> str:
        raise NotImplementedError

    # -- MeshAdapter ---------------------------------------------------------------------------------
    def implementation(self) -> Implementation:
        raise NotImplementedError

    def supported_features(self) -> frozenset[Feature]:
        return self.FEATURES.supported

    def unsupported_reason(self, feature: Feature) -> str:
        return self.FEATURES.reason(feature)

    def binary(self) -> str:
        return find_binary(self.binary_name, self._binary_option)

    def setup(self) -> None:
        self.binary()  # fail early, naming the missing proxy

    def deploy(self, scenario: Scenario) -> StateDeployment:
        with self._lock:
            if self._mesh is not None and self._mesh.can_apply(scenario):
                self._mesh.apply(scenario)
            else:
                self.close()
                mesh = ThirdPartyMesh(self.flavor(), self.binary(), scenario, run_id=f"mc-{uuid.uuid4().hex[:12]}",
                                      on_reload=self._pool.close)
                mesh.start(timeout=START_TIMEOUT_S)
                self._mesh = mesh
            self.bundle_path = str(self._mesh.identities.bundle_path)
            return StateDeployment(self._mesh.state)

    def apply(self, scenario: Scenario) -> float:
        return self._running().apply(scenario)

    def send(self, from_workload: str, request: HttpRequest) -> HttpResponse:
        return self._pool.send(self._workload(from_workload)["outbound"], request)

    def close(self) -> None:
        with self._lock:
            self._pool.close()
            if self._mesh is not None:
                self._mesh.stop()
            self._mesh = None
            self.bundle_path = ""

    # -- MeshCertificates ----------------------------------------------------------------------------
    def issue_certificate(self, spiffe_id: str, *, not_before, not_after) -> tuple[bytes, bytes]:
        """Anything the run's CA could sign, foreign trust domains included (negative tests need it)."""
        from fixtures.certs import make_svid

        authority = self._running().identities.authority
        return make_svid(authority.cert, authority.key, spiffe_id, not_before=not_before, not_after=not_after)

    def workload_certificate(self, workload: str) -> bytes:
        """The leaf ``workload``'s inbound presents in a handshake with a harness SVID."""
        return workload_certificate(self._workload(workload)["inbound"], bundle_path=self.bundle_path,
                                    trust_domain=self._running().scenario.trust_domain, issue=self.issue_certificate)

    # -- HopInterposer ---------------------------------------------------------------------------------
    def interpose(self, dest_workload: str, proxy_factory: Callable[[str], Any]) -> InterposedHop:
        real = self._workload(dest_workload)["inbound"]
        proxy = proxy_factory(real)
        self._running().override(dest_workload, proxy.address)
        return InterposedHop(dest_workload, proxy, restore=lambda: self._restore_hop(dest_workload))

    def _restore_hop(self, workload: str) -> None:
        if self._mesh is not None and self._mesh.running:
            self._mesh.override(workload, None)

    # -- EndpointMembership: the server leaves every rendered config (a reload), its echo keeps running ---
    def withdraw_endpoint(self, workload: str) -> Withdrawal:
        self._workload(workload)
        mesh = self._running()
        seconds = mesh.withdraw(workload)

        def readmit() -> None:
            if self._mesh is mesh and mesh.running:
                mesh.withdraw(workload, out=False)

        return Withdrawal(workload, readmit, seconds)

    # -- MeshDataPlane: one proxy process (with its workers) per workload carries both directions -------
    proxy_hops = 2  # the caller's proxy (outbound) and the destination's (inbound)

    def outbound_address(self, workload: str) -> str:
        return self._workload(workload)["outbound"]

    def proxy_pids(self, workload: str) -> tuple[int, ...]:
        pid = self._workload(workload)["pids"]["sidecar"]
        return (pid,) if pid else ()

    # -- MeshAccessLogs: JSON lines the rendered config writes (thirdparty/access_log.py) ----------------
    def access_log_path(self, mesh: ThirdPartyMesh, workload: str) -> Path:
        """Where ``workload``'s proxy writes its access log (a subclass says)."""
        raise NotImplementedError

    def access_log(self, workload: str) -> tuple[list[Any], list[str]]:
        from harness.adapters.thirdparty.access_log import parse_lines

        self._workload(workload)
        mesh = self._running()
        w = next(x for x in mesh.scenario.workloads() if x.name == workload)
        route_retries = {r.id: r.retries for d in mesh.view(w).destinations for r in d.routes}
        try:
            text = self.access_log_path(mesh, workload).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return [], []
        complete = text[:text.rfind("\n") + 1]  # a line still being written is read next time
        return parse_lines(complete.splitlines(), workload, route_retries)

    # -- ProcessControl: the runtime's (meshruntime.control), shared with the reference mesh -------------
    def kill(self, component: str) -> None:
        self._running().kill(component)

    def pause(self, component: str) -> None:
        self._running().pause(component)

    def resume(self, component: str) -> None:
        self._running().resume(component)

    def restart(self, component: str) -> None:
        self._running().restart(component)

    def _running(self) -> ThirdPartyMesh:
        if self._mesh is None or not self._mesh.running:
            raise RuntimeError(f"no {self.name} mesh is running: deploy() a scenario first")
        return self._mesh

    def _workload(self, workload: str) -> Mapping[str, Any]:
        workloads = self._running().state["workloads"]
        if workload not in workloads:
            raise KeyError(f"no workload {workload!r}; have {', '.join(workloads)}")
        return workloads[workload]




def command_output(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    return (result.stdout + result.stderr).strip()
