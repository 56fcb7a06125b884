"""nginx (1.22 open source, Debian's nginx-light) as the sidecar of every workload: ``--mesh=nginx``.

One nginx master (``daemon off``) per workload serves the inbound (mTLS per policy, authz, XFCC) and
the outbound (destination by Host, first-match routes, weighted upstreams, retries with
``proxy_next_upstream``, timeouts, fault abort with ``split_clients``). Config: templates/nginx.conf.j2.
A scenario change is ``SIGHUP`` (graceful reload), in effect once the admin port reports the new
generation and every old worker has exited. Certificates rotate without reload: the SVID path is a
variable, so nginx reads the file on every handshake.

How nginx expresses what it has no directive for:
- the caller's URI SAN: nginx 1.22 has no variable for it, so ``map`` matches the PEM of the verified
  client certificate against the exact bytes of a URI SAN entry (thirdparty/san_patterns.py);
- PERMISSIVE: a plaintext request on the TLS port is nginx's error 497, handled as a plain request;
- a retry to the same endpoint: ``proxy_next_upstream`` only moves to *another* server of the
  upstream, so each server is listed attempts+1 times (max_fails=0, so copies do not eject each other);
- server identity: ``proxy_ssl_name`` checks the destination's CN ``<service>.<ns>.svc`` (OpenSSL's CN
  fallback; the SVID has no DNS SAN), not its URI SAN.
Differences the checks will show: ``proxy_next_upstream`` names only 403/404/429/500/502/503/504 (no
409, no 501), and ``error`` cannot tell a reset from a connect failure; the route timeout bounds when
a new try may start (``proxy_next_upstream_timeout``), not a try in flight.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import jinja2

from harness.adapters.base import Implementation
from harness.adapters.kit import FeatureClaims
from harness.adapters.thirdparty.adapter import ThirdPartyAdapter, command_output
from harness.adapters.thirdparty.runtime import run_check
from harness.adapters.thirdparty.san_patterns import pem_pattern, uri_prefix_bytes, uri_san_bytes
from harness.adapters.thirdparty.topology import DestinationView, HeaderCondition, ProxyView, RouteView, \
    with_weights_capped
from harness.features import Feature
from meshruntime.processes import ManagedProcess

NEXT_UPSTREAM_STATUSES = {403, 404, 429, 500, 502, 503, 504}  # what proxy_next_upstream can name
_NEXT_UPSTREAM = {
    "5xx": ["error", "timeout", "http_500", "http_502", "http_503", "http_504"],
    "gateway-error": ["http_502", "http_503", "http_504"],
    "reset": ["error"],
    "connect-failure": ["error"],
}

FEATURES = FeatureClaims.of("nginx", supported=[
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
    Feature.RETRIES,
    Feature.CIRCUIT_BREAKING,  # max_conns per server (rendered; no queue in open source: the checks say how it differs)
    Feature.PER_TRY_TIMEOUT,
    Feature.REQUEST_TIMEOUT,
    Feature.FAULT_INJECTION_ABORT,
    Feature.CHAOS_PARTITION,  # HopInterposer + ProcessControl of the third-party runtime; suites/chaos pass
    Feature.CHAOS_SIDECAR_RESTART,
    Feature.LATENCY_OVERHEAD,
    Feature.THROUGHPUT,
    Feature.CONFIG_PROPAGATION,
    Feature.RESOURCE_USE,
    Feature.HARDENING_SMUGGLING,  # suites/hardening: every check passes (501 for an unknown coding is RFC 9112's)
    Feature.HARDENING_DUPLICATE_HOST,
    Feature.HARDENING_TRAILERS,
    Feature.HARDENING_CONNECT,
    # ConnectionFlood passes; SlowClients, TlsGarbage and Limits are claimed and FAIL, findings about nginx's
    # defaults as this adapter renders them: client_header_timeout and client_body_timeout 60 s (slowloris,
    # a stalled head, an idle body and a truncated ClientHello all outlast the check's 30 s), and a huge
    # header or 5000 headers get 400 "Request Header Or Cookie Too Large", not 431 (nothing is forwarded)
    Feature.HARDENING_SLOW_CLIENTS,
    Feature.HARDENING_CONNECTION_FLOOD,
    Feature.HARDENING_TLS_GARBAGE,
    Feature.HARDENING_LIMITS,
    Feature.HARDENING_KEEPS_SERVING,
    Feature.ACCESS_LOGS,  # log_format escape=json to <work_dir>/access.log (templates/nginx.conf.j2)
], reasons={
    Feature.RETRY_BACKOFF: "nginx open source has no retry backoff: proxy_next_upstream tries the next server at once",
    Feature.FAULT_INJECTION_DELAY: "nginx open source has no action that delays a share of requests",
    Feature.HEALTH_CHECK_ACTIVE: "nginx open source has no active health checks (the health_check directive is "
                                 "NGINX Plus only; open source has only passive max_fails/fail_timeout)",
    Feature.CIRCUIT_BREAKING_RETRIES: "nginx has no limit on concurrent retries (proxy_next_upstream_tries is per request)",
    Feature.OUTLIER_DETECTION: "not rendered: max_fails/fail_timeout counts failures in a window (not consecutive "
                               "5xx) and has no max_ejection_percent",
    Feature.HEALTH_CHECK_PASSIVE: "not rendered (max_fails/fail_timeout, see OutlierDetection)",
    Feature.CHAOS_UPSTREAM_KILL: "the check routes around a killed upstream by active health checks, which nginx "
                                 "open source lacks (see HealthCheckActive)",
    Feature.CHAOS_CONTROL_PLANE_KILL: "nginx has no control plane: configuration is a file the adapter renders",
    Feature.CHAOS_SLOW_NETWORK: "over a slow hop nginx's route timeout fires late: 504 after 1.5 s for a 0.3 s "
                                "timeout behind a hop adding 0.6 s to every answer and handshake "
                                "(MeshChaosSlowNetworkRouteTimeout fails; the per-try and bandwidth checks pass)",
    Feature.METRICS: "nginx open source counts only totals (stub_status: connections and requests): no count per "
                     "response code, destination or source workload, no retries or overflows",
    Feature.TRACING: "nginx 1.22 open source neither propagates W3C trace context nor reports spans by itself "
                     "(that takes a module such as ngx_otel, which Debian's nginx-light lacks)",
    Feature.SERVICE_GRAPH: "nginx open source has no per-source or per-destination counters to draw a service "
                           "graph from",
})


def _field(h: HeaderCondition | None) -> str:
    if h is None:
        return "[^|]*"
    if h.kind == "exact":
        return re.escape(h.value or "")
    if h.kind == "prefix":
        return re.escape(h.value or "") + "[^|]*"
    if h.kind == "regex":
        return f"(?:{h.value})"
    return "[^|]+"  # present: nginx cannot tell an empty header from an absent one


def match_headers(view: ProxyView) -> list[str]:
    return sorted({h.name for d in view.destinations for r in d.routes for h in r.headers})


def route_regex(view: ProxyView, d: DestinationView, r: RouteView) -> str:
    """Regex over "dest|h1|h2...|request URI" for route ``r``; header names in match_headers order."""
    conditions = {h.name: h for h in r.headers}
    fields = "".join(r"\|" + _field(conditions.get(name)) for name in match_headers(view))
    return "^" + re.escape(d.service) + fields + r"\|" + re.escape(r.path_prefix)


def next_upstream(route: RouteView) -> str:
    words: list[str] = []
    for condition in route.retry_on:
        words += _NEXT_UPSTREAM.get(condition, [])
    words += [f"http_{c}" for c in route.retry_codes if c in NEXT_UPSTREAM_STATUSES]
    if route.per_try_timeout_ms:
        words.append("timeout")
    words.append("non_idempotent")  # Envoy retries any method
    return " ".join(dict.fromkeys(words))


def percent(per_million: int) -> str:
    return f"{per_million / 10_000:.2f}".rstrip("0").rstrip(".")


_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                          trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                          keep_trailing_newline=True)


def _nginx_string(pattern: str) -> str:
    # inside a double-quoted nginx string a backslash escapes only '"' and '\\': keep regex escapes intact
    return pattern.replace('"', r'\"')


HASH_MAX_WEIGHT = 256  # consistent hash places 160 points per unit of weight: keep the ring small


def render_nginx(view: ProxyView) -> str:
    view = with_weights_capped(view, HASH_MAX_WEIGHT, policies=("ring_hash",))
    allowed = view.allowed_principals or ()
    allowed_patterns = ([pem_pattern(uri_prefix_bytes(f"spiffe://{view.trust_domain}/"))] if "*" in allowed
                        else [pem_pattern(uri_san_bytes(p)) for p in allowed])
    return _ENV.get_template("nginx.conf.j2").render(
        v=view, run_as_root=os.geteuid() == 0, match_headers=match_headers(view), next_upstream=next_upstream, percent=percent,
        route_regex=lambda d, r: _nginx_string(route_regex(view, d, r)),
        trust_domain_pattern=pem_pattern(uri_prefix_bytes(f"spiffe://{view.trust_domain}/")),
        principal_patterns=[(p, pem_pattern(uri_san_bytes(p))) for p in view.known_principals],
        allowed_patterns=allowed_patterns or ["^NEVER$"])


class NginxFlavor:
    name = "nginx"
    config_name = "nginx.conf"

    def render(self, view: ProxyView) -> str:
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (Path(view.work_dir) / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        return render_nginx(view)

    def argv(self, binary: str, config: Path) -> list[str]:
        return [binary, "-e", "stderr", "-p", str(config.parent), "-c", str(config)]

    def reload(self, proc: ManagedProcess, binary: str, config: Path) -> None:
        proc.popen.send_signal(signal.SIGHUP)

    def certificate_renewed(self, view: ProxyView) -> None:
        """Nothing to do: the next handshake reads the renewed file."""

    def check(self, binary: str, config: Path) -> None:
        run_check([binary, "-t", "-q", "-e", "stderr", "-p", str(config.parent), "-c", str(config)])


class NginxAdapter(ThirdPartyAdapter):
    name = "nginx"
    binary_name = "nginx"
    FEATURES = FEATURES

    def flavor(self) -> NginxFlavor:
        return NginxFlavor()

    def access_log_path(self, mesh, workload: str) -> Path:
        return mesh.work_dir(workload) / "access.log"  # templates/nginx.conf.j2: access_log

    def implementation(self) -> Implementation:
        version = "unknown"
        try:
            version = command_output([self.binary(), "-v"]).split("/", 1)[1].split()[0]
        except (RuntimeError, IndexError, OSError):
            pass
        return Implementation(organization="nginx (F5)", project="nginx open source (meshconform sidecar adapter)",
                              url="https://nginx.org/", version=version)
