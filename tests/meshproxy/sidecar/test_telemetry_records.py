"""Pure telemetry pieces: response flags, access-log records, Zipkin spans, the Istio metric series."""

from prometheus_client.parser import text_string_to_metric_families

from meshproxy.policy.tracecontext import Span
from meshproxy.sidecar.istio_metrics import BUCKETS, IstioMetrics
from meshproxy.sidecar.records import access_record, join_flags, rfc3339_ms, zipkin_span

SPAN = Span(b"0af7651916cd43dd8448eb211c80319c", b"b7ad6b7169203331", None, True)


def test_flags_join_in_order_and_dash_when_none():
    assert join_flags() == "-" and join_flags("-", "") == "-"
    assert join_flags("DI", "-", "UF", "URX") == "DI,UF,URX"


def test_start_time_is_rfc3339_utc_with_ms():
    assert rfc3339_ms(0.5) == "1970-01-01T00:00:00.500Z"


def test_access_record_fields():
    record = access_record(start_epoch=1.0, direction="outbound", method=b"GET", path=b"/a?b=1",
                           authority=b"backend", code=503, flags="URX", bytes_received=3, bytes_sent=7,
                           duration_s=0.0125, upstream_s=None, attempts=2, request_id=b"rid", span=SPAN,
                           upstream_host="127.0.0.2:15006", upstream_cluster="backend", downstream="127.0.0.1:5",
                           source_workload="client-v1-0", destination_workload="backend-v1-0")
    assert record["duration"] == 12.5 and record["upstream_service_time"] is None
    assert (record["trace_id"], record["span_id"]) == (SPAN.trace_id.decode(), SPAN.span_id.decode())
    assert set(record) == {"start_time", "direction", "method", "path", "protocol", "authority", "response_code",
                           "response_flags", "bytes_received", "bytes_sent", "duration", "upstream_service_time",
                           "attempts", "x_request_id", "trace_id", "span_id", "upstream_host", "upstream_cluster",
                           "downstream_remote_address", "source_workload", "destination_workload"}


def test_zipkin_span_shape():
    common = dict(kind="SERVER", authority=b"backend", start_epoch=2.0, duration_s=0.0, local_service="b.default",
                  local_address="127.0.0.2:15006", remote_address=None, method=b"GET", path=b"/", code=200,
                  flags="-", upstream_cluster="backend", node_id="b-v1-0", request_id=None,
                  canonical_service="b", peer_address=None)
    root = zipkin_span(span=SPAN, **common)
    assert "parentId" not in root and "remoteEndpoint" not in root
    assert root["duration"] == 1 and root["timestamp"] == 2_000_000 and root["shared"] is False
    assert root["localEndpoint"] == {"serviceName": "b.default", "ipv4": "127.0.0.2", "port": 15006}
    assert all(isinstance(v, str) for v in root["tags"].values())
    child = zipkin_span(span=SPAN._replace(parent_id=b"1111111111111111"), **{**common, "remote_address": "1.2.3.4:80"})
    assert child["parentId"] == "1111111111111111" and child["remoteEndpoint"] == {"ipv4": "1.2.3.4", "port": 80}


def test_istio_series_render_as_valid_prometheus_with_cumulative_buckets():
    m = IstioMetrics("client-v1-0", "client", "spiffe://td/ns/default/sa/client")
    for ms in (0.2, 0.5, 3, 4000, 10 ** 7):
        m.record_source("client-v1-0", "backend", "spiffe://td/ns/default/sa/backend", "backend-v1-0", 200, "-", ms)
    m.cluster("backend").upstream_rq_retry += 2
    families = {f.name: f for f in text_string_to_metric_families("\n".join(m.prometheus()) + "\n")}
    buckets = {s.labels["le"]: s.value for s in families["istio_request_duration_milliseconds"].samples
               if s.name.endswith("_bucket")}
    assert buckets["0.5"] == 2 and buckets["5"] == 3 and buckets["5000"] == 4 and buckets["+Inf"] == 5
    assert len(buckets) == len(BUCKETS) + 1
    total = [s for s in families["istio_requests"].samples if s.name == "istio_requests_total"]
    assert total[0].value == 5 and total[0].labels["request_protocol"] == "http"
    retry = [s for s in families["envoy_cluster_upstream_rq_retry"].samples]
    assert retry[0].value == 2 and retry[0].labels == {"cluster_name": "backend"}
