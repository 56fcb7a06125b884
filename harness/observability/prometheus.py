"""Istio's and Envoy's Prometheus series → :class:`~harness.observability.metrics.MetricsSnapshot`.

The text is parsed by ``prometheus_client``'s parser (never by hand). Read:
``istio_requests_total{reporter, source_workload, destination_workload, response_code}`` (other labels
summed over), and per ``cluster_name``: ``envoy_cluster_upstream_rq_total``, ``_upstream_rq_retry``,
``_upstream_rq_pending_overflow``, ``_outlier_detection_ejections_enforced_total``,
``_health_check_failure``, ``_upstream_rq_timeout``. A counter may be exposed with or without the
``_total`` suffix.
"""

from __future__ import annotations

from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

from harness.observability.metrics import DestinationCounters, MetricsSnapshot, RequestKey, UNKNOWN

REQUESTS = "istio_requests_total"
CLUSTER_COUNTERS = {
    "envoy_cluster_upstream_rq_total": "upstream_requests",
    "envoy_cluster_upstream_rq_retry": "retries",
    "envoy_cluster_upstream_rq_pending_overflow": "overflows",
    "envoy_cluster_outlier_detection_ejections_enforced_total": "ejections",
    "envoy_cluster_health_check_failure": "health_check_failures",
    "envoy_cluster_upstream_rq_timeout": "timeouts",
}


def _base(name: str) -> str:
    return name[:-len("_total")] if name.endswith("_total") else name


_CLUSTER_BY_BASE = {_base(k): v for k, v in CLUSTER_COUNTERS.items()}


def parse_metrics(text: str) -> MetricsSnapshot:
    requests: dict[RequestKey, int] = defaultdict(int)
    clusters: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name.endswith("_created"):
                continue
            if _base(name) == _base(REQUESTS):
                labels = sample.labels
                code = labels.get("response_code", "0")
                key = RequestKey(labels.get("reporter", UNKNOWN), labels.get("source_workload", UNKNOWN),
                                 labels.get("destination_workload", UNKNOWN), int(code) if code.isdigit() else 0)
                requests[key] += int(sample.value)
            elif _base(name) in _CLUSTER_BY_BASE and "cluster_name" in sample.labels:
                clusters[sample.labels["cluster_name"]][_CLUSTER_BY_BASE[_base(name)]] += int(sample.value)
    return MetricsSnapshot(dict(requests), {c: DestinationCounters(**v) for c, v in clusters.items()})
