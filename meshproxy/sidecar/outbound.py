"""Outbound: the app's plain HTTP request -> route -> fault -> breaker -> retries over pooled mTLS.

Per request (docs/architecture.md "Sidecar behaviour"): Host selects the destination
(``RouteTable.destination_for_host``), the first matching route decides timeout, retries and fault;
each try picks a version by weight, an endpoint of it that is neither ejected nor failing active health
checks (``Destination.available``; by the destination's balancer), takes a pooled connection (or opens
one, within the breaker's ``max_connections``, else waits as pending) and sends the request with ``x-envoy-attempt-count``. The
try ends as a response, a reset, a connect failure or a per-try timeout (an ``Outcome``), which feeds
the outlier detector and the retry policy. The route ``Deadline`` spans all tries and backoffs.

Answers of its own: 404 + ``x-meshproxy-no-route: 1``; fault abort + ``x-meshproxy-fault: abort``;
503 + ``x-envoy-overloaded: true``; 503 ``no healthy upstream``; 503 ``upstream connect error or
disconnect/reset before headers``; 502 ``upstream sent an invalid response`` (the last try's answer was
not valid HTTP/1.1: http1.UpstreamProtocolError); 504 ``upstream request timeout``.
"""

from __future__ import annotations

import asyncio
import random
from time import time as _clock
from collections.abc import Mapping
from typing import Any, Iterator

from meshproxy.policy.fault import decide_fault
from meshproxy.policy.tracecontext import child, incoming, render
from meshproxy.policy.retry import (CONNECT_FAILURE_OUTCOME, PER_TRY_TIMEOUT, PER_TRY_TIMEOUT_OUTCOME,
                                    RESET_OUTCOME, Outcome, RetryPolicy, response_outcome)
from meshproxy.policy.timeout import Deadline
from meshproxy.sidecar.certs import CertificateStore
from meshproxy.sidecar.config import ConfigStore, Snapshot
from meshproxy.sidecar.destinations import Destination
from meshproxy.sidecar.http1 import (CAPTURED, HOP_BY_HOP, INVALID_RESPONSE, Reply, Request, ServerConnection, UpstreamProtocolError,
                                     header_block, simple_reply)
from meshproxy.sidecar.metrics import Metrics
from meshproxy.sidecar.pool import ConnectFailure, UpstreamPool
from meshproxy.sidecar.telemetry import Telemetry
from meshproxy.defects import Defects

# the app's trace headers are read at parse time (Request.trace) and sent on as this hop's; a peer
# header from the app is never trusted (the outbound sends its own)
DROP = HOP_BY_HOP | {b"x-envoy-attempt-count"} | CAPTURED

NO_ROUTE = simple_reply(404, b"no route\n", b"x-meshproxy-no-route: 1\r\n")
NOT_READY = simple_reply(503, b"no configuration yet\n")
OVERFLOW = simple_reply(503, b"upstream connect error or disconnect/reset before headers. reset reason: overflow\n",
                        b"x-envoy-overloaded: true\r\n")
NO_HEALTHY = simple_reply(503, b"no healthy upstream\n")
CONNECT_ERROR = simple_reply(503, b"upstream connect error or disconnect/reset before headers\n")
TIMEOUT = simple_reply(504, b"upstream request timeout\n")
QUEUED_OVERFLOW_POLL_S = 0.002  # defect "overflow_queued" only: how often a queued request retries admission
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})


class _HeaderView(Mapping):
    """The request headers as ``str`` -> ``str``, decoded only if a route actually looks at them."""

    __slots__ = ("_raw", "_map")

    def __init__(self, raw: list[tuple[bytes, bytes]]):
        self._raw = raw
        self._map: dict[str, str] | None = None

    def _m(self) -> dict[str, str]:
        if self._map is None:
            self._map = {n.decode("latin-1"): v.decode("latin-1") for n, v in self._raw}
        return self._map

    def __getitem__(self, key: str) -> str:
        return self._m()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._m())

    def __len__(self) -> int:
        return len(self._raw)


class _Overflow(Exception):
    pass


class _RouteTimeout(Exception):
    pass


class Outbound:
    def __init__(self, config: ConfigStore, certs: CertificateStore, pool: UpstreamPool, metrics: Metrics,
                 defects: Defects, rng: random.Random | None = None, telemetry: Telemetry | None = None,
                 workload: str = "unknown"):
        self._config = config
        self.telemetry = telemetry
        # Istio's metadata exchange: who calls, for the destination's reporter (built once)
        self.peer_line = b"x-envoy-peer-metadata-id: %s\r\n" % workload.encode()
        self._drop_trace = defects.active("drop_traceparent")  # the defect: no trace context upstream
        self._certs = certs
        self.pool = pool
        self.metrics = metrics
        self.defects = defects
        # defect "no_route_status": the no-route answer with another status (built once, not per request)
        status = defects.param("no_route_status")
        self._no_route = NO_ROUTE if status is None else \
            simple_reply(int(status), b"no route\n", b"x-meshproxy-no-route: 1\r\n")
        # defect "no_overload_marker": the breaker's 503 without x-envoy-overloaded
        self.overflow = OVERFLOW if not defects.active("no_overload_marker") else \
            simple_reply(503, b"upstream connect error or disconnect/reset before headers. reset reason: overflow\n")
        self._queue_overflow = defects.active("overflow_queued")
        self._miss_retries = defects.active("metrics_miss_retries")
        # defect "hop_delay_ms": every routed request waits this long before its first try
        self._hop_delay_s = float(defects.param("hop_delay_ms") or 0) / 1000 if defects.active("hop_delay_ms") else 0.0
        # defect "leak_per_request": this many bytes kept for good per routed request
        self._leak_bytes = int(defects.param("leak_per_request") or 0) if defects.active("leak_per_request") else 0
        self._leaked: list[bytes] = []
        self.rng = rng or random.Random()
        self.loop = asyncio.get_running_loop()

    def handle(self, req: Request, conn: ServerConnection) -> Reply | None:
        """Answer at once (404, abort, overflow, ...) or return None and answer through ``conn.respond``."""
        t0 = _clock()  # telemetry: epoch seconds, µs resolution (uvloop's loop.time() counts whole ms)
        snap = self._config.current
        if snap is None:
            return self.early(snap, req, conn, t0, NOT_READY, "NC")
        routes = snap.routes
        name = routes.destination_for_host(req.host.decode("latin-1")) if req.host else None
        route = routes.match(name, req.path(), _HeaderView(req.headers)) if name else None
        if route is None:
            return self.early(snap, req, conn, t0, self._no_route, "NR")
        exchange = _Exchange(self, req, conn, snap, snap.destinations[name], route, t0)
        if self._leak_bytes:
            self._leaked.append(bytes(self._leak_bytes))
        if self._hop_delay_s:
            timer = self.loop.call_later(self._hop_delay_s, exchange.after_delay, None)
            conn.on_lost = timer.cancel
            return None
        if route.fault is not None:
            decision = decide_fault(route.fault, self.rng, self.defects)
            if decision.delay_s is not None:
                self.metrics.faults["delay"] += 1
                exchange.delayed = True
                timer = self.loop.call_later(decision.delay_s, exchange.after_delay, decision.abort_status)
                conn.on_lost = timer.cancel
                return None
            if decision.abort_status is not None:
                return exchange.early(self.abort(decision.abort_status), "FI")
        return exchange.run()

    def abort(self, status: int) -> Reply:
        self.metrics.faults["abort"] += 1
        return simple_reply(status, b"fault filter abort\n", b"x-meshproxy-fault: abort\r\n")

    def count(self, reply: Reply) -> Reply:
        self.metrics.requests["outbound", int(reply[0][9:12])] += 1
        return reply

    def early(self, snap: Snapshot | None, req: Request, conn: ServerConnection, t0: float, reply: Reply,
              flags: str) -> Reply:
        """An answer of our own before any destination was chosen (not ready, no route)."""
        self.count(reply)
        if self.telemetry is not None:
            self.telemetry.outbound(snap, req, conn, t0, reply, flags)
        return reply

    async def _connection(self, dest: Destination, endpoint: str, timeout: float | None):
        key = (endpoint, dest.use_tls)
        conn = self.pool.take_idle(key)
        if conn is not None:
            return conn
        breaker = dest.breaker
        host, _, port = endpoint.rpartition(":")
        ctx = self._certs.client_ctx if dest.use_tls else None
        while not breaker.may_open_connection():
            if not breaker.try_enqueue_pending():
                raise _Overflow()
            fut = self.loop.create_future()
            dest.waiters.append((key, fut))
            try:
                conn = await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                raise _RouteTimeout() from None
            finally:
                breaker.dequeue_pending()
            if conn is not None:
                return conn
        try:  # the first connection ready for this endpoint: released by another request, or opened
            return await self.pool.connect(key, host, int(port), ctx, dest.spiffe_id, dest, timeout)
        except asyncio.TimeoutError:
            raise _RouteTimeout() from None


def _request_id(rng: random.Random) -> bytes:
    """A random (version 4 layout) UUID from the sidecar's PRNG: uuid.uuid4() reads os.urandom, a
    syscall per request; a request id needs uniqueness, not cryptographic strength."""
    h = b"%032x" % ((rng.getrandbits(128) & ~(0xF << 76) | (0x4 << 76)) & ~(0x3 << 62) | (0x2 << 62))
    return b"%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def _render(req: Request, request_id: bytes | None, extra: bytes = b"") -> tuple[bytes, bytes]:
    """Request line and headers (with ``extra`` lines, and ``request_id`` when the app sent none)
    without the attempt count and the final blank line, and the body."""
    if request_id is not None:
        extra += b"x-request-id: %s\r\n" % request_id
    body = req.body
    if body or req.method in _BODY_METHODS:
        extra += b"content-length: %d\r\n" % len(body)
    return b"%s %s HTTP/1.1\r\n%s%s" % (req.method, req.url, header_block(req.headers), extra), body


class _Exchange:
    """One outbound request through its tries, driven by callbacks (connection replies, timers).

    Every path ends in ``_finish`` exactly once, which releases the breaker counts and answers: through
    the return value of ``run`` if it ends before ``run`` returns, else through ``conn.respond``.
    """

    __slots__ = ("ob", "req", "conn", "snap", "dest", "route", "policy", "deadline", "per_try", "hash_key",
                 "head", "body", "endpoint", "upstream", "timer", "task", "retrying", "counted", "done",
                 "in_run", "answer", "invalid", "t0", "span", "delayed", "tries", "sent_at", "upstream_s", "request_id")

    def __init__(self, ob: Outbound, req: Request, conn: ServerConnection, snap: Snapshot, dest: Destination,
                 route: Any, t0: float = 0.0):
        self.ob, self.req, self.conn, self.snap, self.dest, self.route = ob, req, conn, snap, dest, route
        self.upstream = self.timer = self.task = self.answer = self.span = self.endpoint = self.upstream_s = None
        self.request_id = None
        self.retrying = self.counted = self.done = self.in_run = self.invalid = self.delayed = False
        self.t0, self.tries, self.sent_at = t0, 0, 0.0

    def early(self, reply: Reply, flags: str) -> Reply:
        """An answer of our own before any try (fault abort, breaker overflow): counted and reported."""
        ob = self.ob
        ob.count(reply)
        if ob.telemetry is not None:
            ob.telemetry.outbound(self.snap, self.req, self.conn, self.t0, reply,
                                  "DI," + flags if self.delayed else flags, self.span, self.dest)
        return reply

    def after_delay(self, abort_status: int | None) -> None:
        """The injected delay is over: abort now, or go on as usual."""
        self.conn.on_lost = None
        reply = self.early(self.ob.abort(abort_status), "FI") if abort_status is not None else self.run()
        if reply is not None:
            self.conn.respond(reply)

    def run(self) -> Reply | None:
        ob, dest, route = self.ob, self.dest, self.route
        if not dest.breaker.try_start_request():
            if ob._queue_overflow:  # defect "overflow_queued": wait for a free slot instead of rejecting
                timer = ob.loop.call_later(QUEUED_OVERFLOW_POLL_S, self._run_later)
                self.conn.on_lost = timer.cancel
                return None
            ob.metrics.pending_overflow += 1
            dest.stats.upstream_rq_pending_overflow += 1
            return self.early(ob.overflow, "UO")
        self.counted = True
        retries = route.retries
        self.policy = RetryPolicy(retries, ob.rng, ob.defects)
        self.deadline = Deadline(route.timeout, ob.loop.time(), ob.defects)
        self.per_try = retries.per_try_timeout if retries is not None else None
        self.hash_key = None
        if dest.hash_header is not None:
            value = self.req.header(dest.hash_header)
            self.hash_key = value.decode("latin-1") if value is not None else None
        # this hop's CLIENT span (trace context parsed only when the app sent one), sent on upstream
        span = self.span = child(incoming(self.req.trace), ob.rng, self.snap.sampling)
        request_id = self.request_id = self.req.header(b"x-request-id")
        if request_id is None:
            self.request_id = _request_id(ob.rng)
        self.head, self.body = _render(self.req, self.request_id if request_id is None else None,
                                       ob.peer_line if ob._drop_trace else render(span) + ob.peer_line)
        self.conn.on_lost = self._cancel
        self.in_run = True
        self._attempt()
        self.in_run = False
        return self.answer

    def _run_later(self) -> None:
        self.conn.on_lost = None
        reply = self.run()
        if reply is not None:
            self.conn.respond(reply)

    # -- one try --------------------------------------------------------------------------------------
    def _attempt(self) -> None:
        ob, dest, snap = self.ob, self.dest, self.snap
        endpoints = snap.endpoints_of(dest.name, snap.routes.pick_version(self.route, ob.rng))
        available = dest.available(endpoints)  # not ejected, not failing active health checks
        if not available:
            self._finish(NO_HEALTHY, "UH")
            return
        self.endpoint = endpoint = dest.balancer.pick(available, ob.rng, self.hash_key)
        upstream = ob.pool.take_idle((endpoint, dest.use_tls))
        if upstream is None:
            self.task = ob.loop.create_task(self._connect())
        else:
            self._send(upstream)

    async def _connect(self) -> None:
        ob = self.ob
        try:
            # connecting (and waiting for a pooled connection) is bounded by the route deadline and the
            # connect timeout, never by the per-try timeout: that timer starts when the try is sent, as
            # Envoy's does at pool-ready (envoy#4903), so a slow mTLS handshake does not fail a try
            upstream = await ob._connection(self.dest, self.endpoint, self.deadline.remaining(ob.loop.time()))
        except _Overflow:
            ob.metrics.pending_overflow += 1
            self.dest.stats.upstream_rq_pending_overflow += 1
            self._finish(ob.overflow, "UO")
            return
        except _RouteTimeout:
            self._timed_out()
            return
        except ConnectFailure:
            self.task = None
            self._outcome(CONNECT_FAILURE_OUTCOME, None)
            return
        self.task = None
        if self.done:  # cancelled while connecting
            ob.pool.release(upstream)
            return
        self._send(upstream)

    def _send(self, upstream: Any) -> None:
        ob = self.ob
        timeout = self.deadline.per_try(self.per_try, ob.loop.time())
        if timeout is not None:
            if timeout <= 0:
                ob.pool.release(upstream)
                self._timed_out()
                return
            self.timer = ob.loop.call_later(timeout, self._try_timed_out)
        self.upstream = upstream
        self.tries += 1
        self.dest.stats.upstream_rq_total += 1
        self.sent_at = _clock()
        self.dest.balancer.started(self.endpoint)
        upstream.send(b"%sx-envoy-attempt-count: %d\r\n\r\n%s" % (self.head, self.policy.attempts_made + 1, self.body),
                      self.req.method == b"HEAD", self._answered)

    def _answered(self, result: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        upstream, self.upstream = self.upstream, None
        self.dest.balancer.finished(self.endpoint)
        self.upstream_s = _clock() - self.sent_at
        if isinstance(result, BaseException):
            self.invalid = isinstance(result, UpstreamProtocolError)  # the last try's failure picks the answer
            self._outcome(RESET_OUTCOME, None)
        else:
            self.ob.pool.release(upstream)
            self._outcome(response_outcome(result.status), result)  # shared: no dataclass per try

    def _try_timed_out(self) -> None:
        self.timer = None
        upstream, self.upstream = self.upstream, None
        upstream.abandon()  # a hung upstream: this connection cannot carry another request
        self.dest.balancer.finished(self.endpoint)
        self._outcome(PER_TRY_TIMEOUT_OUTCOME, None)

    # -- after a try ----------------------------------------------------------------------------------
    def _outcome(self, outcome: Outcome, response: Any) -> None:
        ob, dest, metrics = self.ob, self.dest, self.ob.metrics
        if self.retrying:
            dest.breaker.end_retry()
            self.retrying = False
        if dest.outlier.record(self.endpoint, outcome.status, failure=response is None):
            metrics.outlier_ejections += 1
            dest.stats.outlier_detection_ejections_enforced_total += 1
        now = ob.loop.time()
        if self.deadline.expired(now):
            self._timed_out()
            return
        if not self.policy.should_retry(outcome) or not dest.breaker.try_start_retry():
            # URX: the outcome was one to retry, but no retry was left (attempts or the retry breaker)
            urx = self.policy.retriable(outcome)
            if response is not None:
                self._finish(response.render(), "URX" if urx else "-")
            elif outcome.kind == PER_TRY_TIMEOUT:
                self._timed_out("UT,URX" if urx else "UT")
            elif outcome is RESET_OUTCOME:
                self._finish(INVALID_RESPONSE if self.invalid else CONNECT_ERROR,
                             ("UPE" if self.invalid else "UC") + (",URX" if urx else ""))
            else:
                self._finish(CONNECT_ERROR, "UF,URX" if urx else "UF")
            return
        self.retrying = True
        metrics.retries += 1
        if not ob._miss_retries:  # the defect metrics_miss_retries: Envoy's retry counter misses them
            dest.stats.upstream_rq_retry += 1
        wait = self.policy.backoff()
        remaining = self.deadline.remaining(now)
        if remaining is not None and wait >= remaining:
            self.timer = ob.loop.call_later(remaining, self._timed_out)  # the backoff runs into the deadline
        elif wait > 0:
            self.timer = ob.loop.call_later(wait, self._retry)
        else:
            self._attempt()

    def _retry(self) -> None:
        self.timer = None
        self._attempt()

    def _timed_out(self, flags: str = "UT") -> None:
        self.timer = None
        self.ob.metrics.timeouts += 1
        self.dest.stats.upstream_rq_timeout += 1
        self._finish(TIMEOUT, flags)

    def _finish(self, reply: Reply, flags: str = "-") -> None:
        if self.done:
            return
        self._release()
        ob = self.ob
        ob.count(reply)
        if ob.telemetry is not None:
            if self.delayed:
                flags = "DI" if flags == "-" else "DI," + flags
            ob.telemetry.outbound(self.snap, self.req, self.conn, self.t0, reply, flags, self.span, self.dest,
                                  self.endpoint, self.tries, self.upstream_s, self.request_id)
        if self.in_run:
            self.answer = reply
        else:
            self.conn.respond(reply)

    def _release(self) -> None:
        self.done = True
        if self.retrying:
            self.dest.breaker.end_retry()
            self.retrying = False
        if self.counted:
            self.dest.breaker.end_request()
            self.counted = False

    def _cancel(self) -> None:
        """The downstream went away: stop every timer, task and upstream of this request."""
        if self.done:
            return
        if self.timer is not None:
            self.timer.cancel()
        if self.task is not None:
            self.task.cancel()
        if self.upstream is not None:
            self.upstream.abandon()
            self.dest.balancer.finished(self.endpoint)
        self._release()
        if self.ob.telemetry is not None:  # the caller went away: no answer (code 0), Envoy's DC
            self.ob.telemetry.outbound(self.snap, self.req, self.conn, self.t0, None, "DC", self.span, self.dest,
                                       self.endpoint, self.tries, self.upstream_s, self.request_id)
