"""The meter's inner loop: runs a load against one target on the current (uvloop) event loop.

Open loop: request i is due at ``t0 + i * period`` (integer ns, on ``time.monotonic_ns()``); a Pacer
wakes the loop and every due request goes to an idle keep-alive connection, or waits in a queue while
a new connection opens (up to ``max_connections``). Its latency runs from the due time to the last
byte of the response, so a stalled server is charged for every request that fell due during the stall
(no coordinated omission). Closed loop: N connections, each sends when its previous answer is in.

Call it in a process of its own (openloop.py does): the meter must not share a loop, a GIL or a
garbage collector with the system under test.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections import Counter, deque

from harness.load import hdr
from harness.load.connection import HttpConnection
from harness.load.pacer import Pacer
from harness.load.spec import ClosedLoop, LoadResult, OpenLoop, Target, TlsClient

_CONNECT_TIMEOUT_S = 5.0


def client_ssl_context(tls: TlsClient) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
    ctx.check_hostname = tls.check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if tls.cert_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx


class _Meter:
    """Shared bookkeeping of both modes: connections, accounting, histograms."""

    def __init__(self, target: Target, max_connections: int):
        self._loop = asyncio.get_running_loop()
        self._request = target.request_bytes()
        host, _, port = target.address.rpartition(":")
        self._host, self._port = host.strip("[]"), int(port)
        self._ssl = client_ssl_context(target.tls) if target.tls else None
        self._server_hostname = (target.tls.server_hostname or self._host) if target.tls else None
        self._max_connections = max_connections
        self.latency = hdr.Recorder()
        self.send_lag = hdr.Recorder()
        self.statuses: Counter[int] = Counter()
        self.conns: set[HttpConnection] = set()
        self.idle: list[HttpConnection] = []
        self.connecting = 0
        self.connections_opened = 0
        self.sent = self.count = self.errors = self.in_flight = 0
        self.t0_ns = 0
        self.cpu0_s = 0.0  # time.process_time() at t0
        self.last_send_ns = self.last_done_ns = 0
        self.closing = False
        self.done: asyncio.Future[None] = self._loop.create_future()

    # -- connections -------------------------------------------------------------------------------
    def start_connect(self) -> asyncio.Task:
        self.connecting += 1
        return self._loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            await asyncio.wait_for(
                self._loop.create_connection(lambda: HttpConnection(self), self._host, self._port,
                                             ssl=self._ssl, server_hostname=self._server_hostname),
                _CONNECT_TIMEOUT_S)
            connected = True
        except (OSError, ssl.SSLError, asyncio.TimeoutError):
            connected = False
        self.connecting -= 1
        if connected:
            self.connections_opened += 1
        else:
            self.connect_failed()
        self.check_finished()

    def connect_failed(self) -> None:
        """A connection could not be made; the mode decides what that costs."""

    def room_for_connection(self) -> bool:
        return len(self.conns) + self.connecting < self._max_connections

    def connection_ready(self, conn: HttpConnection) -> None:
        self.conns.add(conn)

    def connection_closed(self, conn: HttpConnection) -> None:
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    # -- requests ----------------------------------------------------------------------------------
    def send(self, conn: HttpConnection, intended_ns: int) -> None:
        now = time.monotonic_ns()
        self.send_lag.record((now - intended_ns) / 1000)
        conn.send(self._request, intended_ns)
        self.sent += 1
        self.in_flight += 1
        self.last_send_ns = now

    def response_done(self, conn: HttpConnection, status: int, intended_ns: int) -> None:
        now = time.monotonic_ns()
        if self.closing:
            return
        self.in_flight -= 1
        self.statuses[status] += 1
        self.last_done_ns = now
        if status >= 500:
            self.errors += 1
        else:
            self.count += 1
            self.latency.record((now - intended_ns) / 1000)

    def request_failed(self, conn: HttpConnection, intended_ns: int) -> None:
        if self.closing:
            return
        self.in_flight -= 1
        self.errors += 1
        self.check_finished()

    def check_finished(self) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def abandon(self, waiting: int) -> None:
        """At the drain deadline: whatever is still out is an error; close everything."""
        self.closing = True
        self.errors += self.in_flight + waiting
        self.in_flight = 0
        for conn in list(self.conns):
            conn.abort()

    def close_all(self) -> None:
        self.closing = True
        for conn in list(self.conns):
            conn.close()

    def result(self, mode: str, target_rate: float | None, achieved_rate: float, pacer: str) -> LoadResult:
        latency = self.latency.histogram()
        stats = hdr.summary_us(latency)
        lag = hdr.summary_us(self.send_lag.histogram())
        end_ns = max(self.last_done_ns, self.last_send_ns, self.t0_ns)
        elapsed = (end_ns - self.t0_ns) / 1e9
        responses = sum(self.statuses.values())
        return LoadResult(
            mode=mode, target_rate=target_rate, sent=self.sent, count=self.count, errors=self.errors,
            elapsed_s=elapsed, achieved_rate=achieved_rate,
            throughput=responses / elapsed if elapsed > 0 else 0.0,
            p50_us=stats["p50"], p90_us=stats["p90"], p99_us=stats["p99"], p99_9_us=stats["p99_9"],
            max_us=stats["max"], min_us=stats["min"],
            mean_us=float(latency.get_mean_value()) if self.count else 0.0,
            send_lag_p50_us=lag["p50"], send_lag_p99_us=lag["p99"],
            connections_opened=self.connections_opened, cpu_s=time.process_time() - self.cpu0_s,
            pacer=pacer,
            statuses={str(k): v for k, v in sorted(self.statuses.items())},
            histogram=hdr.encode(latency),
        )


class _OpenLoopMeter(_Meter):
    def __init__(self, target: Target, load: OpenLoop):
        super().__init__(target, load.max_connections)
        self.load = load
        self.period_ns = max(1, round(1e9 / load.rate))
        by_duration = math.ceil(load.duration_s * 1e9 / self.period_ns) if load.duration_s else None
        self.total = min(n for n in (load.count, by_duration) if n is not None)
        self.next_i = 0
        self.pending: deque[int] = deque()  # due times of requests waiting for a connection
        self.pacer: Pacer | None = None

    async def run(self) -> LoadResult:
        warm = [self.start_connect() for _ in range(min(self.load.warm_connections, self.load.max_connections))]
        await asyncio.gather(*warm)
        # t0 a little ahead so the first due time is not already late
        self.t0_ns = time.monotonic_ns() + 2_000_000
        self.cpu0_s = time.process_time()
        self.pacer = Pacer(self._loop, self.t0_ns, self.period_ns, self._on_tick)
        deadline_s = self.total * self.period_ns / 1e9 + 0.002 + self.load.drain_timeout_s
        try:
            await asyncio.wait_for(asyncio.shield(self.done), deadline_s)
        except asyncio.TimeoutError:
            self.abandon(len(self.pending) + (self.total - self.next_i))
            self.pending.clear()
        finally:
            self.pacer.stop()
            self.close_all()
        span = (self.last_send_ns - self.t0_ns) / 1e9 + self.period_ns / 1e9
        achieved = self.sent / span if self.sent else 0.0
        return self.result("open", self.load.rate, achieved, "timerfd" if self.pacer.precise else "loop-timer")

    def _on_tick(self) -> None:
        now = time.monotonic_ns()
        while self.next_i < self.total:
            due = self.t0_ns + self.next_i * self.period_ns
            if due > now:
                break
            self.next_i += 1
            self._dispatch(due)
        if self.next_i >= self.total:
            self.pacer.stop()
            self.check_finished()

    def _dispatch(self, due_ns: int) -> None:
        if self.idle:
            self.send(self.idle.pop(), due_ns)
            return
        self.pending.append(due_ns)
        if self.room_for_connection():
            self.start_connect()

    def connection_ready(self, conn: HttpConnection) -> None:
        super().connection_ready(conn)
        if self.closing:
            return
        if self.pending:
            self.send(conn, self.pending.popleft())
        else:
            self.idle.append(conn)
            self.check_finished()

    def connection_closed(self, conn: HttpConnection) -> None:
        super().connection_closed(conn)
        if self.pending and not self.closing and self.room_for_connection():
            self.start_connect()
        self.check_finished()

    def connect_failed(self) -> None:
        # the request this connection was opened for fails now rather than waiting for the deadline
        if self.pending and not self.closing:
            self.pending.popleft()
            self.errors += 1

    def check_finished(self) -> None:
        if self.next_i >= self.total and self.in_flight == 0 and not self.pending:
            self.finish()


class _ClosedLoopMeter(_Meter):
    def __init__(self, target: Target, load: ClosedLoop):
        super().__init__(target, load.connections)
        self.load = load
        self.limit = load.count if load.count is not None else math.inf
        self.stop_ns = math.inf

    async def run(self) -> LoadResult:
        self.t0_ns = time.monotonic_ns()
        self.cpu0_s = time.process_time()
        if self.load.duration_s is not None:
            self.stop_ns = self.t0_ns + self.load.duration_s * 1e9
        for _ in range(self.load.connections):
            self.start_connect()
        deadline_s = (self.load.duration_s or 3600.0) + self.load.drain_timeout_s
        try:
            await asyncio.wait_for(asyncio.shield(self.done), deadline_s)
        except asyncio.TimeoutError:
            self.abandon(0)
        finally:
            self.close_all()
        elapsed = (max(self.last_done_ns, self.t0_ns) - self.t0_ns) / 1e9
        return self.result("closed", None, self.count / elapsed if elapsed > 0 else 0.0, "")

    def _may_send(self) -> bool:
        return not self.closing and self.sent < self.limit and time.monotonic_ns() < self.stop_ns

    def connection_ready(self, conn: HttpConnection) -> None:
        super().connection_ready(conn)
        if self._may_send():
            self.send(conn, time.monotonic_ns())
        else:
            self.idle.append(conn)
            self.check_finished()

    def connection_closed(self, conn: HttpConnection) -> None:
        super().connection_closed(conn)
        if self._may_send() and self.room_for_connection():
            self.start_connect()  # keep N clients while the run lasts
        else:
            self.check_finished()

    def connect_failed(self) -> None:
        if self._may_send():
            self.errors += 1
            self.sent += 1  # the attempt counts toward the bound, so a dead server cannot spin forever
            if self.room_for_connection():
                self.start_connect()

    def check_finished(self) -> None:
        if self.in_flight == 0 and not self._may_send() and self.connecting == 0:
            self.finish()


async def run_here(target: Target, load: OpenLoop | ClosedLoop) -> LoadResult:
    """Run one load on the running loop and return its result (see the module docstring)."""
    meter = _OpenLoopMeter(target, load) if isinstance(load, OpenLoop) else _ClosedLoopMeter(target, load)
    return await meter.run()
