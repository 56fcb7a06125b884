"""HTTP/1.1 messages on asyncio Protocols, parsed by httptools (llhttp): the hot path of the sidecar.

- ``ServerConnection``: one downstream connection. Parses requests (keep-alive and pipelining), enforces
  the bad-input limits of SPEC §6 and hands each complete request to a handler, one at a time in
  arrival order. The handler answers at once or later through ``respond``; the rendered head and body
  go out with one ``transport.write``.
- ``ClientConnection``: one upstream connection. ``send(bytes, head_only, callback)`` calls back once
  with the ``Response`` or an exception.

Both sides are plain callbacks, no Task or Future per request: a warm request is handled inside the
``data_received`` calls of its two sockets, as in a C proxy's event loop (a Task + Future pair costs
about 5 µs and an extra loop iteration per hop). Handlers that must wait for something else (a new
connection, a backoff) start a task of their own.

Bodies are buffered (at most ``Limits.max_body_bytes``) and forwarded with Content-Length, so chunked
framing never crosses the proxy. Header names are lowercased once at parse time; hop-by-hop headers
(and whatever the caller adds to ``drop``) are removed there too, so forwarding is a join of bytes.

Chunked trailers are dropped, never merged into the headers (RFC 9110 §6.5.1 forbids merging a trailer
field unless its definition allows it; RFC 9112 §7.1.2 lets a recipient that removes the chunked coding
discard them, and we always remove it): nothing routes, authorises or forwards on a trailer, on either
side of the proxy. Their bytes still count against ``max_header_bytes``. Host (RFC 9112 §3.2): two Host
lines are 400; an HTTP/1.1 request without one is 400; an HTTP/1.0 or 0.9 request without one (we
forward every request as HTTP/1.1) gets ``default_host`` when the listener has one (the inbound: its
service name), else it stays without and finds no route (the outbound). A Connection list never removes
Host. Any other HTTP version is 400. A request-target in absolute-form is forwarded in origin-form
with its authority as Host (RFC 9112 §3.2.2); ``*`` is for OPTIONS only; other forms are 400. CONNECT,
PRI and upgrade requests (``Connection: upgrade`` with ``Upgrade``) are refused with one 400 and a close
when their headers are complete, before anything is dispatched; requests pipelined before a refused one
are answered first. Upstream: a 101 (we never ask to upgrade) or a status outside 100..599 is a
protocol error of the upstream (a failed try), never forwarded. So is any invalid response (garbage, a
bad status line, CL+TE, more than ``Limits.max_response_headers`` headers or
``max_response_header_bytes`` of head, a head or body cut short by a close): the caller gets one 502 of
ours (a reset before the first response byte stays a 503; so is a response begun and then stalled for
``Limits.body_timeout_s``), its own connection stays open (its request
was well framed), and the upstream connection is closed, never reused. Bytes from an upstream
connection that has no request in flight (idle in the pool, or after a complete response) close it.

llhttp already refuses the request-smuggling shapes (Content-Length with Transfer-Encoding, a
Transfer-Encoding that is not exactly ``chunked`` last, duplicate or list Content-Length, whitespace
before the colon, control characters in values); the parse error becomes 400 and a close. The checks in
``on_header`` repeat the two most important ones so a lenient parser build cannot forward them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import replace
from http import HTTPStatus
from typing import Any, Callable

import httptools

from meshproxy import defects as _defects
from meshproxy.sidecar.limits import ConnectionGate, Limits, Watchdog

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
    b"upgrade", b"content-length", b"expect", b"proxy-authenticate", b"proxy-authorization",
})
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_REFUSED_METHODS = {b"CONNECT": b"CONNECT is not supported",
                    b"PRI": b"PRI is the HTTP/2 connection preface, not an HTTP/1 request"}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# trace context and the caller's workload (docs/architecture.md "Telemetry"): when a listener drops one of
# these (its ``drop`` set), the pair is kept aside on ``Request.trace`` for the handler, never forwarded
CAPTURED = frozenset({b"traceparent", b"x-b3-traceid", b"x-b3-spanid", b"x-b3-parentspanid", b"x-b3-sampled",
                      b"x-envoy-peer-metadata-id"})


class _WireDefects:
    """The deliberate defects of meshproxy/defects.py honoured here (suites/hardening proves each is
    caught), read once per process; None in a correct mesh, so the hot path tests one attribute."""

    NAMES = ("forward_cl_te", "merge_trailers", "accept_duplicate_host", "accept_connect", "wedged_after_bad_input",
             "no_header_timeout", "no_body_timeout", "no_header_limits")

    def __init__(self, defects: _defects.Defects):
        (self.cl_te, self.merge_trailers, self.duplicate_host, self.connect, self.wedge, self.no_header_timeout,
         self.no_body_timeout, self.no_header_limits) = (defects.active(n) for n in self.NAMES)
        self.wedged = False  # wedged_after_bad_input: set at the first refusal, then every connection is cut

    def limits(self, limits: Limits) -> Limits:
        """The limits a connection enforces under the defects no_header_timeout (headers may trickle in
        for ever), no_body_timeout (a declared body may stall for ever) and no_header_limits (any number
        and size of request headers)."""
        never, unbounded = 1e9, 1 << 40
        if self.no_header_timeout:
            limits = replace(limits, header_timeout_s=never)
        if self.no_body_timeout:
            limits = replace(limits, body_timeout_s=never)
        if self.no_header_limits:
            limits = replace(limits, max_headers=1 << 30, max_header_bytes=unbounded)
        return limits


_WIRE: "_WireDefects | None | bool" = False


def _wire_defects() -> "_WireDefects | None":
    global _WIRE
    if _WIRE is False:
        current = _defects.current()
        _WIRE = _WireDefects(current) if any(current.active(n) for n in _WireDefects.NAMES) else None
    return _WIRE


def reason_of(status: int) -> bytes:
    return _REASONS.get(status, b"Unknown")


def render_head(status: int, headers: bytes, body_len: int, reason: bytes | None = None) -> bytes:
    """Status line, the pre-rendered header lines and Content-Length (no final blank line)."""
    if status == 204 or status == 304:  # never a body, and RFC 9110 forbids Content-Length on 204
        return b"HTTP/1.1 %d %s\r\n%s" % (status, reason or reason_of(status), headers)
    return b"HTTP/1.1 %d %s\r\n%scontent-length: %d\r\n" % (
        status, reason or reason_of(status), headers, body_len)


def simple_reply(status: int, body: bytes = b"", extra: bytes = b"") -> tuple[bytes, bytes]:
    """A response of the proxy's own: ``extra`` is rendered header lines, e.g. b"x-a: 1\\r\\n"."""
    return render_head(status, b"content-type: text/plain\r\n" + extra, len(body)), body


def header_block(headers: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join([b"%s: %s\r\n" % hv for hv in headers])


class Request:
    __slots__ = ("method", "url", "headers", "host", "body", "keep_alive", "trace")

    def __init__(self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], host: bytes | None,
                 body: bytes, keep_alive: bool, trace: list[tuple[bytes, bytes]] | None = None):
        self.trace = trace  # the CAPTURED headers the listener dropped (None: none arrived)
        self.method = method
        self.url = url
        self.headers = headers  # lowercase names, hop-by-hop removed
        self.host = host
        self.body = body
        self.keep_alive = keep_alive

    def path(self) -> str:
        url = self.url
        cut = url.find(b"?")
        return (url if cut < 0 else url[:cut]).decode("latin-1")

    def header(self, name: bytes) -> bytes | None:
        for n, v in self.headers:
            if n == name:
                return v
        return None


class Response:
    __slots__ = ("status", "reason", "headers", "body")

    def __init__(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], body: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def render(self, extra: bytes = b"") -> tuple[bytes, bytes]:
        return render_head(self.status, header_block(self.headers) + extra, len(self.body),
                           self.reason or None), self.body


class _Reject(Exception):
    def __init__(self, status: int, body: bytes):
        self.status = status
        self.body = body


Reply = tuple[bytes, bytes]
# A handler answers at once (returns the Reply) or later (returns None, then calls conn.respond once).
Handler = Callable[[Request, "ServerConnection"], "Reply | None"]

_IDLE, _HEADERS, _BODY, _DONE = range(4)


class ServerConnection(asyncio.Protocol):
    """A downstream HTTP/1.1 connection (plain or TLS: the transport hides which)."""

    def __init__(self, handler: Handler, limits: Limits, watchdog: Watchdog,
                 drop: frozenset[bytes] = HOP_BY_HOP, gate: ConnectionGate | None = None,
                 admitted: bool = True, default_host: bytes | None = None):
        self._handler = handler
        self._default_host = default_host  # Host for HTTP/1.0 and 0.9 requests that have none
        self._wire = wire = _wire_defects()
        if wire is not None:
            limits = wire.limits(limits)
        self._limits = limits
        # read on every header line: plain attributes, not two lookups through ``limits`` each time
        self._max_headers = limits.max_headers
        self._max_header_bytes = limits.max_header_bytes
        self._watchdog = watchdog
        self._drop = drop
        self._gate = gate  # the connection cap; ``admitted``: the listener has already counted us
        self._admitted = admitted
        self._current: Request | None = None
        self.on_lost: Callable[[], None] | None = None  # set by a handler still working on a request
        self.made = False
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        if wire is not None and wire.cl_te:
            self._parser.set_dangerous_leniencies(lenient_chunked_length=True)  # the defect: TE wins over CL
        self._queue: deque[Request | _Reject] = deque()
        self._busy = False
        self._state = _IDLE
        self._began_in_feed = False
        self._raw_header_bytes = 0
        self.transport: asyncio.Transport | None = None
        self.deadline = 0.0
        self.peer_id: str | None = None  # set by the inbound listener after the TLS handshake
        self.xfcc: bytes = b""  # rendered x-forwarded-client-cert line, per connection
        self._reset_message()

    def _reset_message(self) -> None:
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._body_len = 0
        self._header_bytes = 0
        self._host: bytes | None = None
        self._connection_tokens: bytes | None = None
        self._expect_continue = False
        self._te: bytes | None = None
        self._cl: bytes | None = None
        self._trace: list[tuple[bytes, bytes]] | None = None

    # -- transport events -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.made = True
        if not self._admitted and self._gate is not None:
            self._admitted = self._gate.admit()
            if not self._admitted:
                self._parser = None
                transport.abort()
                return
        if self._wire is not None and self._wire.wedged:  # the defect wedged_after_bad_input
            self._parser = None
            transport.abort()
            return
        self.deadline = self._loop.time() + self._limits.idle_timeout_s
        self._watchdog.watched.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._watchdog.watched.discard(self)
        self._parser = None
        self.transport = None
        if self._admitted and self.made and self._gate is not None:
            self._gate.release()
            self._admitted = False
        self._current = None
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost()  # the caller is gone: stop working (and holding an upstream) on its behalf

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            return
        self._began_in_feed = False
        try:
            parser.feed_data(data)
        except _Reject as reject:
            self._refuse(reject)
            return
        except httptools.HttpParserUpgrade as exc:
            if self._wire is not None and self._wire.connect and self._method == b"CONNECT":
                # the defect accept_connect: "tunnelled" bytes are read as requests on a fresh parser
                self._parser = httptools.HttpRequestParser(self)
                self.data_received(data[exc.args[0]:] if exc.args and isinstance(exc.args[0], int) else b"")
                return
            self._refuse(_Reject(400, b"protocol upgrade is not supported"))
            return
        except httptools.HttpParserError as exc:
            # llhttp wraps what a callback raised (our 413/431) in HttpParserCallbackError
            reject = exc.__context__ if isinstance(exc.__context__, _Reject) else None
            self._refuse(reject or _Reject(400, f"bad request: {exc}".encode()))
            return
        if self._state == _HEADERS:
            # on_header sees a header only once the next one starts: count raw bytes for the rest
            self._raw_header_bytes = len(data) if self._began_in_feed else self._raw_header_bytes + len(data)
            if self._raw_header_bytes > self._limits.max_header_bytes + 2:
                self._refuse(_Reject(431, b"request headers too large"))
        elif self._max_headers == 0:  # inside a chunked body (on_header): trailers build up unseen too
            if self._body_len != self._chunk_mark:
                self._chunk_mark = self._body_len  # the body moved on: not a trailer section (yet)
                self._raw_header_bytes = 0
            else:
                self._raw_header_bytes += len(data)
                if self._raw_header_bytes > self._limits.max_header_bytes + 4096:
                    self._refuse(_Reject(431, b"request trailers too large"))

    def eof_received(self) -> bool:
        return False  # a half-closed client gets no further answers; close once we are done

    def on_deadline(self) -> None:
        if self._state in (_HEADERS, _BODY) and self.transport is not None:
            self._refuse(_Reject(408, b"request timeout"))
        elif not self._busy and self.transport is not None:
            self.transport.close()  # idle keep-alive connection: close quietly

    # -- parser callbacks ---------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._state = _HEADERS
        self._began_in_feed = True
        self.deadline = self._loop.time() + self._limits.header_timeout_s

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        headers = self._headers
        if len(headers) >= self._max_headers or self._header_bytes > self._max_header_bytes:
            # _max_headers is 0 from a chunked request's Transfer-Encoding line to its end (see below),
            # so its trailer fields come here: one test for those instead of one per field of every request
            if self._header_bytes > self._max_header_bytes or len(headers) >= self._limits.max_headers:
                raise _Reject(431, b"request headers too large or too many")
            if self._state != _HEADERS:
                if self._wire is not None and self._wire.merge_trailers:
                    headers.append((name.lower(), value))  # the defect merge_trailers
                return  # a chunked trailer field: dropped, never a header (module docstring)
        name = name.lower()
        if name in self._drop:
            if name in CAPTURED:  # every request between sidecars carries six of these: tested first
                if self._trace is None:
                    self._trace = [(name, value)]
                else:
                    self._trace.append((name, value))
            elif name == b"content-length":
                if self._cl is not None or (self._te is not None and not (self._wire and self._wire.cl_te)):
                    raise _Reject(400, b"conflicting message length")
                self._cl = value
            elif name == b"transfer-encoding":
                if ((self._cl is not None and not (self._wire and self._wire.cl_te)) or self._te is not None
                        or value.strip().lower() != b"chunked"):
                    raise _Reject(400, b"unsupported transfer-encoding")
                self._te = value
                self._max_headers = 0  # trailers may follow the body (the limit check above; restored at the end)
                self._chunk_mark = -1  # data_received counts what arrives without moving the body on
            elif name == b"connection":
                self._connection_tokens = value.lower()
            elif name == b"expect":
                self._expect_continue = value.lower() == b"100-continue"
            return
        if name == b"host":
            if self._host is not None:
                if not (self._wire and self._wire.duplicate_host):  # the defect accept_duplicate_host
                    raise _Reject(400, b"more than one Host header")
            else:
                self._host = value
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._state = _BODY
        self.deadline = self._loop.time() + self._limits.body_timeout_s
        parser = self._parser
        method = self._method = parser.get_method()  # on_message_complete reuses it
        connect = method == b"CONNECT" and self._wire is not None and self._wire.connect  # accept_connect
        if method in _REFUSED_METHODS and not connect:
            raise _Reject(400, _REFUSED_METHODS[method])
        # an upgrade needs Connection: upgrade (llhttp's rule too): refused before dispatch
        if self._connection_tokens is not None and parser.should_upgrade():
            raise _Reject(400, b"protocol upgrade is not supported")
        keep_alive = self._keep_alive = parser.should_keep_alive()  # on_message_complete reuses it
        if self._host is None or not keep_alive:
            self._check_version(parser)  # a keep-alive request with a Host is HTTP/1.1 or 1.0 keep-alive
        if self._url[:1] != b"/" and not connect:
            self._check_target(parser)  # not origin-form
        if self._cl is not None and int(self._cl) > self._limits.max_body_bytes:
            raise _Reject(413, b"request body too large")
        tokens = self._connection_tokens
        if tokens and tokens not in (b"keep-alive", b"close"):
            # headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1), except Host
            named = {t.strip() for t in tokens.split(b",")}
            named.discard(b"host")
            self._headers = [(n, v) for n, v in self._headers if n not in named]
        if self._expect_continue and self.transport is not None:
            self.transport.write(_CONTINUE)

    def _check_version(self, parser: Any) -> None:
        """Host rules of RFC 9112 §3.2 by version; we forward HTTP/1.1 only, so others are refused."""
        version = parser.get_http_version()
        if version == "1.1":
            if self._host is None:
                raise _Reject(400, b"HTTP/1.1 request without Host")
        elif version == "1.0" or version == "0.9":
            if self._host is None and self._default_host is not None:
                self._host = self._default_host
                self._headers.append((b"host", self._default_host))
        else:
            raise _Reject(400, b"unsupported HTTP version")

    def _check_target(self, parser: Any) -> None:
        """The request-target forms of RFC 9112 §3.2 besides origin-form: ``*`` only with OPTIONS;
        absolute-form (http/https, no userinfo) is forwarded in origin-form with its authority as Host
        (§3.2.2: it wins over a Host header), so routing and the app see the same host; anything else
        (authority-form outside CONNECT, garbage) is 400."""
        url = self._url
        if url == b"*":
            if parser.get_method() != b"OPTIONS":
                raise _Reject(400, b"asterisk-form request-target is for OPTIONS only")
            return
        try:
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            raise _Reject(400, b"invalid request-target") from None
        if (parsed.schema is None or parsed.schema.lower() not in (b"http", b"https") or not parsed.host
                or parsed.userinfo is not None):
            raise _Reject(400, b"invalid request-target")
        host = b"[%s]" % parsed.host if b":" in parsed.host else parsed.host  # an IPv6 literal
        authority = host if parsed.port is None else b"%s:%d" % (host, parsed.port)
        self._url = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query is not None else b"")
        self._headers = [(n, v) for n, v in self._headers if n != b"host"]
        self._headers.append((b"host", authority))
        self._host = authority

    def on_body(self, body: bytes) -> None:
        self._body_len += len(body)
        if self._body_len > self._limits.max_body_bytes:
            raise _Reject(413, b"request body too large")
        self._body.append(body)
        self.deadline = self._loop.time() + self._limits.body_timeout_s

    def on_message_complete(self) -> None:
        body = self._body
        if self._max_headers == 0:
            self._max_headers = self._limits.max_headers  # after a chunked body (on_header)
        request = Request(self._method, self._url, self._headers, self._host,
                          body[0] if len(body) == 1 else b"".join(body), self._keep_alive, self._trace)
        self._reset_message()
        self._state = _DONE
        self.deadline = 0.0
        if self._method == b"CONNECT" and not self._busy:  # only with the defect accept_connect
            request.keep_alive = True
            self._busy, self._current = True, request
            self.respond(simple_reply(200))  # "tunnel established"
            return
        if self._busy:
            self._queue.append(request)  # pipelined: answered in order once the current one is done
        else:
            self._dispatch(request)

    # -- answering ----------------------------------------------------------------------------------
    def _dispatch(self, request: Request) -> None:
        self._busy = True
        self._current = request
        try:
            reply = self._handler(request, self)
        except Exception:
            log.exception("handler failed")
            reply = simple_reply(500, b"internal proxy error")
        if reply is not None:
            self.respond(reply)

    def respond(self, reply: Reply) -> None:
        """Write the answer to the current request (now, or later from a callback or a task)."""
        request, self._current = self._current, None
        self.on_lost = None
        transport = self.transport
        if request is None or transport is None or transport.is_closing():
            return
        head, body = reply
        # parser gone: a later pipelined request was refused; the queue still holds what came before it
        if request.keep_alive and (self._parser is not None or self._queue):
            if len(body) < 65536:
                transport.write(head + b"\r\n" + body)
            else:
                transport.writelines((head, b"\r\n", body))
        else:
            transport.writelines((head, b"connection: close\r\n\r\n", body))
            transport.close()
            return
        self._busy = False
        if self._queue:
            item = self._queue.popleft()
            if isinstance(item, _Reject):
                self._write_refusal(item)
            else:
                self._dispatch(item)
        elif self._state == _DONE and self._parser is not None:
            self._state = _IDLE
            self.deadline = self._loop.time() + self._limits.idle_timeout_s

    def _refuse(self, reject: _Reject) -> None:
        """Answer a bad request after any in-flight ones, then close; parse nothing more."""
        if self._wire is not None and self._wire.wedge:
            self._wire.wedged = True  # the defect wedged_after_bad_input
        self._parser = None
        self._state = _DONE
        if self._busy:
            self._queue.append(reject)
        else:
            self._write_refusal(reject)

    def _write_refusal(self, reject: _Reject) -> None:
        head, body = simple_reply(reject.status, reject.body)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head + b"connection: close\r\n\r\n" + body)
            self.transport.close()


class UpstreamReset(ConnectionError):
    """The upstream closed or reset the connection before a complete response."""


class UpstreamProtocolError(ConnectionError):
    """The upstream sent something that is not a valid HTTP/1.1 response: garbage, a bad status line,
    Content-Length with Transfer-Encoding, a head or body over the limits, or an answer cut short by
    its close. Answered :data:`INVALID_RESPONSE` (when no retry is left), never forwarded."""


INVALID_RESPONSE = simple_reply(502, b"upstream sent an invalid response\n")  # RFC 9110 §15.6.3


class ClientConnection(asyncio.Protocol):
    """An upstream HTTP/1.1 connection, used for one request at a time (the pool keeps it alive)."""

    # slots: past about 30 attributes CPython's shared-key instance dicts stop, and every attribute
    # read of the hot path gets slower (measured: +0.2 µs per response at 30 attributes)
    __slots__ = ("_loop", "_watchdog", "_stall_s", "_watched", "deadline", "_max_body", "_max_headers",
                 "_max_header_bytes", "_feed", "_on_lost", "_parser", "_callback", "_head_only", "transport",
                 "closed", "reusable", "idle_since", "key", "owner", "lent", "lent_at", "_reason", "_headers",
                 "_body", "_body_len", "_status", "_in_body", "_has_length", "_raw_head", "_final_headers")

    def __init__(self, max_body_bytes: int, on_lost: Callable[["ClientConnection"], None] | None = None,
                 max_headers: int = 100, max_header_bytes: int = 64 * 1024, watchdog: Watchdog | None = None,
                 stall_s: float = 10.0):
        self._loop = asyncio.get_running_loop()
        # a response begun and then stalled (no byte for ``stall_s``) is failed by the watchdog; watched
        # only once a response has spanned a read, so a warm one-read response never touches it
        self._watchdog = watchdog
        self._stall_s = stall_s
        self._watched = False
        self.deadline = 0.0  # the watchdog's; set by every read that leaves a response unfinished
        self._max_body = max_body_bytes
        self._max_headers = max_headers  # the response's status line and headers (Limits.max_response_*)
        self._max_header_bytes = max_header_bytes
        self._feed = 0
        self._on_lost = on_lost
        self._parser = httptools.HttpResponseParser(self)
        self._callback: Callable[[Any], None] | None = None
        self._head_only = False
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self.key: object = None
        self.owner: object = None  # whoever counts this connection (the destination's breaker slots)
        self.lent = False  # the pool has lent it to a request (pool.UpstreamPool counts these)
        self.lent_at = 0.0
        self._reset_message()

    def _reset_message(self) -> None:
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._body_len = 0
        self._status = 0
        self._in_body = False
        self._has_length = False
        self._raw_head = -1  # -1: no byte of this response yet; then the bytes of the reads in which its
        # head was still incomplete (and a close now truncates the response)

    def send(self, data: bytes, head_only: bool, callback: Callable[[Any], None]) -> None:
        """Write one request; ``callback`` gets the Response, or UpstreamReset / UpstreamProtocolError."""
        self._callback = callback
        self._head_only = head_only
        self.reusable = False
        self.transport.write(data)

    def send_and_wait(self, data: bytes, head_only: bool = False) -> asyncio.Future:
        """``send`` for coroutines: a future of the Response (or the exception)."""
        fut = self._loop.create_future()

        def done(result: Any) -> None:
            if fut.done():
                return
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)
        self.send(data, head_only, done)
        return fut

    def abandon(self) -> None:
        """Forget the request in flight (timeout, caller gone) and close: the answer would be stale."""
        self._callback = None
        self.abort()

    def abort(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    def _deliver(self, result: Any) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            callback(result)

    # -- transport events -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._watched:
            self._watched = False
            self._watchdog.watched.discard(self)
        if self._callback is not None:
            if self._in_body and not self._has_length:
                self._finish()  # a body delimited by the close (no length, not chunked)
            elif self._raw_head >= 0:  # an answer began and never ended: an invalid response, not a reset
                self._deliver(UpstreamProtocolError("response truncated by the upstream's close"))
            else:
                self._deliver(UpstreamReset(str(exc) if exc else "connection closed"))
        if self._on_lost is not None:
            self._on_lost(self)

    def eof_received(self) -> bool:
        return False

    def data_received(self, data: bytes) -> None:
        if self._callback is None:
            self.abort()  # bytes nobody asked for: the connection cannot be trusted any more
            return
        self._feed = len(data)  # on_headers_complete bounds the head by it (no count per header line)
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade, UpstreamProtocolError) as exc:
            self._fail(UpstreamProtocolError(str(exc.__context__ or exc)))
            return
        if self._raw_head >= 0:  # a response begun and not finished by this read
            if not self._in_body:
                # a header line is seen only once complete (on_header): bound what builds up before that
                self._raw_head += len(data)
                if self._raw_head > self._max_header_bytes + 2:
                    self._fail(UpstreamProtocolError("response headers too large"))
                    return
            if self._watchdog is not None:
                self.deadline = self._loop.time() + self._stall_s
                if not self._watched:
                    self._watched = True
                    self._watchdog.watched.add(self)

    def on_deadline(self) -> None:
        """The watchdog: a begun response had no byte for ``stall_s``."""
        if self._callback is not None and self._raw_head >= 0:  # a stale deadline of an earlier one: ignored
            self._fail(UpstreamProtocolError(f"response stalled for {self._stall_s:g} s"))

    def _fail(self, exc: Exception) -> None:
        self.abort()
        self._deliver(exc)

    # -- parser callbacks -----------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._callback is None:
            raise UpstreamProtocolError("a response nobody asked for")
        self._raw_head = 0

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name in HOP_BY_HOP:
            if name == b"content-length" or name == b"transfer-encoding":
                self._has_length = True
            return
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._status = self._parser.get_status_code()
        headers = self._headers
        if len(headers) > self._max_headers:
            raise UpstreamProtocolError("too many response headers")
        if self._raw_head + self._feed > self._max_header_bytes and (  # the head may be over: count it
                len(self._reason) + sum(len(n) + len(v) + 4 for n, v in headers) > self._max_header_bytes):
            raise UpstreamProtocolError("response headers too large")
        if not 200 <= status <= 599 and (status < 100 or status > 599 or status == 101):
            # not a status (RFC 9110 §15), or 101 though we never ask to upgrade: a broken upstream
            raise UpstreamProtocolError(f"invalid status {status}")
        self._in_body = True
        # trailer fields of a chunked body go on to a list nobody reads: dropped, never headers
        self._final_headers, self._headers = self._headers, []
        if self._head_only and self._status >= 200:
            # llhttp cannot know a HEAD response has no body: finish here, and do not reuse
            self.abort()
            self._finish()

    def on_body(self, body: bytes) -> None:
        self._body_len += len(body)
        if self._body_len > self._max_body:
            raise UpstreamProtocolError("response body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._status < 200:
            self._reset_message()  # interim response (100 Continue): the real one follows
            return
        if self._callback is not None:
            self.reusable = not self.closed and self._parser.should_keep_alive()
            self._finish()

    def _finish(self) -> None:
        body = self._body
        response = Response(self._status, self._reason, self._final_headers,
                            body[0] if len(body) == 1 else b"".join(body))
        self._reset_message()
        self._deliver(response)
