"""The pure parts of the observability harness: Prometheus series → normalised counters, access-log
lines → records, spans → dependency links, counters → service-graph edges."""

from __future__ import annotations

import json

from harness.observability.access_log import parse_access_log
from harness.observability.dependencies import links
from harness.observability.graph import edge_problems, edges_from_metrics, graph_plot_data, subset
from harness.observability.metrics import DestinationCounters, MetricsSnapshot, RequestKey, request_count_problems
from harness.observability.prometheus import parse_metrics
from harness.observability.zipkin_model import parse_spans

EXPOSITION = """\
# HELP istio_requests_total Requests.
# TYPE istio_requests_total counter
istio_requests_total{reporter="source",source_workload="client-v1-0",destination_workload="metrics-v1-0",response_code="200",response_flags="-"} 12
istio_requests_total{reporter="source",source_workload="client-v1-0",destination_workload="metrics-v1-0",response_code="200",response_flags="URX"} 1
istio_requests_total{reporter="source",source_workload="client-v1-0",destination_workload="unknown",response_code="404",response_flags="NR"} 1
istio_requests_total{reporter="destination",source_workload="client-v1-0",destination_workload="metrics-v1-0",response_code="503"} 7
# TYPE envoy_cluster_upstream_rq_retry counter
envoy_cluster_upstream_rq_retry{cluster_name="metrics"} 7
envoy_cluster_upstream_rq_total{cluster_name="metrics"} 20
envoy_cluster_upstream_rq_pending_overflow{cluster_name="metrics-cb"} 1
envoy_cluster_outlier_detection_ejections_enforced_total{cluster_name="metrics"} 2
# TYPE istio_request_duration_milliseconds histogram
istio_request_duration_milliseconds_bucket{reporter="source",le="+Inf"} 13
istio_request_duration_milliseconds_count{reporter="source"} 13
meshproxy_requests_total 99
"""


def key(reporter, dest, code, source="client-v1-0"):
    return RequestKey(reporter, source, dest, code)


def test_istio_and_envoy_series_are_normalised_and_other_labels_summed():
    snapshot = parse_metrics(EXPOSITION)
    assert snapshot.requests == {key("source", "metrics-v1-0", 200): 13, key("source", "unknown", 404): 1,
                                 key("destination", "metrics-v1-0", 503): 7}
    assert snapshot.destinations == {
        "metrics": DestinationCounters(upstream_requests=20, retries=7, ejections=2),
        "metrics-cb": DestinationCounters(overflows=1)}


def test_a_delta_keeps_only_what_changed_and_counts_are_compared_exactly():
    before = parse_metrics(EXPOSITION)
    after = parse_metrics(EXPOSITION.replace("} 12", "} 15").replace('"metrics"} 7', '"metrics"} 8'))
    delta = after.minus(before)
    assert delta.requests == {key("source", "metrics-v1-0", 200): 3}
    assert delta.destinations == {"metrics": DestinationCounters(retries=1)}
    assert request_count_problems(delta.requests, {key("source", "metrics-v1-0", 200): 3}) == []
    problems = request_count_problems(delta.requests, {key("source", "metrics-v1-0", 200): 4})
    assert problems == ["source: client-v1-0 -> metrics-v1-0 200: mesh counted 3, ground truth 4"]


def test_access_log_lines_become_records_and_bad_lines_are_reported():
    line = {"start_time": "2026-12-04T04:00:00.123Z", "direction": "outbound", "method": "GET", "path": "/r/1",
            "response_code": 503, "response_flags": "URX,UF", "x_request_id": "r1", "duration": 1.5,
            "attempts": 2, "upstream_cluster": "logged", "trace_id": None}
    records, problems = parse_access_log([json.dumps(line), "", "{not json", json.dumps([1])], "client-v1-0")
    assert len(records) == 1 and len(problems) == 2
    r = records[0]
    assert (r.workload, r.direction, r.response_code, r.response_flags, r.attempts) == \
        ("client-v1-0", "outbound", 503, ("UF", "URX"), 2)
    assert "line 3" in problems[0] and "line 4" in problems[1]
    assert parse_access_log([json.dumps(line | {"response_flags": "-"})], "w")[0][0].response_flags == ()


def _spans(*spans):
    return parse_spans(json.dumps(list(spans)).encode())


def _span(id_, service, parent=None, kind="CLIENT", **extra):
    s = {"traceId": "a" * 32, "id": id_, "kind": kind, "localEndpoint": {"serviceName": service}} | extra
    return s | ({"parentId": parent} if parent else {})


def test_dependency_links_come_from_parent_child_spans_of_two_services():
    spans = _spans(_span("1" * 16, "a"), _span("2" * 16, "b", parent="1" * 16, kind="SERVER"),
                   _span("3" * 16, "b", parent="2" * 16),  # b calls c: c's server span errs
                   _span("4" * 16, "c", parent="3" * 16, kind="SERVER", tags={"http.status_code": "503"}),
                   _span("5" * 16, "a", remoteEndpoint={"serviceName": "d"}))  # d reported nothing
    assert [link.to_json() for link in links(spans)] == [
        {"parent": "a", "child": "b", "callCount": 1, "errorCount": 0},
        {"parent": "a", "child": "d", "callCount": 1, "errorCount": 0},
        {"parent": "b", "child": "c", "callCount": 1, "errorCount": 1}]


def test_service_graph_edges_and_their_comparison():
    snapshot = MetricsSnapshot({key("destination", "x-v1-0", 200, source="a-v1-0"): 3,
                                key("destination", "x-v1-0", 503, source="a-v1-0"): 1,
                                key("source", "x-v1-0", 200, source="a-v1-0"): 4,
                                key("destination", "z-v1-0", 200, source="q-v1-0"): 9})
    edges = subset(edges_from_metrics(snapshot, "destination"), ["a-v1-0", "x-v1-0"])
    assert edges == {("a-v1-0", "x-v1-0"): 4}
    assert edge_problems(edges, {("a-v1-0", "x-v1-0"): 4}, who="d") == []
    assert edge_problems(edges, {("b-v1-0", "x-v1-0"): 4}, who="d") == [
        "edge a-v1-0 -> x-v1-0 (d): mesh's telemetry says 4, the test made 0 calls",
        "edge b-v1-0 -> x-v1-0 (d): mesh's telemetry says 0, the test made 4 calls"]
    data = graph_plot_data(edges, {("b-v1-0", "x-v1-0"): 4})
    assert data["nodes"] == ["a-v1-0", "b-v1-0", "x-v1-0"]
    assert data["edges"][1] == {"source": "b-v1-0", "target": "x-v1-0", "count": 0, "expected": 4}
