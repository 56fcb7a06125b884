"""The harness's Zipkin v2 collector over real HTTP on loopback: the write side (valid spans 202, gzip,
bad bodies 400 naming the field, never 500), the read API, and a clean stop."""

from __future__ import annotations

import gzip
import json
import socket
import urllib.error
import urllib.request

import pytest

from harness.observability.zipkin_served import ZipkinCollector, parse_listen

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def span(id_: str, *, parent: str | None = None, service: str = "client.default", kind: str = "CLIENT",
         ts: int = 1_700_000_000_000_000, duration: int = 900, trace: str = TRACE, **extra) -> dict:
    s = {"traceId": trace, "id": id_, "kind": kind, "name": "traced/*", "timestamp": ts, "duration": duration,
         "localEndpoint": {"serviceName": service, "ipv4": "127.0.0.1", "port": 15001},
         "tags": {"http.status_code": "200"}, "shared": False} | extra
    if parent:
        s["parentId"] = parent
    return s


CLIENT_SPAN = span("00f067aa0ba902b7")
SERVER_SPAN = span("53995c3f42cd8ad8", parent="00f067aa0ba902b7", service="traced.default", kind="SERVER",
                   ts=1_700_000_000_000_100, duration=500)


@pytest.fixture(scope="module")
def zipkin():
    with ZipkinCollector.start("127.0.0.1:0") as collector:
        yield collector


@pytest.fixture(autouse=True)
def empty(zipkin):
    zipkin.store.clear()


def post(zipkin, body: bytes, headers: dict | None = None) -> tuple[int, dict | None]:
    request = urllib.request.Request(zipkin.url + "/api/v2/spans", data=body, method="POST",
                                     headers={"Content-Type": "application/json"} | (headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get(zipkin, path: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(zipkin.url + path, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_spans_are_accepted_and_read_back_by_trace_id(zipkin):
    assert post(zipkin, json.dumps([CLIENT_SPAN, SERVER_SPAN]).encode()) == (202, None)
    status, spans = get(zipkin, f"/api/v2/trace/{TRACE}")
    assert status == 200
    assert [s["id"] for s in spans] == [CLIENT_SPAN["id"], SERVER_SPAN["id"]]  # ordered by timestamp
    assert spans[1]["parentId"] == CLIENT_SPAN["id"] and spans[1]["kind"] == "SERVER"
    assert spans[0]["localEndpoint"] == CLIENT_SPAN["localEndpoint"] and spans[0]["tags"] == CLIENT_SPAN["tags"]
    assert [s.id for s in zipkin.client().trace(TRACE)] == [CLIENT_SPAN["id"], SERVER_SPAN["id"]]


def test_a_gzip_body_is_accepted(zipkin):
    body = gzip.compress(json.dumps([CLIENT_SPAN]).encode())
    assert post(zipkin, body, {"Content-Encoding": "gzip"}) == (202, None)
    assert len(zipkin.client().trace(TRACE)) == 1


@pytest.mark.parametrize("body, field", [
    (b"{}", "(body)"),
    (b"not json", "(body)"),
    (b"[NaN]", "(body)"),
    (b"\xff\xfe", "(body)"),
    (json.dumps([{"id": "00f067aa0ba902b7"}]).encode(), "[0].traceId"),
    (json.dumps([span("00F067AA0BA902B7")]).encode(), "[0].id"),  # the schema's ids are lower-case hex
    (json.dumps([CLIENT_SPAN, span("53995c3f42cd8ad8", kind="SIDEWAYS")]).encode(), "[1].kind"),
    (json.dumps([span("00f067aa0ba902b7", duration=0)]).encode(), "[0].duration"),
    (json.dumps([span("00f067aa0ba902b7", timestamp="now")]).encode(), "[0].timestamp"),
    (json.dumps([span("00f067aa0ba902b7", tags={"n": 1})]).encode(), "[0].tags.n"),
    (json.dumps([span("00f067aa0ba902b7", localEndpoint={"port": 70000})]).encode(), "[0].localEndpoint.port"),
    (json.dumps([span("00f067aa0ba902b7", colour="red")]).encode(), "[0].colour"),
])
def test_a_bad_body_is_a_400_naming_the_field(zipkin, body, field):
    status, error = post(zipkin, body)
    assert status == 400, error
    assert error["field"] == field and error["error"].startswith(field)
    assert zipkin.store.accepted == 0 or not zipkin.client().trace(TRACE)


def test_a_corrupt_gzip_body_and_a_wrong_content_type_are_4xx(zipkin):
    status, error = post(zipkin, b"not gzip at all", {"Content-Encoding": "gzip"})
    assert status == 400 and error["field"] == "Content-Encoding"
    status, error = post(zipkin, b"[]", {"Content-Type": "application/x-thrift"})
    assert status == 415 and error["field"] == "Content-Type"


def test_services_traces_and_dependencies(zipkin):
    other = span("1111111111111111", trace="a" * 32, service="caller-a.default")
    assert post(zipkin, json.dumps([CLIENT_SPAN, SERVER_SPAN, other]).encode())[0] == 202
    assert get(zipkin, "/api/v2/services") == (200, ["caller-a.default", "client.default", "traced.default"])
    status, traces = get(zipkin, "/api/v2/traces?serviceName=traced.default")
    assert status == 200 and [[s["id"] for s in t] for t in traces] == [[CLIENT_SPAN["id"], SERVER_SPAN["id"]]]
    assert get(zipkin, "/api/v2/traces?serviceName=nobody")[1] == []
    assert len(get(zipkin, "/api/v2/traces?limit=1")[1]) == 1
    assert get(zipkin, "/api/v2/spans?serviceName=client.default") == (200, ["traced/*"])
    status, links = get(zipkin, "/api/v2/dependencies?endTs=1800000000000&lookback=200000000000")
    assert (status, links) == (200, [{"parent": "client.default", "child": "traced.default", "callCount": 1,
                                      "errorCount": 0}])
    assert get(zipkin, "/api/v2/dependencies?endTs=1000")[1] == []  # before every span


@pytest.mark.parametrize("path, field", [
    ("/api/v2/traces?limit=x", "limit"), ("/api/v2/traces?limit=0", "limit"),
    ("/api/v2/dependencies?endTs=yesterday", "endTs"), ("/api/v2/trace/xyz", "traceId"),
    ("/api/v2/spans", "serviceName"),
])
def test_bad_queries_are_400_naming_the_parameter(zipkin, path, field):
    status, error = get(zipkin, path)
    assert status == 400 and error["field"] == field


def test_an_unknown_trace_is_404(zipkin):
    status, error = get(zipkin, f"/api/v2/trace/{'b' * 32}")
    assert status == 404 and "not found" in error["error"]


def test_the_collector_listens_on_loopback_only_and_leaves_nothing_when_stopped():
    with pytest.raises(ValueError, match="loopback"):
        parse_listen("10.0.0.1:9411")
    with pytest.raises(ValueError, match="IP:PORT"):
        parse_listen("localhost")
    collector = ZipkinCollector.start("127.0.0.1:0")
    host, port = collector.address.rsplit(":", 1)
    assert get(collector, "/health")[0] == 200
    collector.stop()
    collector.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1).close()
    assert collector._thread is None


def test_a_taken_port_is_a_clear_error(zipkin):
    with pytest.raises(RuntimeError, match="could not listen"):
        ZipkinCollector.start(zipkin.address)


def test_meshconform_zipkin_serve_collects_until_sigterm():
    import signal
    import subprocess
    import sys

    from harness.observability.cli import READY_PREFIX

    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "zipkin", "serve", "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # the ready line, printed once it listens (or EOF if it died)
        assert line.startswith(READY_PREFIX), (line, proc.stderr.read() if proc.poll() is not None else "")
        url = line[len(READY_PREFIX):].strip()
        request = urllib.request.Request(url, data=json.dumps([CLIENT_SPAN]).encode(),
                                         headers={"Content-Type": "application/json"})
        assert urllib.request.urlopen(request, timeout=5).status == 202
        base = url.rsplit("/api/v2/spans", 1)[0]
        with urllib.request.urlopen(f"{base}/api/v2/trace/{TRACE}", timeout=5) as response:
            assert [s["id"] for s in json.loads(response.read())] == [CLIENT_SPAN["id"]]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_meshconform_zipkin_serve_refuses_a_non_loopback_address():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "harness.cli", "zipkin", "serve", "--listen", "10.1.2.3:9411"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "loopback" in proc.stderr


def test_an_unknown_path_or_method_is_a_json_4xx(zipkin):
    status, error = get(zipkin, "/api/v1/spans")
    assert status == 404 and "Not Found" in error["error"]
    request = urllib.request.Request(zipkin.url + "/api/v2/services", data=b"[]", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=5)
    assert e.value.code == 405 and "error" in json.loads(e.value.read())
