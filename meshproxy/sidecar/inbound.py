"""Inbound: mesh -> app. Accepts, decides TLS per connection by the current mTLS mode, checks the
peer's identity and authorization, sets XFCC and forwards to the app over a keep-alive pool.

The accept loop is ours (``loop.add_reader`` on the listening socket) because the mode can change with
every configuration: STRICT hands the socket to ``loop.connect_accepted_socket`` with the server
context (TLS 1.2+, client certificate required, chained to the bundle); DISABLE serves it plain;
PERMISSIVE waits until it is readable, peeks one byte (``MSG_PEEK``) and treats 0x16 (a TLS handshake
record) as TLS, anything else as plaintext.

After the handshake the peer's SPIFFE ID is read once per connection; a peer without one, or from
another trust domain, is disconnected before any request is read. Authz: a caller not in
``allowed_principals`` gets 403 ``RBAC: access denied`` and nothing reaches the app. The app sees
``x-forwarded-client-cert: By=<own id>;URI=<peer id>``; any incoming XFCC is removed at parse time.

A TLS handshake must complete within ``Limits.header_timeout_s`` (10 s), else the connection is
closed: garbage, a truncated ClientHello or a silent peer hold a slot no longer than that.

Defects: ``inbound_cert_optional``, ``skip_trust_domain_check``, ``spoof_xfcc``, ``no_handshake_timeout`` (and, via the config,
``inbound_accepts_plaintext``, ``plaintext_between_sidecars``, ``ignore_authz``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
from time import time as _clock
from typing import Any

from meshscenario import MtlsMode
from meshproxy.sidecar import tls
from meshproxy.sidecar.certs import CertificateStore
from meshproxy.sidecar.config import ConfigStore
from meshproxy.policy.tracecontext import Span, child, incoming, render
from meshproxy.sidecar.http1 import (CAPTURED, HOP_BY_HOP, INVALID_RESPONSE, Reply, Request, ServerConnection, UpstreamProtocolError,
                                     header_block, simple_reply)
from meshproxy.sidecar.limits import ConnectionGate, Limits, Watchdog
from meshproxy.sidecar.metrics import Metrics
from meshproxy.sidecar.pool import ConnectFailure, UpstreamPool
from meshproxy.sidecar.telemetry import Telemetry
from meshproxy.defects import Defects

log = logging.getLogger(__name__)

XFCC = b"x-forwarded-client-cert"
DENIED = simple_reply(403, b"RBAC: access denied")
APP_UNREACHABLE = simple_reply(503, b"upstream connect error or disconnect/reset before headers\n")
NOT_READY = simple_reply(503, b"no configuration yet\n")
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
_TLS_HANDSHAKE_RECORD = 0x16


class InboundConnection(ServerConnection):
    """A downstream connection from the mesh: learns the peer's identity before serving anything."""

    def __init__(self, inbound: "Inbound", *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._inbound = inbound
        # (workload, service, principal, security) of the caller, learnt at its first request: every
        # request of one connection comes from the same caller (telemetry.Telemetry.inbound)
        self.source: tuple[str, str, str, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        if transport.get_extra_info("ssl_object") is not None:
            refusal = self._inbound.check_peer(transport)
            if refusal:
                log.info("inbound: refused TLS peer: %s", refusal)
                self._inbound.metrics.tls_handshake_failures += 1
                transport.abort()
                return
            self.peer_id = tls.peer_spiffe_id(transport)
            if self.peer_id is not None:
                self.xfcc = b"x-forwarded-client-cert: By=%s;URI=%s\r\n" % (
                    self._inbound.own_id.encode(), self.peer_id.encode())


class Inbound:
    def __init__(self, *, own_id: str, trust_domain: str, app: tuple[str, int], config: ConfigStore,
                 certs: CertificateStore, pool: UpstreamPool, limits: Limits, watchdog: Watchdog,
                 gate: ConnectionGate, metrics: Metrics, defects: Defects, service: str | None = None,
                 telemetry: Telemetry | None = None, rng: random.Random | None = None):
        self.own_id = own_id
        self.telemetry = telemetry
        self.rng = rng or random.Random()
        self._wrong_parent = defects.active("span_wrong_parent")
        # the Host of HTTP/1.0 and 0.9 requests that have none (we forward HTTP/1.1, which needs one)
        self._default_host = service.encode() if service else None
        self.metrics = metrics
        self._trust_domain = trust_domain
        self._app_host, self._app_port = app
        self._app_key = ("app", app)
        self._config = config
        self._certs = certs
        self._pool = pool
        self._limits = limits
        self._watchdog = watchdog
        self._gate = gate
        self._defects = defects
        self._spoof_xfcc = bool(defects.active("spoof_xfcc"))
        # the TLS handshake shares the header bound; the defect no_handshake_timeout waits for ever
        self._handshake_timeout = 1e9 if defects.active("no_handshake_timeout") else limits.header_timeout_s
        # trace context and the caller's workload are read at parse time (Request.trace), never forwarded
        self._drop = HOP_BY_HOP | CAPTURED if self._spoof_xfcc else HOP_BY_HOP | CAPTURED | {XFCC}
        self._loop = asyncio.get_running_loop()
        self._sock: socket.socket | None = None

    # -- identity -------------------------------------------------------------------------------------
    def check_peer(self, transport: asyncio.Transport) -> str | None:
        """Why this TLS peer is refused, or None to serve it."""
        peer = tls.peer_spiffe_id(transport)
        if peer is None:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object.getpeercert(binary_form=True) is None and self._defects.active("inbound_cert_optional"):
                return None
            return "no SPIFFE ID in the client certificate"
        if tls.trust_domain_of(peer) != self._trust_domain and not self._defects.active("skip_trust_domain_check"):
            return f"{peer} is not in trust domain {self._trust_domain}"
        return None

    # -- accepting ------------------------------------------------------------------------------------
    def start(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._loop.add_reader(sock.fileno(), self._on_acceptable)

    def stop(self) -> None:
        if self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _on_acceptable(self) -> None:
        for _ in range(128):  # a bounded batch per wake-up, so a flood cannot starve the loop
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: leave the rest in the backlog
                log.warning("inbound accept failed: %s", exc)
                return
            if not self._gate.admit():
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            snap = self._config.current
            mode = snap.inbound_mode if snap is not None else MtlsMode.STRICT
            if mode is MtlsMode.STRICT:
                self._loop.create_task(self._serve_tls(sock))
            elif mode is MtlsMode.DISABLE:
                self._serve_plain(sock)
            else:
                self._sniff(sock)

    def _protocol(self) -> InboundConnection:
        return InboundConnection(self, self.handle, self._limits, self._watchdog, self._drop, self._gate,
                                 default_host=self._default_host)

    def _serve_plain(self, sock: socket.socket) -> None:
        self._loop.create_task(self._adopt(sock, None))

    async def _serve_tls(self, sock: socket.socket) -> None:
        await self._adopt(sock, self._certs.server_ctx)

    async def _adopt(self, sock: socket.socket, ctx: ssl.SSLContext | None) -> None:
        protocol = self._protocol()
        try:  # from here on the loop owns (and closes) the socket
            await self._loop.connect_accepted_socket(
                lambda: protocol, sock, ssl=ctx,
                ssl_handshake_timeout=self._handshake_timeout if ctx else None)
        except Exception as exc:  # handshake refused: foreign CA, no certificate, garbage, plaintext
            if ctx is not None:
                self.metrics.tls_handshake_failures += 1
            log.debug("inbound: connection dropped before serving: %s", exc)
            if not protocol.made:
                self._gate.release()

    def _sniff(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        loop = self._loop

        def give_up() -> None:
            loop.remove_reader(fd)
            self._gate.release()
            sock.close()

        def readable() -> None:
            try:
                first = sock.recv(1, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                return  # spurious wake-up: keep waiting
            except OSError:
                first = b""
            loop.remove_reader(fd)
            timer.cancel()
            if not first:
                self._gate.release()
                sock.close()
            elif first[0] == _TLS_HANDSHAKE_RECORD:
                loop.create_task(self._serve_tls(sock))
            else:
                self._serve_plain(sock)

        timer = loop.call_later(self._limits.header_timeout_s, give_up)
        loop.add_reader(fd, readable)

    # -- requests -------------------------------------------------------------------------------------
    def handle(self, req: Request, conn: ServerConnection) -> Reply | None:
        """Answer at once (403, 503) or forward and answer from the upstream's callback."""
        t0 = _clock()  # telemetry: epoch seconds, µs resolution (uvloop's loop.time() counts whole ms)
        snap = self._config.current
        if snap is None:
            return self._done(NOT_READY, "NC", req, conn, t0, snap, None)
        if not snap.allows(conn.peer_id):
            self.metrics.authz_denied += 1
            return self._done(DENIED, "RBAC", req, conn, t0, snap, None)
        xfcc = conn.xfcc
        if self._spoof_xfcc and req.header(XFCC) is not None:
            xfcc = b""
        # this hop's SERVER span under the span the caller sent; the app sees it as its parent
        parent = incoming(req.trace)
        span = child(parent, self.rng, snap.sampling)
        if self._wrong_parent and parent is not None and parent.parent_id is not None:
            span = span._replace(parent_id=parent.parent_id)  # the defect span_wrong_parent: the app's span
        body = req.body
        length = b"content-length: %d\r\n" % len(body) if body or req.method in _BODY_METHODS else b""
        data = b"%s %s HTTP/1.1\r\n%s%s%s%s\r\n%s" % (req.method, req.url, header_block(req.headers), render(span),
                                                      xfcc, length, body)
        head_only = req.method == b"HEAD"
        upstream = self._pool.take_idle(self._app_key)
        if upstream is None:
            task = self._loop.create_task(self._connect_and_send(conn, data, head_only, req, t0, snap, span))
            conn.on_lost = task.cancel
            return None
        self._send(conn, upstream, data, head_only, req, t0, snap, span)
        return None

    def _send(self, conn: ServerConnection, upstream: Any, data: bytes, head_only: bool, req: Request, t0: float,
              snap: Any, span: Span) -> None:
        sent_at = _clock()

        def answered(result: Any) -> None:
            if isinstance(result, BaseException):
                invalid = isinstance(result, UpstreamProtocolError)
                conn.respond(self._done(INVALID_RESPONSE if invalid else APP_UNREACHABLE, "UPE" if invalid else "UC",
                                        req, conn, t0, snap, span, _clock() - sent_at))
                return
            self._pool.release(upstream)
            conn.respond(self._done(result.render(), "-", req, conn, t0, snap, span, _clock() - sent_at))

        def lost() -> None:  # the caller went away: do not leave its answer on a pooled socket
            upstream.abandon()
            self._done(None, "DC", req, conn, t0, snap, span)

        conn.on_lost = lost
        upstream.send(data, head_only, answered)

    async def _connect_and_send(self, conn: ServerConnection, data: bytes, head_only: bool, req: Request,
                                t0: float, snap: Any, span: Span) -> None:
        try:
            upstream = await self._pool.connect(self._app_key, self._app_host, self._app_port, None, None, None, None)
        except ConnectFailure:
            conn.respond(self._done(APP_UNREACHABLE, "UF", req, conn, t0, snap, span))
            return
        self._send(conn, upstream, data, head_only, req, t0, snap, span)

    def _done(self, reply: Reply | None, flags: str, req: Request, conn: ServerConnection, t0: float, snap: Any,
              span: Span | None, upstream_s: float | None = None) -> Reply | None:
        """Count the answer (None: the caller went away first) and report it."""
        if reply is not None:
            self.metrics.requests["inbound", int(reply[0][9:12])] += 1
        if self.telemetry is not None:
            self.telemetry.inbound(snap, req, conn, t0, reply, flags, span, forwarded=flags != "RBAC" and
                                   flags != "NC", upstream_s=upstream_s)
        return reply
