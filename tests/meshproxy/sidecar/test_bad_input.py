"""SPEC §6 bad input: each gets a clear answer (or a close), nothing is forwarded, and the listener
keeps serving (a good request right after each one works)."""

import asyncio
import time

import pytest

from sidecar_testkit import (GET, INBOUND_PORT, OUTBOUND_PORT, mesh_client_ctx, parse_response, raw_exchange,
                             spiffe, tls_exchange, two_service_scenario)

LIMITS = {"header_timeout_s": 0.4, "body_timeout_s": 0.4, "max_body_bytes": 4096}


@pytest.fixture
async def outbound(kit):
    """(client ip, the backend app, the client sidecar): bad input goes to the client's outbound port."""
    scenario = two_service_scenario()
    bip, cip = kit.ip(), kit.ip()
    endpoints = {"backend-v1-0": {"service": "backend", "version": "v1", "instance": 0,
                                  "address": f"{bip}:{INBOUND_PORT}"}}
    app = await kit.app("backend", bip)
    await kit.sidecar("backend", bip, scenario, endpoints)
    client = await kit.sidecar("client", cip, scenario, endpoints, limits={**LIMITS, "max_connections": 50})
    return cip, app, client


async def _still_serves(cip, app):
    before = len(app.arrivals)
    answer = parse_response(await raw_exchange(cip, OUTBOUND_PORT, GET))
    assert answer.status == 200
    assert len(app.arrivals) == before + 1


BAD = {
    "garbage": (b"\x00\x01GARBAGE\r\n\r\n", 400),
    "content_length_and_chunked": (b"POST / HTTP/1.1\r\nHost: backend\r\nContent-Length: 5\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "te_not_ending_in_chunked": (b"POST / HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc", 400),
    "te_gzip_only": (b"POST / HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: gzip\r\n\r\nabc", 400),
    "conflicting_content_length": (b"POST / HTTP/1.1\r\nHost: backend\r\nContent-Length: 1\r\n"
                                   b"Content-Length: 2\r\n\r\nab", 400),
    "content_length_list": (b"POST / HTTP/1.1\r\nHost: backend\r\nContent-Length: 1, 2\r\n\r\nab", 400),
    "te_space_before_colon": (b"POST / HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    "te_xchunked": (b"POST / HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    "te_vertical_tab": (b"POST / HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n", 400),
    "te_obs_fold": (b"POST / HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400),
    "empty_header_name": (b"GET / HTTP/1.1\r\nHost: backend\r\n: x\r\n\r\n", 400),
    "invalid_header_name": (b"GET / HTTP/1.1\r\nHost: backend\r\nx y: z\r\n\r\n", 400),
    "too_many_headers": (b"GET / HTTP/1.1\r\nHost: backend\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(101))
                         + b"\r\n", 431),
    "oversized_header": (b"GET / HTTP/1.1\r\nHost: backend\r\nx-big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    "oversized_header_unfinished": (b"GET / HTTP/1.1\r\nHost: backend\r\nx-big: " + b"a" * 70_000, 431),
    "body_over_limit_declared": (b"POST / HTTP/1.1\r\nHost: backend\r\nContent-Length: 5000\r\n\r\n", 413),
    "body_over_limit_chunked": (b"POST / HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: chunked\r\n\r\n"
                                + b"".join(b"400\r\n" + b"a" * 1024 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n", 413),
}


@pytest.mark.parametrize("name", sorted(BAD))
async def test_bad_request_is_answered_closed_and_not_forwarded(outbound, name):
    cip, app, _ = outbound
    data, status = BAD[name]
    raw = await raw_exchange(cip, OUTBOUND_PORT, data)  # returns only once the proxy closed
    answer = parse_response(raw)
    assert answer is not None and answer.status == status, raw[:200]
    assert answer.headers.get("connection") == "close"
    assert app.arrivals == []
    await _still_serves(cip, app)


async def test_slow_headers_get_408_after_the_header_timeout(outbound):
    cip, app, _ = outbound
    started = time.monotonic()
    raw = await raw_exchange(cip, OUTBOUND_PORT, b"GET / HTTP/1.1\r\nHost: backe", timeout=5)
    elapsed = time.monotonic() - started
    assert parse_response(raw).status == 408
    assert 0.3 <= elapsed < 1.5  # 0.4 s timeout, swept every 0.1 s
    assert app.arrivals == []
    await _still_serves(cip, app)


async def test_stalled_body_gets_408(outbound):
    cip, app, _ = outbound
    raw = await raw_exchange(cip, OUTBOUND_PORT, b"POST / HTTP/1.1\r\nHost: backend\r\nContent-Length: 10\r\n\r\nab",
                             timeout=5)
    assert parse_response(raw).status == 408
    assert app.arrivals == []
    await _still_serves(cip, app)


async def test_pipelined_requests_are_answered_in_order(outbound):
    cip, app, _ = outbound
    two = b"GET /first HTTP/1.1\r\nHost: backend\r\n\r\nGET /second HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n"
    raw = await raw_exchange(cip, OUTBOUND_PORT, two)
    assert raw.count(b"HTTP/1.1 200") == 2
    assert [a["path"] for a in app.arrivals] == ["/first", "/second"]


async def test_connection_cap_refuses_extra_connections_then_recovers(outbound):
    cip, app, client = outbound
    held = [await asyncio.open_connection(cip, OUTBOUND_PORT) for _ in range(50)]
    try:
        deadline = time.monotonic() + 5
        while client.gate.open < 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # polling the sidecar's own counter
        assert client.gate.open == 50
        assert await raw_exchange(cip, OUTBOUND_PORT, GET) == b""  # the 51st is closed at once
    finally:
        for _, writer in held:
            writer.close()
    deadline = time.monotonic() + 5
    while client.gate.open > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # polling pace: the gate count is the observable, 5 s the deadline
    await _still_serves(cip, app)


async def test_garbage_instead_of_client_hello_on_strict_inbound(kit):
    _, backend, app, _, bip = await kit.pair(two_service_scenario())
    assert parse_response(await raw_exchange(bip, INBOUND_PORT, b"\x16\x03\x01garbage-not-a-hello" * 10)) is None
    assert parse_response(await raw_exchange(bip, INBOUND_PORT, b"\xff" * 1000)) is None
    assert app.arrivals == []
    ok = await tls_exchange(bip, INBOUND_PORT, GET, mesh_client_ctx(kit, spiffe("client")))
    assert parse_response(ok).status == 200


async def test_bad_request_over_mtls_inbound_gets_400(kit):
    _, backend, app, _, bip = await kit.pair(two_service_scenario())
    ctx = mesh_client_ctx(kit, spiffe("client"))
    raw = await tls_exchange(bip, INBOUND_PORT, BAD["content_length_and_chunked"][0], ctx)
    assert parse_response(raw).status == 400
    assert app.arrivals == []
