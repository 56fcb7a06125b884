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
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from harness.adapters.base import HttpRequest, HttpResponse, Implementation
from harness.adapters.kit import (START_TIMEOUT_S, FeatureClaims, InterposedHop, KeepAliveClient, StateDeployment,
                                  Withdrawal, workload_certificate)
from harness.features import Feature
from meshruntime.processes import wait_until
from meshscenario import Scenario

if TYPE_CHECKING:
    from harness.observability.access_log import AccessLogRecord
    from harness.observability.metrics import MetricsSnapshot

# The one place that says what the reference mesh does today: the features it claims. Any other
# feature is NOT_SUPPORTED, with the reason given here or "does not claim".
FEATURES = FeatureClaims.of("reference", supported=[
    Feature.MTLS_STRICT, Feature.MTLS_PERMISSIVE, Feature.AUTHZ, Feature.IDENTITY, Feature.SVID,
    Feature.CERT_ROTATION, Feature.WIRE_ENCRYPTION,
    Feature.WEIGHTED_ROUTING, Feature.HEADER_MATCH, Feature.PATH_MATCH, Feature.WEIGHT_SHIFT,
    Feature.LB_ROUND_ROBIN, Feature.LB_LEAST_REQUEST, Feature.LB_RING_HASH, Feature.LB_RANDOM,
    Feature.HEALTH_CHECK_PASSIVE, Feature.HEALTH_CHECK_ACTIVE,
    Feature.RETRIES, Feature.RETRY_BACKOFF, Feature.PER_TRY_TIMEOUT, Feature.REQUEST_TIMEOUT,
    Feature.CIRCUIT_BREAKING, Feature.CIRCUIT_BREAKING_RETRIES, Feature.OUTLIER_DETECTION, Feature.FAULT_INJECTION_DELAY, Feature.FAULT_INJECTION_ABORT,
    Feature.CHAOS_UPSTREAM_KILL, Feature.CHAOS_PARTITION, Feature.CHAOS_SLOW_NETWORK, Feature.CHAOS_SIDECAR_RESTART,
    Feature.CHAOS_CONTROL_PLANE_KILL,
    Feature.LATENCY_OVERHEAD, Feature.THROUGHPUT, Feature.CONFIG_PROPAGATION, Feature.RESOURCE_USE,
    Feature.HARDENING_SMUGGLING, Feature.HARDENING_DUPLICATE_HOST, Feature.HARDENING_TRAILERS,
    Feature.HARDENING_CONNECT, Feature.HARDENING_SLOW_CLIENTS, Feature.HARDENING_CONNECTION_FLOOD,
    Feature.HARDENING_TLS_GARBAGE, Feature.HARDENING_LIMITS, Feature.HARDENING_KEEPS_SERVING,
    Feature.METRICS, Feature.TRACING, Feature.ACCESS_LOGS, Feature.SERVICE_GRAPH,
], reasons={})
# In containers the sidecars cannot reach the harness's Zipkin collector, which listens on loopback.
DOCKER_UNSUPPORTED = {
    Feature.TRACING: "in the Docker runtime the sidecars cannot reach the harness's Zipkin collector "
                     "(it listens on the host's loopback only)",
}





class ReferenceAdapter:
    """MeshAdapter + MeshCertificates + MeshStats + MeshMetrics + MeshAccessLogs + HopInterposer + EndpointMembership + ProcessControl for
    the reference mesh."""

    name = "reference"
    attempt_count_header = "x-envoy-attempt-count"  # MeshAttemptCount: the sidecar numbers every try
    no_route_marker = ("x-meshproxy-no-route", "1")  # MeshNoRouteMarker: documented in docs/architecture.md

    def __init__(self, options: Mapping[str, str] | None = None):
        options = dict(options or {})
        self._defects = json.loads(options.pop("defects", "") or "{}")
        self._keep_logs = options.pop("keep_logs", "0") not in ("", "0", "false", "no")
        # runtime=docker (pytest --runtime=docker): the mesh in containers (meshproxy/runtime/docker.py)
        self._runtime = options.pop("runtime", "local") or "local"
        if self._runtime not in ("local", "docker"):
            raise ValueError(f"reference mesh runtime must be local or docker, not {self._runtime!r}")
        self._runtime_reason: str | None = None
        if options:
            raise ValueError(f"unknown reference mesh options: {', '.join(sorted(options))} "
                             "(known: defects, keep_logs, runtime)")
        self._mesh = None
        self._deployment: StateDeployment | None = None
        self._pool = KeepAliveClient()
        self._ca = None
        self._lock = threading.RLock()
        # MeshCertificates.bundle_path: a plain attribute so isinstance() works on an unstarted adapter
        self.bundle_path = ""

    # -- MeshAdapter -------------------------------------------------------------------------------
    def implementation(self) -> Implementation:
        return Implementation(organization="meshconform", project="meshconform reference mesh (meshproxy)",
                              url="https://github.com/meshconform/meshconform", version=_package_version())

    def supported_features(self) -> frozenset[Feature]:
        if self._runtime_unavailable():
            return frozenset()  # every check NOT_SUPPORTED, with the reason below
        if self._runtime == "docker":
            return FEATURES.supported - frozenset(DOCKER_UNSUPPORTED)
        return FEATURES.supported

    def unsupported_reason(self, feature: Feature) -> str:
        reason = self._runtime_unavailable()
        if reason:
            return f"the Docker runtime cannot run here: {reason}"
        if self._runtime == "docker" and feature in DOCKER_UNSUPPORTED:
            return DOCKER_UNSUPPORTED[feature]
        return FEATURES.reason(feature)

    def _runtime_unavailable(self) -> str | None:
        if self._runtime != "docker":
            return None
        if self._runtime_reason is None:
            from meshproxy.runtime.docker import unavailable_reason

            self._runtime_reason = unavailable_reason() or ""
        return self._runtime_reason or None

    def setup(self) -> None:
        """Nothing to do: the mesh starts with the first deploy(), which brings the scenario it needs."""

    def deploy(self, scenario: Scenario) -> StateDeployment:
        from meshproxy.runtime import LocalMesh

        with self._lock:
            if self._mesh is not None and self._mesh.running and self._mesh.can_apply(scenario):
                self._mesh.apply(scenario)
            else:
                self.close()
                run_id = f"mc-{uuid.uuid4().hex[:12]}"
                if self._runtime == "docker":
                    from meshproxy.runtime.docker import DockerMesh as LocalMesh  # noqa: N814 - same surface
                mesh = LocalMesh(scenario, run_id=run_id, defects=self._defects, log_dir=self._log_dir(run_id))
                mesh.start(timeout=START_TIMEOUT_S)
                self._mesh = mesh
            self.bundle_path = str(self._mesh.bundle_path)
            self._deployment = StateDeployment(self._mesh.state)
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
        return workload_certificate(self._workload_state(workload)["inbound"], bundle_path=self.bundle_path,
                                    trust_domain=self._running().scenario.trust_domain, issue=self.issue_certificate)

    # -- MeshStats ------------------------------------------------------------------------------------
    def stats(self, workload: str) -> dict[str, Any]:
        """The sidecar's own counters (admin ``GET /stats``)."""
        return json.loads(self._admin_get(workload, "/stats"))

    def _admin_get(self, workload: str, path: str) -> bytes:
        host, _, port = self._workload_state(workload)["admin"].rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{workload} admin {path} answered {response.status}: {body[:200]!r}")
            return body
        finally:
            conn.close()

    # -- MeshMetrics ----------------------------------------------------------------------------------
    def request_metrics(self, workload: str) -> "MetricsSnapshot":
        """The sidecar's Istio/Envoy series (admin ``GET /metrics``), parsed by prometheus_client."""
        from harness.observability.prometheus import parse_metrics

        return parse_metrics(self._admin_get(workload, "/metrics").decode("utf-8"))

    # -- MeshAccessLogs -------------------------------------------------------------------------------
    def access_log(self, workload: str) -> tuple[list["AccessLogRecord"], list[str]]:
        """``<work_dir>/access.log`` of the workload's sidecar. The runtimes keep every work dir under
        ``<state_dir>/workloads/<workload>`` (the Docker runtime bind-mounts the state dir into its
        containers), so both are read from the host."""
        from harness.observability.access_log import parse_access_log

        self._workload_state(workload)
        path = Path(self._running().state_dir) / "workloads" / workload / "access.log"
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return [], []
        complete = text[:text.rfind("\n") + 1]  # a line still being written is read next time
        return parse_access_log(complete.splitlines(), workload)

    # -- HopInterposer ----------------------------------------------------------------------------------
    def interpose(self, dest_workload: str, proxy_factory: Callable[[str], Any]) -> InterposedHop:
        """Start ``proxy_factory(real inbound)`` and point every caller at it until heal()."""
        real = self._workload_state(dest_workload)["inbound"]
        mesh = self._running()
        # where the mesh reaches the proxy's upstream and the inbound: the addresses themselves on loopback;
        # in containers a relay on the run network's gateway (so closing the proxy refuses as on loopback)
        upstream, home = mesh.reachable_from_mesh(real), mesh.mesh_inbound(dest_workload)
        proxy = proxy_factory(upstream)

        def restore() -> None:
            self._override(dest_workload, home)
            mesh.release_relay(upstream)
        hop = InterposedHop(dest_workload, proxy, restore=restore)
        self._override(dest_workload, proxy.address)
        return hop

    def _override(self, workload: str, address: str) -> None:
        mesh = self._running()
        w = self._workload_state(workload)
        mesh.client.override_endpoint(workload=workload, service=w["service"], namespace=w["namespace"],
                                      version=w["version"], instance=w["instance"], address=address)
        mesh.wait_in_effect()

    # -- EndpointMembership -----------------------------------------------------------------------------
    def withdraw_endpoint(self, workload: str) -> Withdrawal:
        """Stop the workload's sidecar (SIGTERM: it deregisters, as a terminating pod's endpoint leaves),
        make sure the control plane dropped it, and wait until every other sidecar acked the smaller
        endpoint set. ``heal()`` starts the sidecar again: it registers the same inbound address."""
        mesh = self._running()
        self._workload_state(workload)
        began = time.monotonic()
        mesh.component_process("sidecar", workload).stop()
        if workload in mesh.client.status().get("workloads", {}):
            mesh.client.deregister(workload)  # its deregistration is best effort; the admin's is not
        wait_until(lambda: workload not in mesh.client.status().get("workloads", {}), timeout=START_TIMEOUT_S,
                   what=f"the control plane to drop {workload}")
        mesh.client.wait_generation(mesh.client.status()["generation"], timeout=START_TIMEOUT_S)
        seconds = time.monotonic() - began

        def readmit() -> None:
            if self._mesh is mesh and mesh.running:
                mesh.start_component("sidecar", workload, time.monotonic() + START_TIMEOUT_S)

        return Withdrawal(workload, readmit, seconds)

    # -- ProcessControl ---------------------------------------------------------------------------------
    def kill(self, component: str) -> None:
        self._running().kill(component)

    def pause(self, component: str) -> None:
        self._running().pause(component)

    def resume(self, component: str) -> None:
        self._running().resume(component)

    def restart(self, component: str) -> None:
        self._running().restart(component)

    # -- ProxyReadiness -----------------------------------------------------------------------------------
    def proxy_ready(self, workload: str) -> bool:
        """The sidecar's admin ``GET /ready`` answers 200 (503 while it has not joined the control plane)."""
        from meshruntime.processes import http_ok

        return http_ok(self._workload_state(workload)["admin"], "/ready")

    # -- MeshDataPlane ---------------------------------------------------------------------------------
    proxy_hops = 2  # the caller's sidecar (outbound) and the destination's (inbound)

    def outbound_address(self, workload: str) -> str:
        return self._workload_state(workload)["outbound"]

    def proxy_pids(self, workload: str) -> tuple[int, ...]:
        pid = self._workload_state(workload)["pids"]["sidecar"]
        return (pid,) if pid else ()

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




def _package_version() -> str:
    try:
        return importlib.metadata.version("meshconform")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
