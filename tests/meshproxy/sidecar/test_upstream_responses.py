"""Issue 15, the response side: the app (a raw asyncio server here, the bad upstream) misbehaves.

A response with oversized or too many headers, a bad status line, Content-Length with
Transfer-Encoding, a truncated body, garbage instead of a response: the sidecar answers its caller one
502 of its own (RFC 9110 §15.6.3: an invalid response from the server it called), never forwards any of
the malformed response, never reuses that upstream connection, and keeps serving. A reset before any
response byte stays the 503 ``upstream connect error or disconnect/reset before headers`` (Envoy's).
The caller's connection is not closed: its own request was well framed, and the 502 is a complete
answer to it. Unsolicited bytes on an idle pooled connection close that connection: the next request
goes on a new one and never gets the stale bytes as its answer.
"""

import asyncio
import time

import pytest

from sidecar_testkit import (APP_PORT, INBOUND_PORT, OUTBOUND_PORT, mesh_client_ctx, parse_response, raw_exchange,
                             spiffe, tls_exchange, two_service_scenario)

GOOD = b"GET /ok HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nx-app: 1\r\n\r\nok"
LIMITS = {"max_response_headers": 50, "max_response_header_bytes": 16 * 1024, "body_timeout_s": 0.5}


class BadApp:
    """The backend's app as raw bytes: answers ``/bad`` with ``self.answer`` and closes (``close``) or keeps
    the connection; anything else gets a good keep-alive 200. Records each connection's requests."""

    def __init__(self) -> None:
        self.answer = b""
        self.close_after = True
        self.connections: list[list[bytes]] = []  # per accepted connection: the request lines it carried
        self.open = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.AbstractServer | None = None

    async def start(self, ip: str) -> None:
        self.server = await asyncio.start_server(self._serve, ip, APP_PORT)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines: list[bytes] = []
        self.connections.append(lines)
        self.writers.append(writer)
        self.open += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines.append(head.split(b"\r\n", 1)[0])
                if head.startswith(b"GET /bad "):
                    writer.write(self.answer)
                    await writer.drain()
                    if self.close_after:
                        break
                else:
                    writer.write(OK)
                    await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()

    def requests(self) -> list[bytes]:
        return [line for conn in self.connections for line in conn]

    async def stop(self) -> None:
        for w in self.writers:
            w.close()
        self.server.close()


@pytest.fixture
async def bad_mesh(kit):
    """(client ip, backend ip, the bad app, mTLS context of a mesh caller)."""
    scenario = two_service_scenario()
    cip, bip = kit.ip(), kit.ip()
    endpoints = {"backend-v1-0": {"service": "backend", "version": "v1", "instance": 0,
                                  "address": f"{bip}:{INBOUND_PORT}"}}
    app = BadApp()
    await app.start(bip)
    await kit.sidecar("backend", bip, scenario, endpoints, limits=LIMITS)
    await kit.sidecar("client", cip, scenario, endpoints, limits=LIMITS)
    try:
        yield cip, bip, app, mesh_client_ctx(kit, spiffe("client"))
    finally:
        await app.stop()


def _count_answers(raw: bytes) -> int:
    return raw.count(b"HTTP/1.1 ")


BAD_ANSWERS = {
    "oversized header": b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 40_000 + b"\r\nContent-Length: 2\r\n\r\nok",
    "header too big to finish": b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 200_000,
    "too many headers": b"HTTP/1.1 200 OK\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(200))
                        + b"Content-Length: 2\r\n\r\nok",
    "bad status line": b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok",
    "no status code": b"HTTP/1.1 \r\nContent-Length: 2\r\n\r\nok",
    "CL and TE": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "truncated body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
    "truncated chunked body": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\nonly this",
    "truncated head": b"HTTP/1.1 200 OK\r\nx-app: 1\r\n",
    "garbage": b"\x00\xffnot http at all\r\n\r\n",
    "bad chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
}


async def _through(side: str, cip: str, bip: str, ctx, data: bytes) -> bytes:
    if side == "outbound":
        return await raw_exchange(cip, OUTBOUND_PORT, data)
    return await tls_exchange(bip, INBOUND_PORT, data, ctx) or b""


@pytest.mark.parametrize("side", ["outbound", "inbound"])
@pytest.mark.parametrize("name", sorted(BAD_ANSWERS))
async def test_a_malformed_response_is_one_502_of_our_own_and_never_forwarded(bad_mesh, side, name):
    cip, bip, app, ctx = bad_mesh
    app.answer = BAD_ANSWERS[name]
    raw = await _through(side, cip, bip, ctx, b"GET /bad HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n")
    answer = parse_response(raw)
    assert answer is not None and answer.status == 502, (name, raw[:300])
    assert _count_answers(raw) == 1, raw[:300]
    assert "x-app" not in answer.headers and b"only this" not in raw and b"aaaa" not in raw, raw[:300]
    # it keeps serving
    assert parse_response(await _through(side, cip, bip, ctx, GOOD)).status == 200


@pytest.mark.parametrize("name", ["CL and TE", "bad status line", "too many headers", "oversized header", "garbage"])
async def test_the_upstream_connection_of_a_malformed_response_is_never_reused(bad_mesh, name):
    cip, bip, app, ctx = bad_mesh
    app.answer, app.close_after = BAD_ANSWERS[name], False  # the app would happily go on on that connection
    keep = b"GET /bad HTTP/1.1\r\nHost: backend\r\n\r\n"
    raw = await tls_exchange(bip, INBOUND_PORT, keep + GOOD, ctx)
    assert raw is not None and raw.startswith(b"HTTP/1.1 502 "), raw[:300]
    [first] = [c for c in app.connections if c and c[0].startswith(b"GET /bad ")]
    assert first == [b"GET /bad HTTP/1.1"], app.connections  # the good request went on another connection


async def test_the_caller_keeps_its_connection_after_a_502(bad_mesh):
    cip, _, app, _ = bad_mesh
    app.answer = BAD_ANSWERS["bad status line"]
    raw = await raw_exchange(cip, OUTBOUND_PORT, b"GET /bad HTTP/1.1\r\nHost: backend\r\n\r\n" + GOOD)
    assert raw.startswith(b"HTTP/1.1 502 ") and _count_answers(raw) == 2, raw[:400]
    assert b"HTTP/1.1 200 OK" in raw


async def _poll(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)  # polling the app's connection count under a deadline
    return predicate()


async def test_unsolicited_bytes_on_an_idle_pooled_connection_close_it(bad_mesh):
    cip, bip, app, ctx = bad_mesh
    first = b"GET /first HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n"
    raw = await tls_exchange(bip, INBOUND_PORT, first, ctx)
    assert parse_response(raw).status == 200
    assert await _poll(lambda: app.open == 1)  # the sidecar keeps its app connection in the pool
    [writer] = app.writers
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nx-stale: 1\r\n\r\nstale")  # nobody asked
    assert await _poll(lambda: app.open == 0), "the sidecar kept a connection that sent unsolicited bytes"
    raw = await tls_exchange(bip, INBOUND_PORT, GOOD, ctx)
    answer = parse_response(raw)
    assert answer.status == 200 and "x-stale" not in answer.headers and answer.body == b"ok", raw[:300]
    assert len(app.connections) == 2


async def test_bytes_after_a_complete_response_close_that_connection(bad_mesh):
    cip, bip, app, ctx = bad_mesh
    stale = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nx-stale: 1\r\n\r\nstale"
    app.answer, app.close_after = OK.replace(b"x-app: 1", b"x-app: first") + stale, False
    raw = await tls_exchange(bip, INBOUND_PORT, b"GET /bad HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n", ctx)
    assert parse_response(raw).headers.get("x-app") == "first"
    raw = await tls_exchange(bip, INBOUND_PORT, GOOD, ctx)
    answer = parse_response(raw)
    assert answer.status == 200 and "x-stale" not in answer.headers, raw[:300]
    assert len(app.connections) == 2


async def test_a_reset_before_any_response_byte_stays_503(bad_mesh):
    cip, bip, app, ctx = bad_mesh
    app.answer = b""  # read the request, close without a byte
    raw = await tls_exchange(bip, INBOUND_PORT, b"GET /bad HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n", ctx)
    assert parse_response(raw).status == 503, raw[:300]


async def test_responses_at_the_limits_are_forwarded(bad_mesh):
    cip, bip, app, ctx = bad_mesh
    app.answer = (b"HTTP/1.1 200 OK\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(45))
                  + b"x-big: " + b"b" * 12_000 + b"\r\nContent-Length: 2\r\n\r\nok")
    raw = await _through("outbound", cip, bip, ctx, b"GET /bad HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n")
    answer = parse_response(raw)
    assert answer.status == 200 and answer.headers["x-h44"] == "v" and len(answer.headers["x-big"]) == 12_000


@pytest.mark.parametrize("side", ["outbound", "inbound"])
@pytest.mark.parametrize("name", ["truncated body", "truncated head"])
async def test_a_response_that_stalls_midway_is_a_502_within_the_body_timeout(bad_mesh, side, name):
    cip, bip, app, ctx = bad_mesh
    app.answer, app.close_after = BAD_ANSWERS[name], False  # the app begins its answer and then says nothing
    began = time.monotonic()
    raw = await _through(side, cip, bip, ctx, b"GET /bad HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n")
    took = time.monotonic() - began
    answer = parse_response(raw)
    assert answer is not None and answer.status == 502 and b"only this" not in raw, raw[:300]
    assert took < 4.0, took  # body_timeout_s 0.5 plus the watchdog's period: far below the 5 s read timeout
