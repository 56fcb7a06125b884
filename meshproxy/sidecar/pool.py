"""Upstream keep-alive pool: idle HTTP/1.1 connections per (endpoint, expected peer identity).

``take_idle`` is synchronous (a list pop), so a warm request never awaits to get a connection. Idle
connections are reused most-recent-first and dropped after ``Limits.pool_idle_s`` (30 s) unused. A
connection that belongs to a destination counts against its breaker's ``max_connections`` from the
moment it is being opened until it is closed; a free slot or a released connection goes to the oldest
request waiting for one (``Destination.waiters``).

A request that finds no idle connection waits for the first connection that becomes ready for its key
(``connect``): one released by another request or one being opened, whichever comes first, as in Envoy's
HTTP/1 pool, where a pending stream takes the first ready client. Connections are opened only while the
requests waiting outnumber the opens in progress, and at most ``Limits.max_connecting`` at once per
endpoint, and not while the connections lent to requests would serve the waiters sooner than an open
(the rule, and why, are in ``meshproxy/policy/connecting.py``). When an open fails, the oldest waiter
gets the failure (a connect failure of its try).

A TLS connection is accepted only if the server's SPIFFE ID is the one expected for the destination;
otherwise it is closed and the try fails as a connect failure.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from typing import Hashable

from meshproxy.policy.connecting import EWMA, INITIAL_OPEN_S, moving_average, opens_to_start
from meshproxy.sidecar import tls
from meshproxy.sidecar.destinations import Destination
from meshproxy.sidecar.http1 import ClientConnection
from meshproxy.sidecar.limits import Limits, Watchdog
from meshproxy.sidecar.metrics import Metrics

log = logging.getLogger(__name__)


class ConnectFailure(ConnectionError):
    """The upstream could not be reached, the handshake failed, or it is not who it should be."""


class UpstreamPool:
    def __init__(self, limits: Limits, metrics: Metrics, watchdog: Watchdog | None = None):
        self._loop = asyncio.get_running_loop()
        self._watchdog = watchdog  # fails responses that stall mid-way (ClientConnection.on_deadline)
        self._limits = limits
        self._metrics = metrics
        self._idle: dict[Hashable, list[ClientConnection]] = {}
        # requests waiting for a connection, oldest first: (loop time it began waiting, future)
        self._waiting: dict[Hashable, deque[tuple[float, asyncio.Future]]] = {}
        self._connecting: dict[Hashable, int] = {}  # opens in progress on their behalf
        self._lent: dict[Hashable, set[ClientConnection]] = {}  # connections lent to requests now
        self._hold_s: dict[Hashable, float] = {}  # moving average of how long a request holds one
        self._open_s = INITIAL_OPEN_S  # moving average of how long an open (with its handshake) takes
        self._recheck: dict[Hashable, asyncio.TimerHandle] = {}  # a deferred top-up per key
        self._waits: dict[Hashable, int] = {}  # requests that had to wait since the key's last open
        self._opening: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    def take_idle(self, key: Hashable) -> ClientConnection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest_allowed = self._loop.time() - self._limits.pool_idle_s
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            if conn.idle_since >= oldest_allowed:
                self._lend(conn)
                return conn
            conn.abort()
        return None

    def _lend(self, conn: ClientConnection) -> None:
        if not conn.lent:
            conn.lent = True
            conn.lent_at = self._loop.time()
            lent = self._lent.get(conn.key)
            if lent is None:
                lent = self._lent[conn.key] = set()
            lent.add(conn)

    def _unlend(self, conn: ClientConnection) -> None:
        if conn.lent:  # on every response: the moving average inlined (policy.connecting.moving_average)
            conn.lent = False
            key = conn.key
            self._lent[key].discard(conn)
            held = self._loop.time() - conn.lent_at
            average = self._hold_s.get(key)
            self._hold_s[key] = held if average is None else average + (held - average) * EWMA

    async def open(self, key: Hashable, host: str, port: int, ssl_ctx: ssl.SSLContext | None,
                   expected_id: str | None, owner: Destination | None, timeout: float | None,
                   reserved: bool = False) -> ClientConnection:
        """A new connection. The caller has checked ``owner.breaker.may_open_connection()`` (and taken the
        slot already when ``reserved``)."""
        limits = self._limits
        conn = ClientConnection(limits.max_body_bytes, self._on_lost, limits.max_response_headers,
                                limits.max_response_header_bytes, self._watchdog, limits.body_timeout_s)
        conn.key = key
        conn.owner = owner
        if owner is not None and not reserved:
            owner.breaker.connection_opened()  # reserve the slot before awaiting, so opens cannot race past it
        connect_timeout = self._limits.connect_timeout_s if timeout is None else min(timeout, self._limits.connect_timeout_s)
        try:
            await asyncio.wait_for(self._loop.create_connection(
                lambda: conn, host, port, ssl=ssl_ctx,
                ssl_handshake_timeout=connect_timeout if ssl_ctx else None), connect_timeout)
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            if isinstance(exc, ssl.SSLError):
                self._metrics.tls_handshake_failures += 1
            if conn.transport is None:  # connection_lost will not come: free the slot here
                conn.owner = None
                self._free_slot(owner)
            conn.abort()
            raise ConnectFailure(f"{host}:{port}: {exc or type(exc).__name__}") from None
        self._metrics.upstream_connections_opened += 1
        if ssl_ctx is not None and tls.peer_spiffe_id(conn.transport) != expected_id:
            self._metrics.tls_handshake_failures += 1
            conn.abort()
            raise ConnectFailure(f"{host}:{port} is not {expected_id} "
                                 f"(presented {tls.peer_spiffe_id(conn.transport)})")
        return conn

    async def connect(self, key: Hashable, host: str, port: int, ssl_ctx: ssl.SSLContext | None,
                      expected_id: str | None, owner: Destination | None, timeout: float | None) -> ClientConnection:
        """The first connection ready for ``key``: one released by another request, or one opened in the
        background. The caller has checked ``owner.breaker.may_open_connection()``. Raises ConnectFailure
        when an open made for this waiter fails, asyncio.TimeoutError after ``timeout``."""
        fut = self._loop.create_future()
        waiting = self._waiting.get(key)
        if waiting is None:
            waiting = self._waiting[key] = deque()
        entry = (self._loop.time(), fut)
        waiting.append(entry)
        self._waits[key] = self._waits.get(key, 0) + 1
        self._top_up(key, (host, port, ssl_ctx, expected_id, owner))
        try:
            return await asyncio.wait_for(fut, timeout)
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release(fut.result())  # handed over as we were cancelled: not ours to keep
            elif not fut.done():
                fut.cancel()
            if entry in waiting:
                waiting.remove(entry)
            raise

    def _top_up(self, key: Hashable, how: tuple) -> None:
        """Start the opens ``policy.connecting.opens_to_start`` asks for (within the breaker's
        ``max_connections``); when it asks for none while requests wait, look again after one open time."""
        waiting = self._waiting.get(key)
        if not waiting:
            return
        owner = how[4]
        connecting = self._connecting.get(key, 0)
        lent = self._lent.get(key)
        oldest = self._loop.time() - min(c.lent_at for c in lent) if lent else 0.0  # hung loans grow old
        wanted = opens_to_start(waiting=len(waiting), connecting=connecting, lent=len(lent) if lent else 0,
                                hold_s=self._hold_s.get(key, 0.0), open_s=self._open_s,
                                max_connecting=self._limits.max_connecting,
                                waits_since_open=self._waits.get(key, 0), oldest_loan_s=oldest)
        if wanted:
            self._waits[key] = 0
        if wanted == 0 and len(waiting) > connecting and key not in self._recheck:
            self._recheck[key] = self._loop.call_later(self._open_s, self._recheck_now, key, how)
        for _ in range(wanted):
            if owner is not None:
                if not owner.breaker.may_open_connection():
                    break
                owner.breaker.connection_opened()  # the slot is taken now, not when the task first runs
            connecting += 1
            task = self._loop.create_task(self._open_for_waiters(key, how))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)
        self._connecting[key] = connecting

    def _recheck_now(self, key: Hashable, how: tuple) -> None:
        del self._recheck[key]
        waiting = self._waiting.get(key)
        while waiting and waiting[0][1].done():  # served, timed out or cancelled meanwhile
            waiting.popleft()
        self._top_up(key, how)

    async def _open_for_waiters(self, key: Hashable, how: tuple) -> None:
        host, port, ssl_ctx, expected_id, owner = how
        began = self._loop.time()
        try:
            conn = await self.open(key, host, port, ssl_ctx, expected_id, owner, None, reserved=True)
        except ConnectFailure as exc:
            self._connecting[key] -= 1
            waiting = self._waiting.get(key)
            while waiting:  # the oldest waiter gets the failure (a connect-failure try of its own)
                _, fut = waiting.popleft()
                if not fut.done():
                    fut.set_exception(exc)
                    break
            self._top_up(key, how)
            return
        self._connecting[key] -= 1
        self._open_s = moving_average(self._open_s, self._loop.time() - began)
        conn.reusable = True
        self.release(conn)
        self._top_up(key, how)

    def _hand_to_waiter(self, conn: ClientConnection) -> bool:
        waiting = self._waiting.get(conn.key)
        while waiting:
            _, fut = waiting.popleft()
            if not fut.done():
                self._lend(conn)
                fut.set_result(conn)
                return True
        return False

    def release(self, conn: ClientConnection) -> None:
        """Return a connection after its response; reused if both sides keep it alive."""
        self._unlend(conn)
        if conn.closed or not conn.reusable:
            conn.abort()
            return
        if self._hand_to_waiter(conn):
            return
        owner = conn.owner
        if owner is not None and owner.waiters:
            key, fut = owner.waiters[0]
            if key == conn.key and not fut.done():
                owner.waiters.popleft()
                self._lend(conn)
                fut.set_result(conn)
                return
            conn.abort()  # frees the slot; _on_lost wakes the oldest waiter to open its own
            return
        conn.idle_since = self._loop.time()
        self._idle.setdefault(conn.key, []).append(conn)

    def _on_lost(self, conn: ClientConnection) -> None:
        self._unlend(conn)
        owner, conn.owner = conn.owner, None
        self._free_slot(owner)

    @staticmethod
    def _free_slot(owner: Destination | None) -> None:
        if owner is None:
            return
        owner.breaker.connection_closed()
        while owner.waiters:
            _, fut = owner.waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # None: the slot is free, open a connection in it
                return

    def close_all(self) -> None:
        for task in list(self._opening):
            task.cancel()
        for timer in self._recheck.values():
            timer.cancel()
        self._recheck.clear()
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()
