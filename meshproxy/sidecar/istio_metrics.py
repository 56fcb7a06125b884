"""The series real meshes export, by Istio's and Envoy's names (docs/architecture.md "Telemetry").

Plain counters keyed by label tuples, rendered to Prometheus text (format 0.0.4) only at scrape time:
recording a request is one dict lookup and a ``bisect``. The event loop is single-threaded.

- ``istio_requests_total`` and ``istio_request_duration_milliseconds`` with Istio's standard labels
  (reporter "source": the caller's outbound; "destination": the callee's inbound).
- ``envoy_cluster_*`` per destination service (``cluster_name``): a ``ClusterStats`` of plain ints that
  the destination's outbound state increments.
"""

from __future__ import annotations

from bisect import bisect_left

# Istio's default request-duration buckets (ms); +Inf follows
BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
           1800000, 3600000)
_N = len(BUCKETS) + 1  # bucket counts (the last is +Inf), then sum, then count

SOURCE_LABELS = ("source_workload", "destination_service_name", "destination_principal", "destination_workload",
                 "response_code", "response_flags")
DESTINATION_LABELS = ("source_workload", "source_canonical_service", "source_principal", "response_code",
                      "response_flags", "connection_security_policy")


class ClusterStats:
    """Envoy's per-cluster counters of one destination service."""

    __slots__ = ("upstream_rq_total", "upstream_rq_retry", "upstream_rq_pending_overflow",
                 "outlier_detection_ejections_enforced_total", "health_check_failure", "upstream_rq_timeout")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: tuple[tuple[str, object], ...]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)


class IstioMetrics:
    """One dict per reporter, keyed by the full label tuple; the value is the duration histogram
    (non-cumulative bucket counts, then sum, then count), whose count is also ``istio_requests_total``:
    one dict lookup and three list updates per request."""

    def __init__(self, workload: str, service: str, principal: str):
        self.workload, self.service, self.principal = workload, service, principal
        self.source: dict[tuple, list] = {}       # SOURCE_LABELS values -> histogram
        self.destination: dict[tuple, list] = {}  # DESTINATION_LABELS values -> histogram
        self.clusters: dict[str, ClusterStats] = {}

    def cluster(self, name: str) -> ClusterStats:
        stats = self.clusters.get(name)
        if stats is None:
            stats = self.clusters[name] = ClusterStats()
        return stats

    def record_source(self, source_workload: str, service: str, principal: str, workload: str, code: int,
                      flags: str, ms: float) -> None:
        key = (source_workload, service, principal, workload, code, flags)
        histogram = self.source.get(key)
        if histogram is None:
            histogram = self.source[key] = [0] * _N + [0.0, 0]
        histogram[bisect_left(BUCKETS, ms)] += 1
        histogram[_N] += ms
        histogram[_N + 1] += 1

    def record_destination(self, source_workload: str, source_service: str, source_principal: str, code: int,
                           flags: str, security: str, ms: float) -> None:
        key = (source_workload, source_service, source_principal, code, flags, security)
        histogram = self.destination.get(key)
        if histogram is None:
            histogram = self.destination[key] = [0] * _N + [0.0, 0]
        histogram[bisect_left(BUCKETS, ms)] += 1
        histogram[_N] += ms
        histogram[_N + 1] += 1

    def durations(self) -> dict[tuple, list]:
        """The histograms by Istio's duration labels (reporter, source_workload, destination_workload,
        destination_service_name, response_code), summed over the other labels."""
        out: dict[tuple, list] = {}
        for (src, service, _, workload, code, _), h in self.source.items():
            _add(out, ("source", src, workload, service, code), h)
        for (src, _, _, code, _, _), h in self.destination.items():
            _add(out, ("destination", src, self.workload, self.service, code), h)
        return out

    # -- scrape ---------------------------------------------------------------------------------------
    def prometheus(self) -> list[str]:
        lines = ["# TYPE istio_requests_total counter"]
        for (src, service, principal, workload, code, flags), h in sorted(self.source.items()):
            lines.append("istio_requests_total{%s} %d" % (_labels((
                ("reporter", "source"), ("source_workload", src), ("source_canonical_service", self.service),
                ("source_principal", self.principal), ("destination_workload", workload),
                ("destination_service_name", service), ("destination_canonical_service", service),
                ("destination_principal", principal), ("request_protocol", "http"), ("response_code", code),
                ("response_flags", flags), ("connection_security_policy", "unknown"))), h[_N + 1]))
        for (src, src_service, src_principal, code, flags, security), h in sorted(self.destination.items()):
            lines.append("istio_requests_total{%s} %d" % (_labels((
                ("reporter", "destination"), ("source_workload", src), ("source_canonical_service", src_service),
                ("source_principal", src_principal), ("destination_workload", self.workload),
                ("destination_service_name", self.service), ("destination_canonical_service", self.service),
                ("destination_principal", self.principal), ("request_protocol", "http"), ("response_code", code),
                ("response_flags", flags), ("connection_security_policy", security))), h[_N + 1]))
        name = "istio_request_duration_milliseconds"
        lines.append(f"# TYPE {name} histogram")
        for (reporter, src, workload, service, code), h in sorted(self.durations().items()):
            base = _labels((("reporter", reporter), ("source_workload", src), ("destination_workload", workload),
                            ("destination_service_name", service), ("response_code", code)))
            cumulative = 0
            for bound, count in zip(BUCKETS, h):
                cumulative += count
                lines.append(f'{name}_bucket{{{base},le="{bound}"}} {cumulative}')
            lines.append(f'{name}_bucket{{{base},le="+Inf"}} {h[_N + 1]}')
            lines.append(f"{name}_sum{{{base}}} {h[_N]:.3f}")
            lines.append(f"{name}_count{{{base}}} {h[_N + 1]}")
        for field in ClusterStats.__slots__:
            series = f"envoy_cluster_{field}"
            lines.append(f"# TYPE {series} counter")
            lines += [f'{series}{{cluster_name="{_escape(c)}"}} {getattr(s, field)}'
                      for c, s in sorted(self.clusters.items())]
        return lines


def _add(out: dict[tuple, list], key: tuple, histogram: list) -> None:
    total = out.get(key)
    if total is None:
        out[key] = list(histogram)
    else:
        for i, value in enumerate(histogram):
            total[i] += value
