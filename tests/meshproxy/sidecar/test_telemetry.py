"""The reference mesh reports what real meshes report (issue 16): Istio/Envoy metrics, the JSON access
log, trace-context propagation and Zipkin spans — real sidecars on loopback with real mTLS, a stub
Zipkin collector (a test double: the collector is not under test), and the defects that break each."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from sidecar_testkit import ADMIN_PORT, INBOUND_PORT, OUTBOUND_PORT, spiffe

TRACE = "0af7651916cd43dd8448eb211c80319c"
APP_SPAN = "b7ad6b7169203331"
DEADLINE_S = 5.0
POLL_S = 0.02  # the pace of polling an observable, always bounded by DEADLINE_S


def scenario(*, access_log: bool = False, zipkin: str | None = None, sampling: float = 100.0,
             max_requests: int | None = None) -> dict:
    policy: dict = {"service": "backend"}
    if max_requests is not None:
        policy["circuit_breaker"] = {"max_requests": max_requests, "max_pending_requests": 0}
    telemetry: dict = {"access_log": access_log}
    if zipkin is not None:
        telemetry["tracing"] = {"zipkin": zipkin, "sampling": sampling}
    return {"trust_domain": "cluster.local", "services": [{"name": "client"}, {"name": "backend"}],
            "routes": [{"destination": "backend", "retries": {"attempts": 1, "retry_on": ["5xx"],
                                                               "backoff": {"base_interval": "1ms"}}}],
            "policies": [policy], "telemetry": telemetry}


async def mesh(kit, scen: dict, *, client_defects: dict | None = None, backend_defects: dict | None = None):
    cip, bip = kit.ip(), kit.ip()
    endpoints = {"backend-v1-0": {"service": "backend", "version": "v1", "instance": 0,
                                  "address": f"{bip}:{INBOUND_PORT}"}}
    app = await kit.app("backend", bip)
    backend = await kit.sidecar("backend", bip, scen, endpoints, defects=backend_defects)
    client = await kit.sidecar("client", cip, scen, endpoints, defects=client_defects)
    return client, backend, app, cip, bip


class Collector:
    """A stub Zipkin v2 collector: records every span POSTed to /api/v2/spans."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.content_types: list[str] = []
        self._runner: web.AppRunner | None = None

    async def _post(self, request: web.Request) -> web.Response:
        self.content_types.append(request.headers.get("Content-Type", ""))
        self.spans += await request.json()
        return web.Response(status=202)

    async def start(self, ip: str, port: int = 9411) -> str:
        app = web.Application()
        app.router.add_post("/api/v2/spans", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, ip, port).start()
        return f"{ip}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def trace(self, trace_id: str, count: int = 2) -> list[dict]:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            spans = [s for s in self.spans if s["traceId"] == trace_id]
            if len(spans) >= count:
                return spans
            await asyncio.sleep(POLL_S)  # polling pace
        raise AssertionError(f"{count} spans of {trace_id} not reported within {DEADLINE_S}s: {self.spans}")


@pytest.fixture
async def collector():
    c = Collector()
    try:
        yield c
    finally:
        await c.stop()


async def get(session: aiohttp.ClientSession, cip: str, path: str, host: str = "backend",
              headers: dict | None = None) -> tuple[int, dict | None]:
    async with session.get(f"http://{cip}:{OUTBOUND_PORT}{path}", headers={"Host": host, **(headers or {})}) as r:
        body = await r.read()
        return r.status, (json.loads(body) if r.content_type == "application/json" else None)


async def known_mix(kit, cip: str, app, *, overflow: bool = False) -> None:
    """3 x 200, a 503 retried then answered 200, a 404 no route, and (``overflow``) a breaker overflow."""
    async with aiohttp.ClientSession() as session:
        for i in range(3):
            assert (await get(session, cip, f"/ok{i}"))[0] == 200
        assert (await get(session, cip, "/r?key=r&fail=1"))[0] == 200
        assert (await get(session, cip, "/x", host="nowhere"))[0] == 404
        if overflow:
            slow = asyncio.ensure_future(get(session, cip, "/slow?delay=0.5"))
            await wait_for(lambda: any(a["path"].startswith("/slow") for a in app.arrivals))
            assert (await get(session, cip, "/over"))[0] == 503
            assert (await slow)[0] == 200


async def wait_for(predicate, what: str = "condition"):
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(POLL_S)  # polling pace
    raise AssertionError(f"{what} not met within {DEADLINE_S}s")


async def scrape(ip: str) -> dict[str, list]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{ip}:{ADMIN_PORT}/metrics") as r:
            text = await r.text()
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def requests_total(metrics: dict, **labels: str) -> float:
    return sum(v for l, v in metrics.get("istio_requests_total", []) if all(l.get(k) == x for k, x in labels.items()))


def cluster(metrics: dict, name: str, service: str = "backend") -> float:
    # prometheus_client's parser names a counter's samples ..._total (Envoy exposes them without)
    series = f"envoy_cluster_{name}"
    samples = metrics.get(series, []) + (metrics.get(series + "_total", []) if not series.endswith("_total") else [])
    return sum(v for l, v in samples if l["cluster_name"] == service)


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def log_lines(path: Path, count: int) -> list[dict]:
    await wait_for(lambda: len(read_log(path)) >= count, f"{count} lines in {path}")
    return read_log(path)


# -- metrics ------------------------------------------------------------------------------------------
async def test_istio_and_envoy_counters_are_exact_after_a_known_mix(kit):
    client, backend, app, cip, bip = await mesh(kit, scenario(max_requests=1))
    await known_mix(kit, cip, app, overflow=True)
    m = await scrape(cip)
    src = dict(reporter="source", source_workload="client-v1-0", source_principal=spiffe("client"))
    assert requests_total(m, **src, destination_workload="backend-v1-0", response_code="200",
                          destination_service_name="backend", destination_principal=spiffe("backend")) == 5
    assert requests_total(m, **src, response_code="503") == 1  # the overflow, not the retried try
    assert requests_total(m, **src, response_code="503", response_flags="UO", destination_workload="unknown") == 1
    assert requests_total(m, **src, response_code="404", response_flags="NR", destination_workload="unknown") == 1
    assert requests_total(m, reporter="source") == 7
    assert cluster(m, "upstream_rq_total") == 6  # 3 + 2 tries of the retried one + the slow one
    assert cluster(m, "upstream_rq_retry") == 1
    assert cluster(m, "upstream_rq_pending_overflow") == 1
    counts = [v for l, v in m["istio_request_duration_milliseconds_count"] if l["reporter"] == "source"]
    assert sum(counts) == 7
    b = await scrape(bip)
    dst = dict(reporter="destination", source_workload="client-v1-0", source_canonical_service="client",
               destination_workload="backend-v1-0", connection_security_policy="mutual_tls",
               source_principal=spiffe("client"))
    assert requests_total(b, **dst, response_code="200") == 5  # each try that reached it
    assert requests_total(b, **dst, response_code="503") == 1
    assert requests_total(b, reporter="destination") == 6
    assert client.metrics.requests["outbound", 200] == 5  # the old series stay
    assert "x-envoy-peer-metadata-id" not in app.arrivals[0]["headers"]  # metadata exchange stops at the inbound


async def test_metrics_miss_retries_defect_drops_the_retried_try(kit):
    client, backend, app, cip, bip = await mesh(kit, scenario(), client_defects={"metrics_miss_retries": True},
                                                backend_defects={"metrics_miss_retries": True})
    await known_mix(kit, cip, app)
    m, b = await scrape(cip), await scrape(bip)
    assert cluster(m, "upstream_rq_retry") == 0
    assert requests_total(b, reporter="destination") == 4  # 3 + the first try; the retry is missing
    assert requests_total(m, reporter="source", response_code="200") == 4  # the source reporter is right


async def test_graph_wrong_source_defect_credits_another_workload(kit):
    client, backend, app, cip, bip = await mesh(kit, scenario(), client_defects={"graph_wrong_source": True},
                                                backend_defects={"graph_wrong_source": True})
    await known_mix(kit, cip, app)
    m, b = await scrape(cip), await scrape(bip)
    assert requests_total(m, reporter="source", source_workload="client-v1-0") == 0
    assert requests_total(m, reporter="source", source_workload="backend-v1-0") == 4
    assert requests_total(b, reporter="destination", source_workload="backend-v1-0") == 5


# -- access log ---------------------------------------------------------------------------------------
async def test_access_log_has_one_line_per_request_per_hop_with_flags(kit):
    client, backend, app, cip, bip = await mesh(kit, scenario(access_log=True, max_requests=1))
    await known_mix(kit, cip, app, overflow=True)
    out = await log_lines(client.telemetry.log_path, 7)
    inn = await log_lines(backend.telemetry.log_path, 6)
    assert len(out) == 7 and len(inn) == 6
    retried = next(l for l in out if l["path"] == "/r?key=r&fail=1")
    assert (retried["response_code"], retried["response_flags"], retried["attempts"]) == (200, "-", 2)
    assert retried["direction"] == "outbound" and retried["upstream_cluster"] == "backend"
    assert retried["upstream_host"] == f"{bip}:{INBOUND_PORT}" and retried["destination_workload"] == "backend-v1-0"
    assert retried["source_workload"] == "client-v1-0" and retried["protocol"] == "HTTP/1.1"
    assert retried["upstream_service_time"] is not None and retried["duration"] >= retried["upstream_service_time"]
    assert len(retried["trace_id"]) == 32 and len(retried["span_id"]) == 16 and retried["x_request_id"]
    assert retried["start_time"].endswith("Z")
    no_route = next(l for l in out if l["authority"] == "nowhere")
    assert (no_route["response_code"], no_route["response_flags"], no_route["upstream_host"]) == (404, "NR", None)
    over = next(l for l in out if l["path"] == "/over")
    assert (over["response_code"], over["response_flags"], over["attempts"]) == (503, "UO", 0)
    tries = [l for l in inn if l["path"] == "/r?key=r&fail=1"]
    assert sorted(l["response_code"] for l in tries) == [200, 503]
    assert all(l["direction"] == "inbound" and l["source_workload"] == "client-v1-0" for l in inn)
    assert {l["x_request_id"] for l in tries} == {retried["x_request_id"]}


async def test_access_log_skips_errors_defect(kit):
    client, backend, app, cip, bip = await mesh(kit, scenario(access_log=True),
                                                backend_defects={"access_log_skips_errors": True})
    await known_mix(kit, cip, app)
    await log_lines(client.telemetry.log_path, 5)
    inn = await log_lines(backend.telemetry.log_path, 4)
    assert [l["response_code"] for l in inn].count(503) == 0 and len(inn) == 4


async def test_upstream_timeout_and_retry_limit_flags(kit):
    scen = scenario(access_log=True)
    scen["routes"][0]["timeout"] = "200ms"
    client, backend, app, cip, bip = await mesh(kit, scen)
    async with aiohttp.ClientSession() as session:
        assert (await get(session, cip, "/t?delay=1"))[0] == 504
        assert (await get(session, cip, "/f?key=f&fail=5"))[0] == 503
    out = await log_lines(client.telemetry.log_path, 2)
    flags = {l["path"].split("?")[0]: l["response_flags"] for l in out}
    assert flags == {"/t": "UT", "/f": "URX"}
    m = await scrape(cip)
    assert cluster(m, "upstream_rq_timeout") == 1


# -- tracing ------------------------------------------------------------------------------------------
async def test_traceparent_chain_and_zipkin_spans(kit, collector):
    zipkin = await collector.start(kit.ip())
    client, backend, app, cip, bip = await mesh(kit, scenario(zipkin=zipkin))
    async with aiohttp.ClientSession() as session:
        status, echo = await get(session, cip, "/a?q=1", headers={"traceparent": f"00-{TRACE}-{APP_SPAN}-01",
                                                                 "tracestate": "vendor=x"})
    assert status == 200
    seen = echo["headers"]
    spans = {s["kind"]: s for s in await collector.trace(TRACE)}
    out, inn = spans["CLIENT"], spans["SERVER"]
    assert out["parentId"] == APP_SPAN
    assert inn["parentId"] == out["id"]
    assert seen["traceparent"] == f"00-{TRACE}-{inn['id']}-01"  # the echo sees the inbound span as parent
    assert seen["tracestate"] == "vendor=x"
    assert (seen["x-b3-traceid"], seen["x-b3-spanid"], seen["x-b3-parentspanid"], seen["x-b3-sampled"]) == (
        TRACE, inn["id"], out["id"], "1")
    assert out["localEndpoint"] == {"serviceName": "client.default", "ipv4": cip, "port": OUTBOUND_PORT}
    assert out["remoteEndpoint"] == {"ipv4": bip, "port": INBOUND_PORT}
    assert inn["localEndpoint"]["serviceName"] == "backend.default"
    assert out["tags"]["http.status_code"] == "200" and out["tags"]["upstream_cluster"] == "backend"
    assert out["tags"]["node_id"] == "client-v1-0" and inn["tags"]["node_id"] == "backend-v1-0"
    assert out["tags"]["guid:x-request-id"] == seen["x-request-id"] == inn["tags"]["guid:x-request-id"]
    assert out["name"] == "backend/*" and out["shared"] is False
    assert isinstance(out["timestamp"], int) and out["duration"] >= 1
    assert out["timestamp"] <= inn["timestamp"] and inn["duration"] <= out["duration"]  # the server nests
    assert set(collector.content_types) == {"application/json"}


async def test_b3_only_and_no_header_and_invalid_traceparent(kit, collector):
    zipkin = await collector.start(kit.ip())
    client, backend, app, cip, bip = await mesh(kit, scenario(zipkin=zipkin))
    async with aiohttp.ClientSession() as session:
        _, b3 = await get(session, cip, "/b3", headers={"x-b3-traceid": TRACE, "x-b3-spanid": APP_SPAN,
                                                        "x-b3-sampled": "1"})
        _, none = await get(session, cip, "/none")
        _, bad = await get(session, cip, "/bad", headers={"traceparent": f"00-{TRACE.upper()}-{APP_SPAN}-01"})
    spans = {s["kind"]: s for s in await collector.trace(TRACE)}
    assert spans["CLIENT"]["parentId"] == APP_SPAN and spans["SERVER"]["parentId"] == spans["CLIENT"]["id"]
    assert b3["headers"]["traceparent"].startswith(f"00-{TRACE}-")
    for echo in (none, bad):
        trace = echo["headers"]["traceparent"].split("-")[1]
        assert trace != TRACE.lower() and len(trace) == 32
        root = {s["kind"]: s for s in await collector.trace(trace)}
        assert "parentId" not in root["CLIENT"]  # a new root
        assert root["SERVER"]["parentId"] == root["CLIENT"]["id"]


async def test_sampling_zero_sends_no_span_but_still_propagates(kit, collector):
    zipkin = await collector.start(kit.ip())
    client, backend, app, cip, bip = await mesh(kit, scenario(zipkin=zipkin, sampling=0.0))
    async with aiohttp.ClientSession() as session:
        _, echo = await get(session, cip, "/unsampled")
        # a request carrying its own decision keeps it (Envoy): its spans come after the unsampled ones
        await get(session, cip, "/sampled", headers={"traceparent": f"00-{TRACE}-{APP_SPAN}-01"})
    trace = echo["headers"]["traceparent"].split("-")[1]
    assert echo["headers"]["traceparent"].endswith("-00") and echo["headers"]["x-b3-sampled"] == "0"
    assert trace != TRACE
    await collector.trace(TRACE)  # both queues (FIFO) have sent everything reported before it
    assert [s for s in collector.spans if s["traceId"] == trace] == []


async def test_drop_traceparent_defect_breaks_the_chain(kit, collector):
    zipkin = await collector.start(kit.ip())
    client, backend, app, cip, bip = await mesh(kit, scenario(zipkin=zipkin),
                                                client_defects={"drop_traceparent": True})
    async with aiohttp.ClientSession() as session:
        _, echo = await get(session, cip, "/a", headers={"traceparent": f"00-{TRACE}-{APP_SPAN}-01"})
    assert not echo["headers"]["traceparent"].startswith(f"00-{TRACE}-")
    assert "x-b3-parentspanid" not in echo["headers"]  # the inbound started a new root


async def test_span_wrong_parent_defect(kit, collector):
    zipkin = await collector.start(kit.ip())
    client, backend, app, cip, bip = await mesh(kit, scenario(zipkin=zipkin),
                                                backend_defects={"span_wrong_parent": True})
    async with aiohttp.ClientSession() as session:
        await get(session, cip, "/a", headers={"traceparent": f"00-{TRACE}-{APP_SPAN}-01"})
    spans = {s["kind"]: s for s in await collector.trace(TRACE)}
    assert spans["SERVER"]["parentId"] == APP_SPAN != spans["CLIENT"]["id"]


@pytest.mark.parametrize("kind", ["down", "hangs"])
async def test_a_collector_down_or_hanging_never_delays_requests(kit, kind):
    ip = kit.ip()
    hung: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)  # accept, read, never answer

    server = await asyncio.start_server(hang, ip, 9411) if kind == "hangs" else None
    try:
        client, backend, app, cip, bip = await mesh(kit, scenario(zipkin=f"{ip}:9411", access_log=True))
        slowest = 0.0
        async with aiohttp.ClientSession() as session:
            for i in range(30):
                started = time.monotonic()
                assert (await get(session, cip, f"/{i}"))[0] == 200
                slowest = max(slowest, time.monotonic() - started)
        assert slowest < 0.5  # a POST is cut after 2 s; a request never waits for one
        if kind == "down":
            await wait_for(lambda: client.metrics.spans_failed > 0, "a failed POST counted")
        else:
            await wait_for(lambda: hung, "the reporter reached the hanging collector")
    finally:
        if server is not None:
            for writer in hung:
                writer.close()
            server.close()


async def test_a_configuration_change_turns_the_access_log_on(kit):
    scen = scenario()
    client, backend, app, cip, bip = await mesh(kit, scen)
    async with aiohttp.ClientSession() as session:
        assert (await get(session, cip, "/before"))[0] == 200
        for sidecar in (client, backend):  # what a pushed generation does (meshproxy/sidecar/dynamic.py)
            snap = sidecar.config.current
            sidecar.config.install(snap.generation + 1, snap.version + 1, {**scen, "telemetry": {"access_log": True}},
                                   snap.endpoints)
        assert (await get(session, cip, "/after"))[0] == 200
    out = await log_lines(client.telemetry.log_path, 1)
    inn = await log_lines(backend.telemetry.log_path, 1)
    assert [l["path"] for l in out] == ["/after"] and [l["path"] for l in inn] == ["/after"]


async def test_a_caller_that_goes_away_is_logged_with_dc_and_no_code(kit):
    client, backend, app, cip, bip = await mesh(kit, scenario(access_log=True))
    reader, writer = await asyncio.open_connection(cip, OUTBOUND_PORT)
    writer.write(b"GET /gone?delay=2 HTTP/1.1\r\nHost: backend\r\n\r\n")
    await writer.drain()
    await wait_for(lambda: any(a["path"].startswith("/gone") for a in app.arrivals), "the request reached the app")
    writer.close()
    out = await log_lines(client.telemetry.log_path, 1)
    inn = await log_lines(backend.telemetry.log_path, 1)  # the outbound abandoned its upstream connection
    assert [(l["response_code"], l["response_flags"]) for l in out] == [(0, "DC")]
    assert [(l["response_code"], l["response_flags"]) for l in inn] == [(0, "DC")]
    m = await scrape(cip)
    assert requests_total(m, reporter="source", response_code="0", response_flags="DC") == 1
