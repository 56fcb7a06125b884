"""Read timeouts and a connection cap for the aiohttp listeners (sidecar admin, control plane).

aiohttp's server bounds only idle keep-alive time: a client that sends its headers a byte at a time, or
declares a body and never sends it, holds the connection (and a file descriptor) as long as it likes.
The data path bounds both (``meshproxy.sidecar.limits``); ``GuardedSite`` gives the aiohttp listeners
the same bounds without touching aiohttp's internals: every connection's protocol is wrapped in a
``GuardedProtocol`` that passes each event through to aiohttp's own ``RequestHandler`` and follows the
same bytes with an httptools parser of its own (off the data path: these listeners see a few requests a
second) to know which phase each request is in:

- a request's head (request line and headers) must be complete within ``header_timeout_s`` of its
  first byte, and the first request within ``header_timeout_s`` of the connection (or its TLS handshake);
  past it the client gets ``408`` and a close (a close alone if an earlier request on the connection may
  still be answering);
- a declared body may not stall for more than ``body_timeout_s`` between chunks (else the connection is
  closed: aiohttp's handler may already be answering);
- between requests aiohttp's ``keepalive_timeout`` applies; a request being handled (e.g. a long-poll)
  has no bound from here;
- at most ``max_connections`` connections at once (``gate``: an object with ``admit() -> bool`` and
  ``release()``, e.g. the sidecar's ``ConnectionGate``, so admin connections count against the same
  file-descriptor budget as the data path); more are closed at once;
- TLS handshakes are bounded by ``header_timeout_s`` too.

If the httptools parser refuses what it is fed (aiohttp, on llhttp as well, answers such input 400),
the connection gets ``header_timeout_s`` to finish, then is closed.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import httptools
from aiohttp import web

_IDLE, _HEADERS, _BODY, _HANDLING, _UNTRACKED = range(5)
_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 16\r\n"
            b"connection: close\r\n\r\nrequest timeout\n")


@dataclass(frozen=True)
class ListenerLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    max_connections: int = 256


class Gate(Protocol):
    def admit(self) -> bool: ...

    def release(self) -> None: ...


class CountingGate:
    """At most ``limit`` at once; with ``also``, a place in that gate is needed too (both or neither)."""

    def __init__(self, limit: int, also: Gate | None = None):
        self.limit = limit
        self.open = 0
        self._also = also

    def admit(self) -> bool:
        if self.open >= self.limit:
            return False
        if self._also is not None and not self._also.admit():
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1
        if self._also is not None:
            self._also.release()


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, with deadlines per request phase and a place in ``gate``."""

    def __init__(self, inner: asyncio.Protocol, limits: ListenerLimits, gate: Gate):
        self._inner = inner
        self._limits = limits
        self._gate = gate
        self._loop = asyncio.get_running_loop()
        self._admitted = False
        self._transport: asyncio.Transport | None = None
        self._parser: Any = None
        self._phase = _IDLE
        self._completed = 0  # requests whose bytes have all arrived
        self._deadline = 0.0  # loop time; 0: none
        self._timer: asyncio.TimerHandle | None = None

    # -- deadlines --------------------------------------------------------------------------------------
    def _arm(self, seconds: float) -> None:
        self._deadline = self._loop.time() + seconds
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._check)

    def _check(self) -> None:
        self._timer = None
        if not self._deadline or self._transport is None:
            return
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._check)  # moved on meanwhile
            return
        self._deadline = 0.0
        transport = self._transport
        if transport.is_closing():
            return
        if self._phase in (_IDLE, _HEADERS) and self._completed == 0:
            transport.write(_TIMEOUT)  # nothing of ours is on the wire yet: a clear answer first
        transport.close()

    # -- transport events, passed through -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        if not self._gate.admit():
            transport.abort()  # type: ignore[attr-defined]
            return
        self._admitted = True
        self._parser = httptools.HttpRequestParser(self)
        self._arm(self._limits.header_timeout_s)
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._deadline = 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._admitted:
            return
        self._admitted = False
        self._gate.release()
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        parser = self._parser
        if parser is not None:
            try:
                parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # nothing here upgrades
                self._parser = None
                self._phase = _UNTRACKED
                self._arm(self._limits.header_timeout_s)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # -- httptools callbacks: the phase of the current request ---------------------------------------
    def on_message_begin(self) -> None:
        self._phase = _HEADERS
        self._arm(self._limits.header_timeout_s)

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        self._arm(self._limits.body_timeout_s)

    def on_body(self, body: bytes) -> None:
        self._deadline = self._loop.time() + self._limits.body_timeout_s

    def on_message_complete(self) -> None:
        self._phase = _HANDLING
        self._completed += 1
        self._deadline = 0.0


class GuardedSite(web.SockSite):
    """``web.SockSite`` whose connections are ``GuardedProtocol``s (see the module docstring)."""

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, *, limits: ListenerLimits,
                 gate: Gate | None = None, ssl_context: Any = None, backlog: int = 128):
        super().__init__(runner, sock, ssl_context=ssl_context, backlog=backlog)
        self._limits = limits
        self.gate: Gate = gate if gate is not None else CountingGate(limits.max_connections)

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        loop = asyncio.get_running_loop()
        server: Callable[[], asyncio.Protocol] = self._runner.server  # type: ignore[assignment]
        limits, gate = self._limits, self.gate
        self._server = await loop.create_server(
            lambda: GuardedProtocol(server(), limits, gate), sock=self._sock, ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=limits.header_timeout_s if self._ssl_context is not None else None)


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket (port 0: a free one) for ``GuardedSite``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
