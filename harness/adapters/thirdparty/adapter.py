"""What the HAProxy and nginx adapters share: the MeshAdapter Protocol over a :class:`ThirdPartyMesh`,
plus MeshCertificates (the adapter holds the run's CA) and HopInterposer (re-render with the proxy's
address for one workload, reload, wait until in effect).

A subclass gives its ``name``, its :class:`ProxyFlavor`, its :class:`Implementation`, and its honest
feature table ``UNSUPPORTED`` (feature -> one-line reason); every feature not in the table is claimed.
Options (``--mesh-option KEY=VALUE``): ``binary=/path/to/proxy`` tests a user's own build (default:
the proxy found on PATH); ``keep_state=1`` leaves the rendered configs and logs in the state dir.
"""

from __future__ import annotations

import datetime as dt
import ssl
import socket
import subprocess
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from meshscenario import Scenario
from harness.adapters.base import HttpRequest, HttpResponse, Implementation, WorkloadInfo
from harness.adapters.reference import _ConnectionPool  # the same client every adapter's send() uses
from harness.adapters.thirdparty.runtime import ProxyFlavor, ThirdPartyMesh, find_binary
from harness.features import Feature

START_TIMEOUT_S = 60.0
HARNESS_SPIFFE_PATH = "/ns/meshconform-system/sa/harness"


class ThirdPartyDeployment:
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


class ThirdPartyAdapter:
    """MeshAdapter + MeshCertificates + HopInterposer for a proxy run as every workload's sidecar."""

    name: ClassVar[str]
    binary_name: ClassVar[str]
    UNSUPPORTED: ClassVar[dict[Feature, str]]

    def __init__(self, options: Mapping[str, str] | None = None):
        options = dict(options or {})
        self._binary_option = options.pop("binary", None)
        if options:
            raise ValueError(f"unknown {self.name} mesh options: {', '.join(sorted(options))} (known: binary)")
        self._mesh: ThirdPartyMesh | None = None
        self._pool = _ConnectionPool()
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
        return frozenset(Feature) - frozenset(self.UNSUPPORTED)

    def unsupported_reason(self, feature: Feature) -> str:
        return self.UNSUPPORTED.get(feature, f"{feature.value} is supported")

    def binary(self) -> str:
        return find_binary(self.binary_name, self._binary_option)

    def setup(self) -> None:
        self.binary()  # fail early, naming the missing proxy

    def deploy(self, scenario: Scenario) -> ThirdPartyDeployment:
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
            return ThirdPartyDeployment(self._mesh.state)

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
        from meshproxy import ca as ca_module

        mesh = self._running()
        now = dt.datetime.now(dt.timezone.utc)
        cert_pem, key_pem = self.issue_certificate(f"spiffe://{mesh.scenario.trust_domain}{HARNESS_SPIFFE_PATH}",
                                                   not_before=now - dt.timedelta(minutes=1),
                                                   not_after=now + dt.timedelta(minutes=10))
        context = ssl.create_default_context(cafile=self.bundle_path)
        context.check_hostname = False  # SVIDs name a SPIFFE ID, not a host
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "c.pem").write_bytes(cert_pem + key_pem)
            context.load_cert_chain(Path(tmp) / "c.pem")
        host, _, port = self._workload(workload)["inbound"].rpartition(":")
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            with context.wrap_socket(raw) as tls:
                der = tls.getpeercert(binary_form=True)
        return ca_module.cert_pem(ca_module.load_cert(der))

    # -- HopInterposer ---------------------------------------------------------------------------------
    def interpose(self, dest_workload: str, proxy_factory: Callable[[str], Any]) -> "InterposedHop":
        real = self._workload(dest_workload)["inbound"]
        proxy = proxy_factory(real)
        self._running().override(dest_workload, proxy.address)
        return InterposedHop(self, dest_workload, proxy)

    # -- helpers --------------------------------------------------------------------------------------
    def _running(self) -> ThirdPartyMesh:
        if self._mesh is None or not self._mesh.running:
            raise RuntimeError(f"no {self.name} mesh is running: deploy() a scenario first")
        return self._mesh

    def _workload(self, workload: str) -> Mapping[str, Any]:
        workloads = self._running().state["workloads"]
        if workload not in workloads:
            raise KeyError(f"no workload {workload!r}; have {', '.join(workloads)}")
        return workloads[workload]


@dataclass
class InterposedHop:
    """The lease of a proxy on a hop: heal() points callers back at the real inbound (idempotent)."""

    adapter: ThirdPartyAdapter
    workload: str
    proxy: Any
    healed: bool = field(default=False)

    def heal(self) -> None:
        if not self.healed:
            self.healed = True
            if self.adapter._mesh is not None and self.adapter._mesh.running:
                self.adapter._mesh.override(self.workload, None)


def command_output(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    return (result.stdout + result.stderr).strip()
