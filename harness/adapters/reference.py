"""The reference mesh (``meshproxy``) as local processes, behind the MeshAdapter Protocol.

Options (``--mesh-option KEY=VALUE``): ``defects=<json>`` runs a deliberately broken mesh (sensitivity
tests, see meshproxy/defects.py); ``keep_logs=1`` keeps every process log under
``reports/logs/<run id>/`` instead of deleting it with the run's temporary state directory.

A session deploys many scenarios: when only routes and policies change, :meth:`deploy` re-applies the
scenario to the running processes (about the time of one config push) instead of restarting them.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import json
import select
import socket
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from meshscenario import Scenario
from harness.adapters.base import HttpRequest, HttpResponse, Implementation, WorkloadInfo
from harness.features import Feature

# The one place that says what the reference mesh does today. Everything not listed is unsupported,
# with the reason given here.
UNSUPPORTED: dict[Feature, str] = {
    Feature.RESOURCE_USE: "the reference adapter does not measure sidecar CPU and memory yet",
    Feature.ACCESS_LOGS: "the reference sidecar writes no access log",
    Feature.SERVICE_GRAPH: "the reference mesh exports no service-graph telemetry",
    Feature.HEALTH_CHECK_ACTIVE: "the reference sidecar has no active health checks (passive: outlier detection)",
}
SUPPORTED: frozenset[Feature] = frozenset(Feature) - frozenset(UNSUPPORTED)

START_TIMEOUT_S = 60.0  # a dozen Python processes on 2 vCPUs; a failed start says which part hung
HARNESS_SPIFFE_PATH = "/ns/meshconform-system/sa/harness"  # identity of the harness's own client certs


class ReferenceDeployment:
    """The deployed scenario: where each workload lives, and its echo's control client."""

    def __init__(self, state: Mapping[str, Any]):
        self.state = state
        self.workloads: dict[str, WorkloadInfo] = {
            name: WorkloadInfo(name=name, service=w["service"], version=w["version"], instance=w["instance"],
                               spiffe_id=w["spiffe_id"], inbound=w["inbound"], app=w["app"],
                               echo_control=w["echo_control"], namespace=w["namespace"])
            for name, w in state["workloads"].items()
        }

    def echo(self, workload: str):
        from fixtures.echo.client import EchoControl

        return EchoControl(self.workloads[workload].echo_control)


class ReferenceAdapter:
    """MeshAdapter + MeshCertificates + MeshStats + HopInterposer + ProcessControl for the reference mesh."""

    name = "reference"

    def __init__(self, options: Mapping[str, str] | None = None):
        options = dict(options or {})
        self._defects = json.loads(options.pop("defects", "") or "{}")
        self._keep_logs = options.pop("keep_logs", "0") not in ("", "0", "false", "no")
        if options:
            raise ValueError(f"unknown reference mesh options: {', '.join(sorted(options))} "
                             "(known: defects, keep_logs)")
        self._mesh = None
        self._deployment: ReferenceDeployment | None = None
        self._pool = _ConnectionPool()
        self._ca = None
        self._lock = threading.RLock()
        # MeshCertificates.bundle_path: a plain attribute so isinstance() works on an unstarted adapter
        self.bundle_path = ""

    # -- MeshAdapter -------------------------------------------------------------------------------
    def implementation(self) -> Implementation:
        return Implementation(organization="meshconform", project="meshconform reference mesh (meshproxy)",
                              url="https://github.com/meshconform/meshconform", version=_package_version())

    def supported_features(self) -> frozenset[Feature]:
        return SUPPORTED

    def unsupported_reason(self, feature: Feature) -> str:
        return UNSUPPORTED.get(feature, f"{feature.value} is supported")

    def setup(self) -> None:
        """Nothing to do: the mesh starts with the first deploy(), which brings the scenario it needs."""

    def deploy(self, scenario: Scenario) -> ReferenceDeployment:
        from meshproxy.runtime import LocalMesh

        with self._lock:
            if self._mesh is not None and self._mesh.running and self._mesh.can_apply(scenario):
                self._mesh.apply(scenario)
            else:
                self.close()
                run_id = f"mc-{uuid.uuid4().hex[:12]}"
                mesh = LocalMesh(scenario, run_id=run_id, defects=self._defects, log_dir=self._log_dir(run_id))
                mesh.start(timeout=START_TIMEOUT_S)
                self._mesh = mesh
            self.bundle_path = str(self._mesh.bundle_path)
            self._deployment = ReferenceDeployment(self._mesh.state)
            return self._deployment

    def apply(self, scenario: Scenario) -> float:
        """Seconds from apply until every sidecar acked the new scenario."""
        return self._running().apply(scenario)

    def send(self, from_workload: str, request: HttpRequest) -> HttpResponse:
        outbound = self._workload_state(from_workload)["outbound"]
        return self._pool.send(outbound, request)

    def close(self) -> None:
        with self._lock:
            self._pool.close()
            if self._mesh is not None:
                self._mesh.stop()
            self._mesh = None
            self._deployment = None
            self._ca = None
            self.bundle_path = ""

    # -- MeshCertificates ----------------------------------------------------------------------------
    def issue_certificate(self, spiffe_id: str, *, not_before, not_after) -> tuple[bytes, bytes]:
        """A certificate signed by the mesh CA itself (the operator holds the CA key), with these times
        and any SPIFFE ID, foreign trust domains included: negative tests need what the CA's own API
        rightly refuses to issue."""
        from fixtures.certs import make_svid

        authority = self._authority()
        return make_svid(authority.cert, authority.key, spiffe_id, not_before=not_before, not_after=not_after)

    def workload_certificate(self, workload: str) -> bytes:
        """The leaf the workload's inbound presents, read from a TLS handshake with a harness SVID."""
        import datetime as dt

        from meshproxy import ca as ca_module

        mesh = self._running()
        now = dt.datetime.now(dt.timezone.utc)
        spiffe_id = f"spiffe://{mesh.scenario.trust_domain}{HARNESS_SPIFFE_PATH}"
        cert_pem, key_pem = self.issue_certificate(spiffe_id, not_before=now - dt.timedelta(minutes=1),
                                                   not_after=now + dt.timedelta(minutes=10))
        context = ssl.create_default_context(cafile=self.bundle_path)
        context.check_hostname = False  # SVIDs name a SPIFFE ID, not a host
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "c.pem").write_bytes(cert_pem + key_pem)
            context.load_cert_chain(Path(tmp) / "c.pem")
        host, _, port = self._workload_state(workload)["inbound"].rpartition(":")
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            with context.wrap_socket(raw) as tls:
                der = tls.getpeercert(binary_form=True)
        return ca_module.cert_pem(ca_module.load_cert(der))

    # -- MeshStats ------------------------------------------------------------------------------------
    def stats(self, workload: str) -> dict[str, Any]:
        """The sidecar's own counters (admin ``GET /stats``)."""
        host, _, port = self._workload_state(workload)["admin"].rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            conn.request("GET", "/stats")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{workload} admin /stats answered {response.status}: {body[:200]!r}")
            return json.loads(body)
        finally:
            conn.close()

    # -- HopInterposer ----------------------------------------------------------------------------------
    def interpose(self, dest_workload: str, proxy_factory: Callable[[str], Any]) -> "InterposedHop":
        """Start ``proxy_factory(real inbound)`` and point every caller at it until heal()."""
        real = self._workload_state(dest_workload)["inbound"]
        proxy = proxy_factory(real)
        hop = InterposedHop(self, dest_workload, real, proxy)
        self._override(dest_workload, proxy.address)
        return hop

    def _override(self, workload: str, address: str) -> None:
        mesh = self._running()
        w = self._workload_state(workload)
        mesh.client.override_endpoint(workload=workload, service=w["service"], namespace=w["namespace"],
                                      version=w["version"], instance=w["instance"], address=address)
        mesh.wait_in_effect()

    # -- ProcessControl ---------------------------------------------------------------------------------
    def kill(self, component: str) -> None:
        self._running().kill(*_component(component))

    def pause(self, component: str) -> None:
        self._running().pause(*_component(component))

    def resume(self, component: str) -> None:
        self._running().resume(*_component(component))

    def restart(self, component: str) -> None:
        self._running().restart(*_component(component))

    # -- helpers ------------------------------------------------------------------------------------------
    def _running(self):
        if self._mesh is None or not self._mesh.running:
            raise RuntimeError("no reference mesh is running: deploy() a scenario first")
        return self._mesh

    def _workload_state(self, workload: str) -> Mapping[str, Any]:
        workloads = self._running().state["workloads"]
        if workload not in workloads:
            raise KeyError(f"no workload {workload!r}; have {', '.join(workloads)}")
        return workloads[workload]

    def _authority(self):
        from meshproxy.ca import CertificateAuthority

        if self._ca is None:
            mesh = self._running()
            self._ca = CertificateAuthority.load_or_create(mesh.state_dir, mesh.scenario.trust_domain,
                                                           defects={})
        return self._ca

    def _log_dir(self, run_id: str) -> Path | None:
        return Path("reports") / "logs" / run_id if self._keep_logs else None


@dataclass
class InterposedHop:
    """The lease of a proxy on a hop: heal() points callers back at the real inbound (idempotent)."""

    adapter: ReferenceAdapter
    workload: str
    real_address: str
    proxy: Any
    healed: bool = field(default=False)

    def heal(self) -> None:
        if self.healed:
            return
        self.adapter._override(self.workload, self.real_address)
        self.healed = True


def _component(component: str) -> tuple[str, str | None]:
    """ProcessControl names → LocalMesh's: "controlplane", "<workload>" (sidecar), "<workload>/echo"."""
    if component == "controlplane":
        return "controlplane", None
    workload, _, part = component.partition("/")
    if part in ("", "sidecar"):
        return "sidecar", workload
    if part == "echo":
        return "echo", workload
    raise ValueError(f"unknown component {component!r}: use 'controlplane', '<workload>' or '<workload>/echo'")


def _package_version() -> str:
    try:
        return importlib.metadata.version("meshconform")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


class _ConnectionPool:
    """Keep-alive HTTP/1.1 connections per outbound address, shared by threads.

    A request is never retried by the client (a retry would corrupt the arrival counts the checks
    measure): instead a pooled connection the peer has closed is noticed before it is used (it is
    readable while idle) and replaced.
    """

    MAX_IDLE_PER_ADDRESS = 32

    def __init__(self):
        self._idle: dict[str, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def send(self, address: str, request: HttpRequest) -> HttpResponse:
        headers = dict(request.headers)
        if request.host is not None:
            headers["Host"] = request.host
        began = time.perf_counter()
        conn = self._take(address, request.timeout_s)
        try:
            conn.request(request.method, request.path, body=request.body or None, headers=headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            return HttpResponse(status=None, elapsed_s=time.perf_counter() - began, error=_describe(exc))
        elapsed = time.perf_counter() - began
        merged: dict[str, str] = {}
        for name, value in response.getheaders():
            name = name.lower()
            merged[name] = f"{merged[name]}, {value}" if name in merged else value
        if response.will_close:
            conn.close()
        else:
            self._give_back(address, conn)
        return HttpResponse(status=response.status, headers=merged, body=body, elapsed_s=elapsed)

    def _take(self, address: str, timeout: float) -> http.client.HTTPConnection:
        with self._lock:
            idle = self._idle.get(address, [])
            while idle:
                conn = idle.pop()
                if _still_open(conn):
                    conn.sock.settimeout(timeout)
                    return conn
                conn.close()
        host, _, port = address.rpartition(":")
        return http.client.HTTPConnection(host, int(port), timeout=timeout)

    def _give_back(self, address: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(address, [])
            if len(idle) < self.MAX_IDLE_PER_ADDRESS:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            for conns in self._idle.values():
                for conn in conns:
                    conn.close()
            self._idle.clear()


def _still_open(conn: http.client.HTTPConnection) -> bool:
    """An idle keep-alive socket is readable only if the peer closed it (or sent junk): then drop it."""
    if conn.sock is None:
        return False
    readable, _, _ = select.select([conn.sock], [], [], 0)
    return not readable


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (ConnectionResetError, http.client.RemoteDisconnected)):
        return f"connection reset ({exc.__class__.__name__})"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{exc.__class__.__name__}: {exc}"
