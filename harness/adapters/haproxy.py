"""HAProxy (2.6) as the sidecar of every workload: ``--mesh=haproxy``.

One ``haproxy -W`` (master-worker) process per workload serves the inbound (mTLS per policy, authz,
x-forwarded-client-cert) and the outbound (destination by Host, first-match routes with header/path
matches, weighted servers, retries, timeouts, fault abort). Config: templates/haproxy.cfg.j2, rendered
from :mod:`harness.adapters.thirdparty.topology`. A scenario change is a soft reload (``reload`` on the
master's CLI socket ``-S <work_dir>/master.sock``) and is in effect once the admin port reports the new
generation and the old worker is gone.
Certificates rotate without reload through the runtime API (``set ssl cert`` + ``commit ssl cert``).

How HAProxy expresses the identity checks: 2.6 has no fetch for a client certificate's URI SAN, so the
config matches the DER (``ssl_c_der,hex``) against the exact bytes of a URI SAN entry (see
thirdparty/san_patterns.py); XFCC therefore names a caller only among the scenario's SPIFFE IDs.
Towards a destination, ``verifyhost`` checks the server's CN ``<service>.<ns>.svc`` (see
thirdparty/identity.py), not its URI SAN, which HAProxy cannot check before sending the request.
What it cannot express is declared in FEATURES below (claimed features; a reason for each one it lacks); what it expresses differently makes the
checks fail and say how (e.g. ``retry-on`` names only 401/403/404/408/425/500-504, so a retry on 409
is dropped; ``timeout server`` is per try and nothing bounds all tries together).
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import jinja2

from harness.adapters.base import Implementation
from harness.adapters.kit import FeatureClaims
from harness.adapters.thirdparty.adapter import ThirdPartyAdapter, command_output
from harness.adapters.thirdparty.runtime import run_check
from harness.adapters.thirdparty.san_patterns import hex_pattern, uri_prefix_bytes, uri_san_bytes
from harness.adapters.thirdparty.topology import HeaderCondition, ProxyView, RouteView, with_weights_capped
from harness.features import Feature
from meshruntime.processes import ManagedProcess, wait_until

MAX_WEIGHT = 256  # HAProxy server weights are 0..256
MASTER_TIMEOUT_S = 15.0  # a busy master re-executing and re-parsing takes well under this
MASTER_POLL_S = 0.02
RETRIABLE_STATUSES = {401, 403, 404, 408, 425, 500, 501, 502, 503, 504}  # what retry-on can name
_RETRY_ON = {
    # Envoy's 5xx also retries when the upstream did not answer at all (reset, connect failure)
    "5xx": ["500", "501", "502", "503", "504", "conn-failure", "empty-response"],
    "gateway-error": ["502", "503", "504"],
    "reset": ["empty-response"],
    "connect-failure": ["conn-failure"],
}

FEATURES = FeatureClaims.of("haproxy", supported=[
    Feature.MTLS_STRICT,
    Feature.MTLS_PERMISSIVE,
    Feature.AUTHZ,
    Feature.IDENTITY,
    Feature.SVID,
    Feature.CERT_ROTATION,
    Feature.WIRE_ENCRYPTION,
    Feature.WEIGHTED_ROUTING,
    Feature.HEADER_MATCH,
    Feature.PATH_MATCH,
    Feature.WEIGHT_SHIFT,
    Feature.LB_ROUND_ROBIN,
    Feature.LB_LEAST_REQUEST,
    Feature.LB_RING_HASH,
    Feature.LB_RANDOM,
    Feature.HEALTH_CHECK_ACTIVE,
    Feature.RETRIES,
    Feature.CIRCUIT_BREAKING,  # per-server maxconn + maxqueue (rendered; the checks say how it differs)
    Feature.PER_TRY_TIMEOUT,
    Feature.REQUEST_TIMEOUT,
    Feature.FAULT_INJECTION_ABORT,
    Feature.CHAOS_UPSTREAM_KILL,  # ProcessControl + HopInterposer of the third-party runtime; suites/chaos pass
    Feature.CHAOS_PARTITION,
    Feature.CHAOS_SIDECAR_RESTART,
    Feature.LATENCY_OVERHEAD,
    Feature.THROUGHPUT,
    Feature.CONFIG_PROPAGATION,
    Feature.RESOURCE_USE,
    # suites/hardening: Smuggling, Trailers and KeepsServing pass; DuplicateHost and Connect are claimed and
    # FAIL on purpose, real findings about HAProxy 2.6: it forwards two identical Host lines and (inbound)
    # an HTTP/1.1 request without Host (RFC 9112 §3.2 wants 400), and after refusing a CONNECT it keeps
    # the connection and answers the bytes sent for the tunnel as a request of their own
    Feature.HARDENING_SMUGGLING,
    Feature.HARDENING_DUPLICATE_HOST,
    Feature.HARDENING_TRAILERS,
    Feature.HARDENING_CONNECT,
    # ConnectionFlood passes; SlowClients, TlsGarbage and Limits are claimed and FAIL, findings about this
    # configuration of HAProxy 2.6: `timeout http-request 10s` closes slowloris heads but an idle declared
    # body and a truncated ClientHello wait for `timeout client 60s` (over the check's 30 s), and absurd
    # headers or targets get 400, not 431/414 (nothing is forwarded)
    Feature.HARDENING_SLOW_CLIENTS,
    Feature.HARDENING_CONNECTION_FLOOD,
    Feature.HARDENING_TLS_GARBAGE,
    Feature.HARDENING_LIMITS,
    Feature.HARDENING_KEEPS_SERVING,
    Feature.ACCESS_LOGS,  # log-format JSON lines on stdout (templates/haproxy.cfg.j2, thirdparty/access_log.py)
], reasons={
    Feature.RETRY_BACKOFF: "HAProxy retries at once (no backoff or jitter between tries)",
    Feature.FAULT_INJECTION_DELAY: "HAProxy has no built-in action that delays a share of requests "
                                   "(only Lua scripting, which the adapter does not ship)",
    Feature.CIRCUIT_BREAKING_RETRIES: "HAProxy has no limit on concurrent retries (retries is per request)",
    Feature.OUTLIER_DETECTION: "HAProxy's observe layer7/on-error mark-down brings a server back only via active "
                               "health checks: no base_ejection_time, no max_ejection_percent",
    Feature.HEALTH_CHECK_PASSIVE: "same limit as outlier detection: HAProxy has no timed passive ejection",
    Feature.CHAOS_CONTROL_PLANE_KILL: "HAProxy has no control plane: configuration is a file the adapter renders",
    Feature.CHAOS_SLOW_NETWORK: "over a slow hop HAProxy's route timeout (timeout server) starts only once the "
                                "connection is up: 504 after 0.92 s (the 0.6 s TLS handshake over the hop + 0.3 s) for "
                                "a 0.3 s timeout (MeshChaosSlowNetworkRouteTimeout fails; the per-try and "
                                "bandwidth checks pass)",
    Feature.METRICS: "HAProxy's counters (stats socket, its Prometheus exporter) are per frontend/backend/server "
                     "and per status class (2xx..5xx): no exact response code, and no source workload",
    Feature.TRACING: "HAProxy 2.6 neither propagates W3C trace context nor reports spans by itself (only "
                     "unique-id-format / Lua could, and the adapter ships neither)",
    Feature.SERVICE_GRAPH: "HAProxy's counters do not say which workload called (no source workload label), "
                           "so no service graph with counts follows from them",
})


def header_condition(h: HeaderCondition) -> str:
    fetch = f"req.hdr({h.name})"
    if h.kind == "present":
        return f"{{ req.hdr_cnt({h.name}) gt 0 }}"
    match = {"exact": "str", "prefix": "beg", "regex": "reg"}[h.kind]
    return f"{{ {fetch} -m {match} {_quote(h.value or '')} }}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def retry_conditions(route: RouteView) -> str:
    """HAProxy's retry-on keywords for the route's Envoy conditions; codes it cannot name are dropped."""
    words: list[str] = []
    for condition in route.retry_on:
        words += _RETRY_ON.get(condition, [])
    words += [str(c) for c in route.retry_codes if c in RETRIABLE_STATUSES]
    if route.per_try_timeout_ms:
        words.append("response-timeout")
    return " ".join(dict.fromkeys(words)) or "none"


_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                          trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                          keep_trailing_newline=True)


def with_fine_ring(view: ProxyView) -> ProxyView:
    """Routes balanced on HAProxy's consistent-hash tree (``ring_hash``, and ``random``, which draws a
    random point on that tree) get their weights scaled up as far as 256 allows: HAProxy puts 16 points
    per weight unit on the tree, so equal weights of 1 give each server 16 points and shares several
    points apart; scaled to 256 (4,096 points each) the shares are within about half a point. The
    ratios, i.e. the declared weights, are unchanged."""
    destinations = []
    for d in view.destinations:
        routes = []
        for r in d.routes:
            top = max((s.weight for s in r.servers), default=0)
            if r.lb_policy in ("ring_hash", "random") and 0 < top < MAX_WEIGHT:
                factor = MAX_WEIGHT // top
                r = dataclasses.replace(r, servers=tuple(dataclasses.replace(s, weight=s.weight * factor)
                                                         for s in r.servers))
            routes.append(r)
        destinations.append(dataclasses.replace(d, routes=tuple(routes)))
    return dataclasses.replace(view, destinations=tuple(destinations))


def render_haproxy(view: ProxyView) -> str:
    view = with_fine_ring(with_weights_capped(view, MAX_WEIGHT))
    allowed = view.allowed_principals or ()
    allowed_patterns = ([hex_pattern(uri_prefix_bytes(f"spiffe://{view.trust_domain}/"))] if "*" in allowed
                        else [hex_pattern(uri_san_bytes(p)) for p in allowed])
    return _ENV.get_template("haproxy.cfg.j2").render(
        v=view, header_condition=header_condition, retry_conditions=retry_conditions,
        trust_domain_pattern=hex_pattern(uri_prefix_bytes(f"spiffe://{view.trust_domain}/")),
        principal_patterns=[(p, hex_pattern(uri_san_bytes(p))) for p in view.known_principals],
        allowed_patterns=allowed_patterns or ["^$NEVER"])


class HaproxyFlavor:
    name = "haproxy"
    config_name = "haproxy.cfg"

    def render(self, view: ProxyView) -> str:
        return render_haproxy(view)

    def argv(self, binary: str, config: Path) -> list[str]:
        return [binary, "-W", "-db", "-S", str(_master_socket(config)), "-f", str(config)]

    def reload(self, proc: ManagedProcess, binary: str, config: Path) -> None:
        # The master re-reads the file, starts new workers and soft-stops the old ones. Asked on its
        # CLI socket, not with SIGUSR2: under load HAProxy 2.6's master sometimes never acted on a
        # SIGUSR2 sent right after the previous reload took effect (no "Reloading HAProxy" in its log,
        # the old generation for 15 s), while a CLI command is an event its loop always handles.
        # The master CLI is away while the master re-executes (a previous reload can still be
        # finishing: its new worker answers before the master listens again), so the command is sent
        # once the socket accepts, and the reload counter of ``show proc`` confirms it was taken.
        sock = _master_socket(config)
        state: dict[str, int | None] = {"before": None}

        def reload_taken() -> bool:
            count = _master_reloads(sock)
            if count is None:
                return False
            if state["before"] is None:
                state["before"] = count
                try:
                    _master_command(sock, "reload\n")
                except OSError:
                    state["before"] = None  # refused or reset before the master read it: ask again
                return False
            return count > state["before"]

        wait_until(reload_taken, timeout=MASTER_TIMEOUT_S, what=f"haproxy master of {config.parent.name} "
                   f"to take the reload", interval=MASTER_POLL_S,
                   abort=lambda: None if proc.running() else f"exited with {proc.exit_code()}")

    def certificate_renewed(self, view: ProxyView) -> None:
        pem = Path(view.svid_path).read_text()
        _runtime_api(Path(view.work_dir) / "admin.sock",
                     f"set ssl cert {view.svid_path} <<\n{pem.strip()}\n\n")
        _runtime_api(Path(view.work_dir) / "admin.sock", f"commit ssl cert {view.svid_path}\n")

    def check(self, binary: str, config: Path) -> None:
        run_check([binary, "-c", "-q", "-f", str(config)])


def _master_socket(config: Path) -> Path:
    return config.parent / "master.sock"


def _master_reloads(sock_path: Path) -> int | None:
    """How many times the master has reloaded (``show proc``), or None while its CLI is away."""
    try:
        answer = _master_command(sock_path, "show proc\nquit\n")  # without quit the CLI keeps the connection open
    except OSError:
        return None
    for line in answer.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "master":
            return int(fields[2])
    return None


def _master_command(sock_path: Path, command: str, timeout: float = 5.0) -> str:
    """Send one command to the master CLI (``-S``); returns its answer. ``reload`` answers nothing in
    2.6: the master re-executes itself, which closes the connection once the command is taken."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(sock_path))
        sock.sendall(command.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _runtime_api(sock_path: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(sock_path))
        sock.sendall(command.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks).decode(errors="replace")
    if "error" in answer.lower() or "unable" in answer.lower():
        raise RuntimeError(f"HAProxy runtime API {command.split(chr(10))[0]!r}: {answer.strip()}")
    return answer


class HaproxyAdapter(ThirdPartyAdapter):
    name = "haproxy"
    binary_name = "haproxy"
    FEATURES = FEATURES

    def flavor(self) -> HaproxyFlavor:
        return HaproxyFlavor()

    def access_log_path(self, mesh, workload: str) -> Path:
        return mesh.component_process("sidecar", workload).log_path  # "log stdout": the process's own log

    def implementation(self) -> Implementation:
        version = "unknown"
        try:
            first = command_output([self.binary(), "-v"]).splitlines()[0]
            version = first.split()[2]
        except (RuntimeError, IndexError, OSError):
            pass
        return Implementation(organization="HAProxy Technologies", project="HAProxy (meshconform sidecar adapter)",
                              url="https://www.haproxy.org/", version=version)
