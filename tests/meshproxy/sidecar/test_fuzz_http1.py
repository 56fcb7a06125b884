"""Hypothesis against the sidecar's HTTP/1 handling, on the wire (issue 15, "Beyond fixing").

Request-ish bytes built from the pieces that break proxies (methods, targets, versions, Host and
framing headers, chunked bodies with trailers, bare LF, pipelining) go to the client sidecar's
outbound or, over mTLS with a mesh client certificate, the backend sidecar's inbound. Invariants:

- one request in, at most one answer out: no more responses than requests were sent;
- nothing malformed is forwarded: every arrival at the app has exactly one non-empty Host, no framing
  headers of the caller and no trailer field; the app (aiohttp, strict) never has to refuse what we sent;
- no 5xx of our own for bad input (an answer without the app's ``Server`` header is ours);
- the proxy keeps serving: a good request right after every example gets 200.

The mesh runs in an event loop of its own thread (the examples use blocking sockets), with 0.25 s
header/body/idle timeouts so an unfinished request costs a quarter second. ``@example`` keeps the
corpus of what earlier runs found. A short derandomized run is part of ``pytest tests/``; set
``MESHCONFORM_FUZZ_EXAMPLES`` (e.g. 2000) for a longer, random one.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading

import httptools
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sidecar_testkit import INBOUND_PORT, OUTBOUND_PORT, Kit, mesh_client_ctx, spiffe, two_service_scenario

# pool_idle_s below idle_timeout_s: the pool never reuses a connection the inbound may be closing
LIMITS = {"header_timeout_s": 0.25, "body_timeout_s": 0.25, "idle_timeout_s": 0.25, "pool_idle_s": 0.1,
          "max_body_bytes": 4096, "max_response_headers": 20, "max_response_header_bytes": 2048}
TRAILER_MARK = b"x-fuzz-trailer"
LONG_RUN = int(os.environ.get("MESHCONFORM_FUZZ_EXAMPLES", "0"))
GOOD = b"GET /alive HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n"


class _Mesh:
    """client and backend sidecars plus the backend's recording app, served by a loop in a thread."""

    def __init__(self, tmp_path):
        import uvloop

        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.kit = Kit(tmp_path)
        self.run(self._start())

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        scenario = two_service_scenario()
        self.cip, self.bip = self.kit.ip(), self.kit.ip()
        endpoints = {"backend-v1-0": {"service": "backend", "version": "v1", "instance": 0,
                                      "address": f"{self.bip}:{INBOUND_PORT}"}}
        self.app = await self.kit.app("backend", self.bip)
        await self.kit.sidecar("backend", self.bip, scenario, endpoints, limits=LIMITS)
        await self.kit.sidecar("client", self.cip, scenario, endpoints, limits=LIMITS)
        self.ctx = mesh_client_ctx(self.kit, spiffe("client"))

    def close(self) -> None:
        self.run(self.kit.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    m = _Mesh(tmp_path_factory.mktemp("fuzz"))
    try:
        yield m
    finally:
        m.close()


# -- strategies -------------------------------------------------------------------------------------
tokens = st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"PRI", b"TRACE",
                          b"get", b"G\x00T", b"PATCH", b"M-SEARCH"])
targets = st.sampled_from([b"/", b"/a?b=c", b"*", b"backend:443", b"http://backend/x", b"http://other/x",
                           b"/%00", b"/a b", b"", b"//x"])
versions = st.sampled_from([b" HTTP/1.1", b" HTTP/1.0", b"", b" HTTP/0.9", b" HTTP/2.0", b" HTTP/1.2",
                            b" http/1.1", b" HTTP/1.1 x"])
header_names = st.sampled_from([b"Host", b"host", b"HOST", b"Content-Length", b"Transfer-Encoding", b"Connection",
                                b"Upgrade", b"Expect", b"TE", b"Trailer", b"Keep-Alive", b"x-request-id",
                                b"x-forwarded-client-cert", b"x-envoy-attempt-count", b"Proxy-Connection",
                                b"x-ok", b"Host ", b" Host", b"", b"x y", b"x\x00y"])
header_values = st.sampled_from([b"backend", b"backend:15001", b"other", b"", b"0", b"5", b"-1", b"1, 2",
                                 b"chunked", b"gzip, chunked", b"chunked, gzip", b" chunked", b"xchunked",
                                 b"close", b"keep-alive", b"close, host", b"upgrade", b"h2c", b"websocket",
                                 b"100-continue", b"trailers", b"v\x01", b"a" * 300]) | st.binary(max_size=12)
line_ends = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"])


@st.composite
def chunked_bodies(draw) -> bytes:
    parts = []
    for chunk in draw(st.lists(st.binary(min_size=1, max_size=20), max_size=3)):
        size = draw(st.sampled_from([b"%x" % len(chunk), b"%x" % (len(chunk) + 1), b"%X;ext=1" % len(chunk), b"zz"]))
        parts.append(size + b"\r\n" + chunk + b"\r\n")
    parts.append(b"0\r\n")
    for _ in range(draw(st.integers(0, 2))):
        parts.append(draw(st.sampled_from([TRAILER_MARK + b": 1", b"Host: other", b"x-request-id: t",
                                           b"Content-Length: 3", b"Transfer-Encoding: chunked"])) + b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


@st.composite
def requests(draw) -> bytes:
    end = draw(line_ends)
    head = draw(tokens) + b" " + draw(targets) + draw(versions) + end
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=6))
    if draw(st.booleans()):
        headers.insert(draw(st.integers(0, len(headers))), (b"Host", b"backend"))
    head += b"".join(n + b": " + v + end for n, v in headers) + end
    body = draw(st.one_of(st.just(b""), st.binary(max_size=16), chunked_bodies()))
    return head + body


# -- invariants ---------------------------------------------------------------------------------------
class _Responses:
    def __init__(self) -> None:
        self.answers: list[tuple[int, dict]] = []
        self._headers: dict = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status >= 200:  # 100 Continue is not an answer
            self.answers.append((status, self._headers))
        self._headers = {}


def _responses(raw: bytes) -> list[tuple[int, dict]]:
    collected = _Responses()
    parser = collected._parser = httptools.HttpResponseParser(collected)
    try:
        parser.feed_data(raw)
    except httptools.HttpParserError:
        pass  # whatever follows a refusal's close cannot be a response
    return collected.answers


class _Count:
    def __init__(self) -> None:
        self.complete = 0

    def on_message_complete(self) -> None:
        self.complete += 1


def _requests_in(data: bytes) -> int:
    """How many requests the bytes hold for llhttp (the sidecar's parser): complete ones before the first
    error, not counting an upgrade/CONNECT (what follows it is another protocol)."""
    count = _Count()
    try:
        httptools.HttpRequestParser(count).feed_data(data)
    except httptools.HttpParserUpgrade:
        return count.complete - 1
    except httptools.HttpParserError:
        pass
    return count.complete


def _exchange(mesh: _Mesh, side: str, data: bytes, timeout: float = 3.0) -> bytes:
    if side == "outbound":
        sock = socket.create_connection((mesh.cip, OUTBOUND_PORT), timeout=timeout)
    else:
        raw_sock = socket.create_connection((mesh.bip, INBOUND_PORT), timeout=timeout)
        sock = mesh.ctx.wrap_socket(raw_sock, server_hostname=None)
    chunks = []
    try:
        sock.sendall(data)
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (socket.timeout, ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        sock.close()
    return b"".join(chunks)


def _check(mesh: _Mesh, side: str, sent: list[bytes]) -> None:
    before = len(mesh.app.arrivals)
    data = b"".join(sent)
    raw = _exchange(mesh, side, data)
    answers = _responses(raw)
    # each complete request at most one answer, plus at most one refusal of what follows them
    limit = _requests_in(data) + 1
    assert len(answers) <= limit, f"{len(answers)} answers, at most {limit} allowed: {raw[:600]!r}"
    for status, headers in answers:
        ours = b"server" not in headers
        assert not (ours and status >= 500), f"our {status} for bad input: {raw[:600]!r}"
        assert not (not ours and status == 400), f"the app refused what we forwarded: {raw[:600]!r}"
    for arrival in mesh.app.arrivals[before:]:
        headers = arrival["headers"]
        assert "host" in headers, arrival
        assert "transfer-encoding" not in headers and TRAILER_MARK.decode() not in headers, arrival
        assert "x-forwarded-client-cert" in headers and headers["x-forwarded-client-cert"].startswith("By="), arrival
    alive = _responses(_exchange(mesh, side, GOOD))
    assert [status for status, _ in alive] == [200], "the proxy stopped serving"


FUZZ = settings(max_examples=LONG_RUN or 60, deadline=None, derandomize=not LONG_RUN, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(side=st.sampled_from(["outbound", "inbound"]), first=requests(), pipelined=st.booleans())
# the corpus: shapes earlier runs (and issue 15) found
@example(side="outbound", first=b"GET / HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"0\r\nHost: other\r\nx-fuzz-trailer: 1\r\n\r\n", pipelined=True)
@example(side="outbound", first=b"CONNECT backend:443 HTTP/1.1\r\nHost: backend:443\r\n\r\n", pipelined=True)
@example(side="inbound", first=b"GET /x HTTP/1.1\r\nHost: backend\r\nHost: other\r\n\r\n", pipelined=False)
@example(side="inbound", first=b"GET /x HTTP/1.0\r\nConnection: close, host\r\n\r\n", pipelined=False)
@example(side="outbound", first=b"GET / HTTP/1.1\r\nHost: backend\r\n\r\n\x00garbage\r\n\r\n", pipelined=False)
@example(side="inbound", first=b"GET * HTTP/1.0\r\n\r\n", pipelined=False)  # found: asterisk-form outside OPTIONS
@example(side="inbound", first=b"PRI /\r\n\r\n", pipelined=False)  # found: the HTTP/2 preface method, as 0.9
@example(side="outbound", first=b"PRI / HTTP/1.1\r\nHost: backend\r\n\r\n", pipelined=True)
def test_http1_invariants(mesh, side, first, pipelined):
    keep = b"GET /kept HTTP/1.1\r\nHost: backend\r\n\r\n"
    sent = [keep, first] if pipelined else [first]
    _check(mesh, side, sent)


# -- the response side: what an app answers, through inbound and outbound to the caller -------------------
class _RawApp:
    """The backend's app as raw bytes: answers every request with ``self.answer`` then closes (``/alive``
    gets a plain 200)."""

    def __init__(self) -> None:
        self.answer = b""
        self.server: asyncio.AbstractServer | None = None

    async def start(self, ip: str, port: int) -> None:
        self.server = await asyncio.start_server(self._serve, ip, port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            alive = head.startswith(b"GET /alive ")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" if alive else self.answer)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        self.server.close()


class _ResponseMesh(_Mesh):
    async def _start(self) -> None:
        scenario = two_service_scenario()
        self.cip, self.bip = self.kit.ip(), self.kit.ip()
        endpoints = {"backend-v1-0": {"service": "backend", "version": "v1", "instance": 0,
                                      "address": f"{self.bip}:{INBOUND_PORT}"}}
        from sidecar_testkit import APP_PORT

        self.raw_app = _RawApp()
        await self.raw_app.start(self.bip, APP_PORT)
        await self.kit.sidecar("backend", self.bip, scenario, endpoints, limits=LIMITS)
        await self.kit.sidecar("client", self.cip, scenario, endpoints, limits=LIMITS)
        self.ctx = mesh_client_ctx(self.kit, spiffe("client"))

    def close(self) -> None:
        self.run(self.raw_app.stop())
        super().close()


@pytest.fixture(scope="module")
def response_mesh(tmp_path_factory):
    m = _ResponseMesh(tmp_path_factory.mktemp("fuzz-responses"))
    try:
        yield m
    finally:
        m.close()


statuses = st.sampled_from([b"200 OK", b"204 No Content", b"304 Not Modified", b"100 Continue", b"101 Switching",
                            b"404 Not Found", b"500 Oops", b"999 What", b"20 Short", b"200", b"abc"])
response_headers = st.lists(st.tuples(
    st.sampled_from([b"Content-Length", b"Transfer-Encoding", b"Connection", b"Trailer", b"x-app", b"Set-Cookie",
                     b"Content-Length ", b"", b"Upgrade", b"Keep-Alive"]),
    st.sampled_from([b"0", b"2", b"5", b"-1", b"1, 2", b"chunked", b"gzip", b"close", b"keep-alive", b"x", b""])),
    max_size=5)


@st.composite
def responses(draw) -> bytes:
    end = draw(line_ends)
    head = draw(st.sampled_from([b"HTTP/1.1 ", b"HTTP/1.0 ", b"HTTP/2 ", b"ICY "])) + draw(statuses) + end
    head += b"".join(n + b": " + v + end for n, v in draw(response_headers))
    head += draw(st.sampled_from([b"", b"".join(b"x-pad%d: v%s" % (i, end) for i in range(25)),  # over 20
                                  b"x-big: " + b"b" * 3000 + end]))  # over 2048 bytes
    body = draw(st.one_of(st.binary(max_size=12), chunked_bodies()))
    return head + end + body


def _strictly_invalid(answer: bytes) -> bool:
    """llhttp (strict) refuses ``answer`` before it completes a message, or its head is over the fuzz
    mesh's limits."""
    counted = _Count()
    try:
        httptools.HttpResponseParser(counted).feed_data(answer)
    except httptools.HttpParserUpgrade:
        return False
    except httptools.HttpParserError:
        return counted.complete == 0  # bytes after a complete response only end that connection
    return b"x-pad24:" in answer or b"x-big:" in answer  # the padding the strategy adds to go over the limits


@FUZZ
@given(answer=responses())
@example(answer=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-fuzz-trailer: 1\r\n\r\n")
@example(answer=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
@example(answer=b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
@example(answer=b"HTTP/1.1 101 Switching\r\n\r\n")  # found: a 101 nobody asked for was forwarded
@example(answer=b"HTTP/1.1 999 What\r\n\r\n")  # found: a status outside 100..599 was forwarded
@example(answer=b"HTTP/1.1 200 OK\r\n" + b"".join(b"x-pad%d: v\r\n" % i for i in range(25))  # found: forwarded
         + b"Content-Length: 0\r\n\r\n")
@example(answer=b"HTTP/1.1 200 OK\r\nx-big: " + b"b" * 3000 + b"\r\nContent-Length: 0\r\n\r\n")  # found: forwarded
@example(answer=b"HTTP/1.1 204 No Content\r\n\r\n\x00")  # a valid answer, then garbage: forwarded, connection closed
def test_http1_response_invariants(response_mesh, answer):
    mesh = response_mesh
    mesh.raw_app.answer = answer
    for side in ("outbound", "inbound"):
        raw = _exchange(mesh, side, b"GET /x HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n")
        answers = _responses(raw)
        assert len(answers) == 1, f"{side}: {len(answers)} answers to one request: {raw[:600]!r}"
        status, headers = answers[0]
        assert b"transfer-encoding" not in headers and TRAILER_MARK not in headers, (side, raw[:600])
        assert 200 <= status <= 599, (side, raw[:600])
        if _strictly_invalid(answer):  # nothing malformed is forwarded: one 502 (or a reset's 503) of ours
            assert status in (502, 503) and b"x-pad0" not in headers and b"x-big" not in headers, (side, raw[:600])
        assert [s for s, _ in _responses(_exchange(mesh, side, GOOD))] == [200], f"{side} stopped serving"
