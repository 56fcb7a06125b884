"""Envoy's circuit breaker thresholds for one destination, as admission counters.

Envoy's breakers are concurrency limits, not error-rate trips: ``max_connections`` open upstream
connections, ``max_pending_requests`` requests queued waiting for a connection, ``max_requests``
requests outstanding, ``max_retries`` retries outstanding. A request over a limit is not queued: the
sidecar answers 503 with ``x-envoy-overloaded: true`` at once, and Envoy never retries an overflow.
No policy means Envoy's defaults: 1024 / 1024 / 1024 / 3 (Istio instead sets all four to 2**32 − 1).

Every ``try_*`` that returns True must be paired with its ``end_*``/``dequeue``/``closed`` call;
ending more than was started is a bug in the caller and raises RuntimeError.
"""

from __future__ import annotations

from meshproxy.defects import NONE, Defects
from meshscenario import CircuitBreakerLimits

ENVOY_DEFAULTS = CircuitBreakerLimits()  # 1024, 1024, 1024, 3


class CircuitBreaker:
    """Open/pending/active/retry counts of one destination and how often each limit overflowed."""

    __slots__ = ("max_connections", "max_pending_requests", "max_requests", "max_retries",
                 "connections", "pending", "requests", "retries",
                 "cx_overflow", "rq_pending_overflow", "rq_overflow", "rq_retry_overflow")

    def __init__(self, limits: CircuitBreakerLimits | None = None, defects: Defects = NONE):
        limits = limits or ENVOY_DEFAULTS
        # defect "breaker_limit_delta": every limit off by this much; "breaker_ignored": no limit at all
        delta = int(defects.param("breaker_limit_delta", 0))
        unlimited = defects.active("breaker_ignored")
        self.max_connections, self.max_pending_requests, self.max_requests = (
            2**32 - 1 if unlimited else max(0, value + delta)
            for value in (limits.max_connections, limits.max_pending_requests, limits.max_requests))
        # defect "pending_limit_delta": max_pending_requests alone off by this much (more or fewer wait)
        self.max_pending_requests = max(0, self.max_pending_requests + int(defects.param("pending_limit_delta", 0)))
        self.max_retries = 2**32 - 1 if unlimited or defects.active("retry_breaker_ignored") else \
            max(0, limits.max_retries + delta)
        self.connections = self.pending = self.requests = self.retries = 0
        # Envoy's upstream_cx_overflow, upstream_rq_pending_overflow, upstream_rq_overflow (stats names)
        self.cx_overflow = self.rq_pending_overflow = self.rq_overflow = self.rq_retry_overflow = 0

    # -- requests ----------------------------------------------------------------------------------
    def try_start_request(self) -> bool:
        if self.requests >= self.max_requests:
            self.rq_overflow += 1
            return False
        self.requests += 1
        return True

    def end_request(self) -> None:
        if self.requests <= 0:
            raise RuntimeError("end_request without a started request")
        self.requests -= 1

    # -- retries -----------------------------------------------------------------------------------
    def try_start_retry(self) -> bool:
        if self.retries >= self.max_retries:
            self.rq_retry_overflow += 1
            return False
        self.retries += 1
        return True

    def end_retry(self) -> None:
        if self.retries <= 0:
            raise RuntimeError("end_retry without a started retry")
        self.retries -= 1

    # -- requests waiting for a connection ---------------------------------------------------------
    def try_enqueue_pending(self) -> bool:
        if self.pending >= self.max_pending_requests:
            self.rq_pending_overflow += 1
            return False
        self.pending += 1
        return True

    def dequeue_pending(self) -> None:
        if self.pending <= 0:
            raise RuntimeError("dequeue_pending with nothing pending")
        self.pending -= 1

    # -- connections -------------------------------------------------------------------------------
    def may_open_connection(self) -> bool:
        """Whether another upstream connection may be opened now (else queue the request as pending)."""
        if self.connections >= self.max_connections:
            self.cx_overflow += 1
            return False
        return True

    def connection_opened(self) -> None:
        self.connections += 1

    def connection_closed(self) -> None:
        if self.connections <= 0:
            raise RuntimeError("connection_closed without an open connection")
        self.connections -= 1

    def stats(self) -> dict[str, int]:
        """Current counts and overflow totals, for the admin ``/stats`` endpoint."""
        return {name: getattr(self, name) for name in self.__slots__}
