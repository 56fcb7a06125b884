"""What the harness needs from a mesh: one small Protocol, plus optional capabilities (SPEC §2).

An adapter turns a harness-neutral :class:`~meshscenario.Scenario` into its mesh's configuration,
deploys it, waits until it is in effect by observation (never by sleeping), and sends requests as the
application of a workload would (to that workload's OUTBOUND side). Suites reach a mesh only through
this Protocol and the echo journal, which is what lets every check run against any mesh.

Adapters are found by name in the entry-point group ``meshconform.adapters`` (or the plugin hook
``pytest_meshconform_adapters``) and constructed as ``factory(options=...)`` where ``options`` is the
``--mesh-option KEY=VALUE`` mapping. Constructing one must be cheap and start nothing: the harness asks
an unstarted adapter for its features so a NOT_SUPPORTED check never starts a mesh. ``setup()`` starts
whatever is needed, once per session; ``close()`` stops it and must be safe to call twice.

Extra capabilities are separate ``runtime_checkable`` Protocols; a check that needs one tests
``isinstance(mesh, MeshCertificates)`` and declares the matching feature so unsupported meshes get
NOT_SUPPORTED rather than an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, runtime_checkable

from harness.features import Feature

if TYPE_CHECKING:
    from datetime import datetime

    from harness.observability.access_log import AccessLogRecord
    from harness.observability.metrics import MetricsSnapshot
    from meshscenario import Scenario


@dataclass(frozen=True)
class Implementation:
    """Who makes the mesh under test; lands verbatim in the conformance report."""

    organization: str
    project: str
    url: str
    version: str
    contact: tuple[str, ...] = ()


@dataclass(frozen=True)
class HttpRequest:
    """A request as a workload's application would send it; ``host`` picks the destination service."""

    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    host: str | None = None  # e.g. "backend" or "backend.default"; adapters put it in the Host header
    timeout_s: float = 10.0  # client-side bound so no request can hang a test


@dataclass(frozen=True)
class HttpResponse:
    """What the calling application saw. ``status`` is None when no HTTP answer came (reset, EOF)."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    elapsed_s: float = 0.0
    error: str | None = None  # why there is no status, e.g. "connection reset"

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass(frozen=True)
class WorkloadInfo:
    """Where one workload of a deployment lives. Addresses are "IP:PORT" strings."""

    name: str  # "<service>-<version>-<instance>"
    service: str
    version: str
    instance: int
    spiffe_id: str
    inbound: str  # the mesh's inbound listener (mTLS per policy)
    app: str  # the echo upstream itself, bypassing the mesh
    echo_control: str  # the echo's journal/program port, never through the mesh
    namespace: str = "default"


class Deployment(Protocol):
    """A scenario that is deployed and in effect."""

    workloads: Mapping[str, WorkloadInfo]

    def echo(self, workload: str) -> Any:
        """An echo control client (``fixtures.echo.client.EchoControl``) for that workload."""
        ...


@runtime_checkable
class MeshAdapter(Protocol):
    name: str

    def implementation(self) -> Implementation: ...

    def supported_features(self) -> frozenset[Feature]: ...

    def unsupported_reason(self, feature: Feature) -> str:
        """Why ``feature`` is not supported, in one line, for the NOT_SUPPORTED entry of the report."""
        ...

    def setup(self) -> None:
        """Start what the session needs (once per session)."""
        ...

    def deploy(self, scenario: "Scenario") -> Deployment:
        """Deploy ``scenario`` and return once it is in effect, observed (not slept for)."""
        ...

    def apply(self, scenario: "Scenario") -> float:
        """Change the running deployment to ``scenario``; returns seconds from apply until in effect."""
        ...

    def send(self, from_workload: str, request: HttpRequest) -> HttpResponse:
        """Send ``request`` to ``from_workload``'s outbound side, as its application would."""
        ...

    def close(self) -> None:
        """Stop everything ``setup``/``deploy`` started; idempotent."""
        ...


AdapterFactory = Callable[..., MeshAdapter]  # called as factory(options=Mapping[str, str])


# -- optional capabilities ---------------------------------------------------------------------------

@runtime_checkable
class MeshCertificates(Protocol):
    """Access to the mesh CA, for checks on identity and on rejection of bad client certificates."""

    bundle_path: str  # PEM trust bundle of the mesh

    def issue_certificate(self, spiffe_id: str, *, not_before: "datetime",
                          not_after: "datetime") -> tuple[bytes, bytes]:
        """(certificate PEM, private key PEM) for ``spiffe_id`` from the mesh CA, with these times."""
        ...

    def workload_certificate(self, workload: str) -> bytes:
        """The PEM certificate ``workload`` presents now."""
        ...


@runtime_checkable
class MeshAttemptCount(Protocol):
    """The mesh tells the upstream which try a request is, in a header (Envoy: ``x-envoy-attempt-count``).
    A mesh that offers this is held to it: the i-th arrival of a request must say ``i``."""

    attempt_count_header: str


@runtime_checkable
class MeshNoRouteMarker(Protocol):
    """The mesh marks its own no-route answer with a documented header, ``(name, value)``."""

    no_route_marker: tuple[str, str]


@runtime_checkable
class MeshMetrics(Protocol):
    """The mesh's request telemetry normalised (harness/observability/metrics.py): per (reporter, source
    workload, destination workload, response code) and per destination (tries, retries, overflows,
    ejections), cumulative since the workload's proxy started. The reference reads Istio's and Envoy's
    series from its sidecars' ``/metrics``; a mesh reports what it can and leaves the rest at 0, which
    a check reads as "counted nothing"."""

    def request_metrics(self, workload: str) -> "MetricsSnapshot": ...


@runtime_checkable
class MeshAccessLogs(Protocol):
    """The access-log records ``workload``'s proxy has written so far, in order (both directions), and
    lines that were not records (problems). Records need ``scenario.telemetry.access_log`` on."""

    def access_log(self, workload: str) -> tuple[list["AccessLogRecord"], list[str]]: ...


@runtime_checkable
class MeshStats(Protocol):
    """The mesh's own counters, to compare with the echo's ground truth."""

    def stats(self, workload: str) -> dict[str, Any]: ...


class Healing(Protocol):
    """A fault lease: ``heal()`` undoes it and is idempotent."""

    def heal(self) -> None: ...


@runtime_checkable
class HopInterposer(Protocol):
    """Put a TCP proxy (a fault proxy or a tap) in front of a workload's inbound listener."""

    def interpose(self, dest_workload: str, proxy_factory: Callable[[str], Any]) -> Healing:
        """``proxy_factory(upstream_address)`` returns a started proxy with an ``address`` attribute;
        the mesh is re-pointed at it until the returned handle heals."""
        ...


@runtime_checkable
class EndpointMembership(Protocol):
    """Take a workload out of its service's endpoint set, as scaling down by one would: its callers
    get the smaller set through the mesh's own configuration path (reference: the sidecar stops and
    deregisters, the control plane pushes the new set; HAProxy/nginx: the server leaves every
    rendered config). Its echo keeps running, so the journal shows whether traffic still reaches it."""

    def withdraw_endpoint(self, workload: str) -> Healing:
        """Returns once every caller has the smaller set; ``heal()`` puts the endpoint back (same
        address) and returns once every caller has the full set again."""
        ...


@runtime_checkable
class ProcessControl(Protocol):
    """Process faults. ``component`` is a workload name, ``"<workload>/echo"`` or ``"controlplane"``."""

    def kill(self, component: str) -> None: ...

    def pause(self, component: str) -> None: ...

    def resume(self, component: str) -> None: ...

    def restart(self, component: str) -> None: ...


@runtime_checkable
class ProxyReadiness(Protocol):
    """Whether a workload's proxy says it is ready to serve (its readiness endpoint: Envoy's and the
    reference's ``/ready``, the agent's ``/healthz/ready`` in Istio). False when it answers not ready or
    does not answer at all."""

    def proxy_ready(self, workload: str) -> bool: ...


@runtime_checkable
class MeshDataPlane(Protocol):
    """Where a workload's application sends, and which processes carry its traffic: so a meter can load
    a workload's outbound listener directly (open loop, µs timing) and the harness can read the proxies'
    CPU and memory. ``proxy_hops`` is the number of proxies a request from one workload to another
    crosses (2: the caller's outbound side and the destination's inbound side)."""

    proxy_hops: int

    def outbound_address(self, workload: str) -> str:
        """"IP:PORT" of ``workload``'s outbound listener (plain HTTP/1.1; the Host header picks the service)."""
        ...

    def proxy_pids(self, workload: str) -> tuple[int, ...]:
        """The processes of ``workload``'s proxy (their children are counted with them)."""
        ...
