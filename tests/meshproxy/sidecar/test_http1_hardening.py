"""Issue 15, on the wire: chunked trailers, duplicate / missing Host, hop-by-hop lists naming Host,
HTTP/1.0 and 0.9 rewriting, CONNECT and upgrades. Raw sockets to the outbound and (over mTLS, with a
mesh client certificate) the inbound; the app behind the backend sidecar records every arrival."""

import asyncio

import pytest

from sidecar_testkit import (APP_PORT, INBOUND_PORT, OUTBOUND_PORT, mesh_client_ctx, parse_response, raw_exchange,
                             spiffe, tls_exchange, two_service_scenario)

GOOD = b"GET /ok HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n"


def three_services() -> dict:
    """client -> backend | other: a trailer Host must not move a request from backend to other."""
    return {"trust_domain": "cluster.local",
            "services": [{"name": "client"}, {"name": "backend"}, {"name": "other"}],
            "policies": [{"service": "backend", "mtls": {"mode": "STRICT"}},
                         {"service": "other", "mtls": {"mode": "STRICT"}}]}


@pytest.fixture
async def mesh(kit):
    """(client ip, backend ip, backend app, other app, mTLS context of a mesh caller)."""
    scenario = three_services()
    cip, bip, oip = kit.ip(), kit.ip(), kit.ip()
    endpoints = {"backend-v1-0": {"service": "backend", "version": "v1", "instance": 0,
                                  "address": f"{bip}:{INBOUND_PORT}"},
                 "other-v1-0": {"service": "other", "version": "v1", "instance": 0,
                                "address": f"{oip}:{INBOUND_PORT}"}}
    backend_app = await kit.app("backend", bip)
    other_app = await kit.app("other", oip)
    await kit.sidecar("backend", bip, scenario, endpoints)
    await kit.sidecar("other", oip, scenario, endpoints)
    await kit.sidecar("client", cip, scenario, endpoints)
    return cip, bip, backend_app, other_app, mesh_client_ctx(kit, spiffe("client"))


def _ours(answer) -> bool:
    """An answer of the sidecar itself: the app (aiohttp) would have added a Server header."""
    return answer is not None and "server" not in answer.headers


def _answers(raw: bytes) -> int:
    """How many responses are in ``raw`` (the bodies here are short JSON or text, never a status line)."""
    return raw.count(b"HTTP/1.1 ")


async def _outbound_still_serves(cip, app):
    before = len(app.arrivals)
    assert parse_response(await raw_exchange(cip, OUTBOUND_PORT, GOOD)).status == 200
    assert len(app.arrivals) == before + 1


# -- 1. chunked trailers --------------------------------------------------------------------------
CHUNKED_WITH_TRAILERS = (b"POST /t HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: chunked\r\n"
                         b"x-request-id: from-header\r\nConnection: close\r\n\r\n"
                         b"5\r\nhello\r\n0\r\nHost: other\r\nx-request-id: from-trailer\r\n"
                         b"x-trailer-only: evil\r\n\r\n")


async def test_outbound_trailers_never_become_headers_nor_route(mesh):
    cip, _, backend_app, other_app, _ = mesh
    raw = await raw_exchange(cip, OUTBOUND_PORT, CHUNKED_WITH_TRAILERS)
    assert parse_response(raw).status == 200, raw[:300]
    assert other_app.arrivals == []  # routed on the header Host, not the trailer
    [arrival] = backend_app.arrivals
    headers = arrival["headers"]
    assert headers["host"] == "backend"
    assert headers["x-request-id"] == "from-header"
    assert "x-trailer-only" not in headers
    assert arrival["body"] == b"hello"


async def test_inbound_trailers_are_dropped(mesh):
    _, bip, backend_app, _, ctx = mesh
    raw = await tls_exchange(bip, INBOUND_PORT, CHUNKED_WITH_TRAILERS.replace(b"Host: other", b"Host: elsewhere"), ctx)
    assert parse_response(raw).status == 200, raw
    [arrival] = backend_app.arrivals
    assert arrival["headers"]["host"] == "backend"
    assert arrival["headers"]["x-request-id"] == "from-header"
    assert "x-trailer-only" not in arrival["headers"]


async def test_trailers_count_against_the_header_size_limit(mesh):
    cip, _, backend_app, _, _ = mesh
    data = (b"POST /t HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
            + b"".join(b"x-t%d: %s\r\n" % (i, b"v" * 1000) for i in range(80)) + b"\r\n")
    answer = parse_response(await raw_exchange(cip, OUTBOUND_PORT, data))
    assert answer.status == 431
    assert backend_app.arrivals == []
    await _outbound_still_serves(cip, backend_app)


@pytest.mark.parametrize("size", [200_000, 2_000_000])
async def test_a_huge_unfinished_trailer_is_431_not_buffered(mesh, size):
    cip, _, backend_app, _, _ = mesh
    data = (b"POST /t HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
            b"x-big: " + b"a" * size)
    answer = parse_response(await raw_exchange(cip, OUTBOUND_PORT, data))
    assert answer is not None and answer.status == 431
    assert backend_app.arrivals == []
    await _outbound_still_serves(cip, backend_app)


async def test_a_chunked_body_of_many_small_chunks_is_fine(mesh):
    cip, _, backend_app, _, _ = mesh
    chunks = b"".join(b"1;ext=%d\r\n%c\r\n" % (i, 97 + i % 26) for i in range(3000))  # ~40 kB of framing
    raw = await raw_exchange(cip, OUTBOUND_PORT, b"POST /t HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: chunked\r\n"
                                                 b"Connection: close\r\n\r\n" + chunks + b"0\r\nx-t: 1\r\n\r\n")
    assert parse_response(raw).status == 200, raw[:200]
    assert len(backend_app.arrivals[0]["body"]) == 3000


async def test_requests_after_a_chunked_one_keep_their_headers_and_limits(mesh):
    """Pipelined: chunked with trailers, then 90 headers (fine: the mesh adds a few on the way), then 101
    headers (431 from the outbound)."""
    cip, _, backend_app, _, _ = mesh
    data = (b"POST /a HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nx-t: 1\r\n\r\n"
            b"GET /b HTTP/1.1\r\nHost: backend\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(89)) + b"\r\n"
            b"GET /c HTTP/1.1\r\nHost: backend\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(100)) + b"\r\n")
    raw = await raw_exchange(cip, OUTBOUND_PORT, data)
    assert raw.count(b"HTTP/1.1 200") == 2 and raw.count(b"HTTP/1.1 431") == 1, raw[-300:]
    assert [a["path"] for a in backend_app.arrivals] == ["/a", "/b"]
    assert len([h for h in backend_app.arrivals[1]["headers"] if h.startswith("x-h")]) == 89
    assert "x-t" not in backend_app.arrivals[0]["headers"]


async def test_upstream_response_trailers_do_not_become_response_headers(kit):
    """The app answers chunked with a trailer: the caller must not see it as a header."""
    scenario = two_service_scenario()
    cip, bip = kit.ip(), kit.ip()
    endpoints = {"backend-v1-0": {"service": "backend", "version": "v1", "instance": 0,
                                  "address": f"{bip}:{INBOUND_PORT}"}}

    async def app(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-evil\r\n\r\n"
                     b"2\r\nok\r\n0\r\nx-evil: 1\r\nset-cookie: session=stolen\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(app, bip, APP_PORT)
    try:
        await kit.sidecar("backend", bip, scenario, endpoints)
        await kit.sidecar("client", cip, scenario, endpoints)
        answer = parse_response(await raw_exchange(cip, OUTBOUND_PORT, GOOD))
        assert answer.status == 200 and answer.body == b"ok"
        assert "x-evil" not in answer.headers and "set-cookie" not in answer.headers
    finally:
        server.close()


# -- 2. two Host headers ------------------------------------------------------------------------------
TWO_HOSTS = b"GET /h HTTP/1.1\r\nHost: backend\r\nHost: other\r\n\r\n"


async def test_two_host_headers_get_400_on_the_outbound(mesh):
    cip, _, backend_app, other_app, _ = mesh
    raw = await raw_exchange(cip, OUTBOUND_PORT, TWO_HOSTS)
    answer = parse_response(raw)
    assert answer.status == 400 and answer.headers.get("connection") == "close", raw[:200]
    assert _answers(raw) == 1
    assert backend_app.arrivals == [] and other_app.arrivals == []
    await _outbound_still_serves(cip, backend_app)


async def test_two_host_headers_get_400_on_the_inbound(mesh):
    _, bip, backend_app, _, ctx = mesh
    answer = parse_response(await tls_exchange(bip, INBOUND_PORT, TWO_HOSTS.replace(b"other", b"backend"), ctx))
    assert answer.status == 400 and _ours(answer)
    assert backend_app.arrivals == []


# -- 3. Host: never removed, required on 1.1, added to rewritten 1.0 / 0.9 ---------------------------------
async def test_connection_list_naming_host_does_not_remove_it(mesh):
    cip, _, backend_app, _, _ = mesh
    raw = await raw_exchange(cip, OUTBOUND_PORT,
                             b"GET /c HTTP/1.1\r\nHost: backend\r\nx-hop: 1\r\nConnection: close, host, x-hop\r\n\r\n")
    assert parse_response(raw).status == 200, raw[:200]
    [arrival] = backend_app.arrivals
    assert arrival["headers"]["host"] == "backend"
    assert "x-hop" not in arrival["headers"]  # the other named header is still hop-by-hop


@pytest.mark.parametrize("side", ["outbound", "inbound"])
async def test_http11_without_host_gets_400(mesh, side):
    cip, bip, backend_app, _, ctx = mesh
    data = b"GET /nohost HTTP/1.1\r\nConnection: close\r\n\r\n"
    raw = (await raw_exchange(cip, OUTBOUND_PORT, data) if side == "outbound"
           else await tls_exchange(bip, INBOUND_PORT, data, ctx))
    answer = parse_response(raw)
    assert answer.status == 400 and _ours(answer), raw[:200]
    assert backend_app.arrivals == []


@pytest.mark.parametrize("request_line", [b"GET /old HTTP/1.0\r\n\r\n", b"GET /old\r\n\r\n"])
async def test_rewritten_http10_and_09_requests_get_a_host_on_the_inbound(mesh, request_line):
    _, bip, backend_app, _, ctx = mesh
    raw = await tls_exchange(bip, INBOUND_PORT, request_line, ctx)
    assert parse_response(raw).status == 200, raw[:200]
    [arrival] = backend_app.arrivals
    assert arrival["headers"].get("host") == "backend"


async def test_http10_on_the_outbound_keeps_its_host_or_finds_no_route(mesh):
    cip, _, backend_app, _, _ = mesh
    assert parse_response(await raw_exchange(cip, OUTBOUND_PORT, b"GET /old HTTP/1.0\r\nHost: backend\r\n\r\n")).status == 200
    assert backend_app.arrivals[0]["headers"]["host"] == "backend"
    answer = parse_response(await raw_exchange(cip, OUTBOUND_PORT, b"GET /old HTTP/1.0\r\n\r\n"))
    assert answer.status == 404 and answer.headers.get("x-meshproxy-no-route") == "1"
    assert len(backend_app.arrivals) == 1


async def test_unsupported_http_version_gets_400(mesh):
    cip, _, backend_app, _, _ = mesh
    answer = parse_response(await raw_exchange(cip, OUTBOUND_PORT, b"GET / HTTP/2.0\r\nHost: backend\r\n\r\n"))
    assert answer.status == 400
    assert backend_app.arrivals == []


# -- 4. CONNECT and upgrades -------------------------------------------------------------------------
REFUSED_UPGRADES = {
    "connect": b"CONNECT backend:443 HTTP/1.1\r\nHost: backend:443\r\n\r\n",
    "connect_pipelined": b"CONNECT backend:443 HTTP/1.1\r\nHost: backend:443\r\n\r\n" + GOOD,
    "websocket": (b"GET /ws HTTP/1.1\r\nHost: backend\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                  b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
    "h2c_with_body": (b"POST /u HTTP/1.1\r\nHost: backend\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                      b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 3\r\n\r\nabc"),
}


@pytest.mark.parametrize("name", sorted(REFUSED_UPGRADES))
async def test_connect_and_upgrades_get_one_answer_and_a_close_on_the_outbound(mesh, name):
    cip, _, backend_app, other_app, _ = mesh
    raw = await raw_exchange(cip, OUTBOUND_PORT, REFUSED_UPGRADES[name], timeout=3)  # returns once closed
    answer = parse_response(raw)
    assert answer is not None and 400 <= answer.status < 500, raw[:300]
    assert answer.headers.get("connection") == "close"
    assert _answers(raw) == 1, raw
    assert backend_app.arrivals == [] and other_app.arrivals == []
    await _outbound_still_serves(cip, backend_app)


@pytest.mark.parametrize("name", sorted(REFUSED_UPGRADES))
async def test_connect_and_upgrades_get_one_answer_and_a_close_on_the_inbound(mesh, name):
    _, bip, backend_app, _, ctx = mesh
    loop = asyncio.get_running_loop()
    started = loop.time()
    raw = await tls_exchange(bip, INBOUND_PORT, REFUSED_UPGRADES[name], ctx, timeout=3)
    assert loop.time() - started < 2  # answered and closed, not left waiting for the timeout
    answer = parse_response(raw)
    assert answer is not None and 400 <= answer.status < 500 and _ours(answer), raw
    assert _answers(raw) == 1
    assert backend_app.arrivals == []


# -- 7. the admin listener (aiohttp) is bounded like the data path ----------------------------------------
ADMIN_LIMITS = {"header_timeout_s": 0.4, "body_timeout_s": 0.4, "admin_max_connections": 4, "max_connections": 20}


@pytest.fixture
async def admin(kit):
    from sidecar_testkit import ADMIN_PORT

    scenario = two_service_scenario()
    ip = kit.ip()
    sidecar = await kit.sidecar("client", ip, scenario, {}, limits=ADMIN_LIMITS)
    return ip, ADMIN_PORT, sidecar


async def _closed_after(ip, port, data, timeout=5.0):
    """(seconds until the server closed, what it sent)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    raw = await raw_exchange(ip, port, data, timeout=timeout)
    return loop.time() - started, raw


async def test_admin_slow_headers_get_408_and_a_close(admin):
    ip, port, _ = admin
    elapsed, raw = await _closed_after(ip, port, b"GET /ready HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    assert 0.3 <= elapsed < 2.0, elapsed
    assert parse_response(raw).status == 408


async def test_admin_connection_that_sends_nothing_is_closed(admin):
    ip, port, _ = admin
    elapsed, _ = await _closed_after(ip, port, b"")
    assert elapsed < 2.0


async def test_admin_idle_declared_body_is_closed(admin):
    ip, port, _ = admin
    elapsed, _ = await _closed_after(ip, port, b"POST /ready HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
    assert 0.3 <= elapsed < 2.0, elapsed


async def test_admin_connections_are_capped_and_counted(admin):
    ip, port, sidecar = admin
    held = [await asyncio.open_connection(ip, port) for _ in range(4)]
    try:
        for _ in range(100):
            if sidecar.admin_gate.open == 4:
                break
            await asyncio.sleep(0.01)  # polling the sidecar's own counter
        assert sidecar.admin_gate.open == 4 and sidecar.gate.open == 4  # they count in the data path's budget
        assert await raw_exchange(ip, port, b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", timeout=2) == b""
    finally:
        for _, writer in held:
            writer.close()
    for _ in range(200):
        if sidecar.admin_gate.open == 0:
            break
        await asyncio.sleep(0.01)  # polling pace, bounded by the 200 rounds
    assert sidecar.admin_gate.open == 0 and sidecar.gate.open == 0
    answer = parse_response(await raw_exchange(ip, port, b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert answer.status == 200


async def test_admin_keeps_serving_normal_requests(admin):
    ip, port, _ = admin
    two = (b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n"
           b"POST /ready HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab")
    raw = await raw_exchange(ip, port, two)
    assert raw.count(b"HTTP/1.1 ") == 2 and b"408" not in raw


# -- found on the way: a refused request pipelined behind others dropped their answers -------------------
@pytest.mark.parametrize("bad", [b"GET /x HTTP/1.1\r\nHost: backend\r\nHost: other\r\n\r\n",
                                 b"CONNECT backend:443 HTTP/1.1\r\nHost: backend:443\r\n\r\n",
                                 b"\x00garbage\r\n\r\n"])
async def test_requests_before_a_refused_pipelined_one_are_all_answered(mesh, bad):
    cip, _, backend_app, other_app, _ = mesh
    good = b"GET /1 HTTP/1.1\r\nHost: backend\r\n\r\nGET /2 HTTP/1.1\r\nHost: backend\r\n\r\n"
    raw = await raw_exchange(cip, OUTBOUND_PORT, good + bad)
    assert raw.count(b"HTTP/1.1 200") == 2 and raw.count(b"HTTP/1.1 400") == 1, raw[-300:]
    assert raw.endswith(b"\r\n\r\n" + raw.rsplit(b"\r\n\r\n", 1)[1]) and b"connection: close" in raw.rsplit(b"HTTP/1.1", 1)[1]
    assert [a["path"] for a in backend_app.arrivals] == ["/1", "/2"] and other_app.arrivals == []


# -- found by the fuzz test: request-target forms (RFC 9112 §3.2) ------------------------------------------
async def test_absolute_form_routes_and_forwards_on_its_authority(mesh):
    cip, _, backend_app, other_app, _ = mesh
    raw = await raw_exchange(cip, OUTBOUND_PORT, b"GET http://backend/abs?q=1 HTTP/1.1\r\nHost: other\r\n"
                                                 b"Connection: close\r\n\r\n")
    assert parse_response(raw).status == 200, raw[:300]
    assert other_app.arrivals == []  # the target's authority wins over the Host header
    [arrival] = backend_app.arrivals
    assert arrival["path"] == "/abs?q=1" and arrival["headers"]["host"] == "backend"


@pytest.mark.parametrize("side", ["outbound", "inbound"])
@pytest.mark.parametrize("target", [b"*", b"backend:443", b"ftp://backend/x", b"http://user@backend/x"])
async def test_other_request_target_forms_get_400(mesh, side, target):
    cip, bip, backend_app, _, ctx = mesh
    data = b"GET " + target + b" HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n"
    raw = (await raw_exchange(cip, OUTBOUND_PORT, data) if side == "outbound"
           else await tls_exchange(bip, INBOUND_PORT, data, ctx))
    answer = parse_response(raw)
    assert answer.status == 400 and _ours(answer), raw[:200]
    assert backend_app.arrivals == []


async def test_options_asterisk_is_forwarded(mesh):
    _, bip, backend_app, _, ctx = mesh
    raw = await tls_exchange(bip, INBOUND_PORT, b"OPTIONS * HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n", ctx)
    answer = parse_response(raw)
    assert answer is not None and not _ours(answer), raw[:200]  # the app answered it
    assert len(backend_app.arrivals) <= 1


# -- found by the fuzz test: upstream statuses that are not an answer ------------------------------------
@pytest.mark.parametrize("status_line", [b"HTTP/1.1 101 Switching Protocols", b"HTTP/1.1 999 What", b"HTTP/1.1 099 Low"])
async def test_upstream_101_or_invalid_status_is_never_forwarded(kit, status_line):
    scenario = two_service_scenario()
    cip, bip = kit.ip(), kit.ip()
    endpoints = {"backend-v1-0": {"service": "backend", "version": "v1", "instance": 0,
                                  "address": f"{bip}:{INBOUND_PORT}"}}

    async def app(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(status_line + b"\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(app, bip, APP_PORT)
    try:
        await kit.sidecar("backend", bip, scenario, endpoints)
        await kit.sidecar("client", cip, scenario, endpoints)
        raw = await raw_exchange(cip, OUTBOUND_PORT, GOOD)
        answer = parse_response(raw)
        # an invalid response: one 502 of ours (tests/meshproxy/sidecar/test_upstream_responses.py)
        assert answer is not None and answer.status == 502 and _ours(answer), raw[:300]
        assert _answers(raw) == 1
    finally:
        server.close()
