"""The sidecar's own counters, read by the admin API as JSON (/stats) and Prometheus text (/metrics).

Plain ints on one object: an increment on the hot path is one attribute add (~30 ns), and the event
loop is single-threaded, so nothing needs a lock.
"""

from __future__ import annotations

from collections import Counter

from meshproxy.sidecar.istio_metrics import IstioMetrics


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()  # (direction, status) -> count
        self.retries = 0
        self.pending_overflow = 0
        self.outlier_ejections = 0
        self.faults: Counter[str] = Counter()  # "delay" | "abort"
        self.timeouts = 0
        self.tls_handshake_failures = 0
        self.authz_denied = 0
        self.cert_rotations = 0
        self.downstream_connections = 0
        self.upstream_connections_opened = 0
        # the Istio- and Envoy-named series (the sidecar names its workload once it knows it)
        self.istio = IstioMetrics("unknown", "unknown", "unknown")
        self.spans_reported = 0
        self.spans_dropped = 0
        self.spans_failed = 0
        self.access_log_lines = 0

    def stats(self) -> dict:
        return {
            "requests": {f"{d}.{code}": n for (d, code), n in sorted(self.requests.items())},
            "upstream_rq_retry": self.retries,
            "upstream_rq_pending_overflow": self.pending_overflow,
            "outlier_ejections": self.outlier_ejections,
            "faults": dict(self.faults),
            "upstream_rq_timeout": self.timeouts,
            "tls_handshake_failures": self.tls_handshake_failures,
            "authz_denied": self.authz_denied,
            "cert_rotations": self.cert_rotations,
            "downstream_connections": self.downstream_connections,
            "upstream_connections_opened": self.upstream_connections_opened,
        }

    def prometheus(self) -> str:
        lines = ["# TYPE meshproxy_requests_total counter"]
        lines += [f'meshproxy_requests_total{{direction="{d}",code="{code}"}} {n}'
                  for (d, code), n in sorted(self.requests.items())]
        lines.append("# TYPE meshproxy_fault_total counter")
        lines += [f'meshproxy_fault_total{{kind="{k}"}} {n}' for k, n in sorted(self.faults.items())]
        for name, value in (
            ("meshproxy_upstream_rq_retry_total", self.retries),
            ("meshproxy_upstream_rq_pending_overflow_total", self.pending_overflow),
            ("meshproxy_outlier_ejections_total", self.outlier_ejections),
            ("meshproxy_upstream_rq_timeout_total", self.timeouts),
            ("meshproxy_tls_handshake_failures_total", self.tls_handshake_failures),
            ("meshproxy_authz_denied_total", self.authz_denied),
            ("meshproxy_cert_rotations_total", self.cert_rotations),
            ("meshproxy_upstream_connections_opened_total", self.upstream_connections_opened),
            ("meshproxy_tracing_spans_reported_total", self.spans_reported),
            ("meshproxy_tracing_spans_dropped_total", self.spans_dropped),
            ("meshproxy_tracing_spans_failed_total", self.spans_failed),
            ("meshproxy_access_log_lines_total", self.access_log_lines),
        ):
            lines += [f"# TYPE {name} counter", f"{name} {value}"]
        lines += ["# TYPE meshproxy_downstream_connections gauge",
                  f"meshproxy_downstream_connections {self.downstream_connections}"]
        lines += self.istio.prometheus()
        return "\n".join(lines) + "\n"
