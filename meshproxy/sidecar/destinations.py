"""Per-destination outbound state: breaker, outlier detector, balancer and the pending-request queue.

One ``Destination`` per service this sidecar may call. It outlives configuration generations while the
service's policy and identity are unchanged, so a config push (e.g. a new endpoint) does not reset
ejections or in-flight counts. The outlier detector is ticked every ``outlier_detection.interval``.

Pending requests (Envoy ``max_pending_requests``) wait in ``waiters``; ``pool.UpstreamPool`` serves them.
"""

from __future__ import annotations

import asyncio
from collections import deque

from meshscenario import MtlsMode, Policy
from meshproxy.policy.balancer import make_balancer
from meshproxy.policy.breaker import CircuitBreaker
from meshproxy.policy.outlier import OutlierDetector
from meshproxy.sidecar.metrics import Metrics
from meshproxy.defects import Defects


class Destination:
    def __init__(self, name: str, spiffe_id: str, policy: Policy, loop: asyncio.AbstractEventLoop,
                 metrics: Metrics, defects: Defects):
        self.name = name
        self.spiffe_id = spiffe_id
        self.policy = policy
        self.use_tls = policy.mtls.mode is not MtlsMode.DISABLE and not defects.active("plaintext_between_sidecars")
        self.breaker = CircuitBreaker(policy.circuit_breaker, defects)
        self.outlier = OutlierDetector(policy.outlier_detection, loop.time, defects)
        self.balancer = make_balancer(policy.load_balancing)
        header = policy.load_balancing.hash_header
        self.hash_header = header.lower().encode() if header else None
        self.waiters: deque[tuple[object, asyncio.Future]] = deque()  # (pool key, future of conn|None)
        self._loop = loop
        self._metrics = metrics
        self._tick_handle: asyncio.TimerHandle | None = None
        if policy.outlier_detection is not None:
            self._tick_handle = loop.call_later(policy.outlier_detection.interval, self._tick)

    def same_as(self, spiffe_id: str, policy: Policy) -> bool:
        return self.spiffe_id == spiffe_id and self.policy == policy

    def _tick(self) -> None:
        self.outlier.tick()
        self._tick_handle = self._loop.call_later(self.policy.outlier_detection.interval, self._tick)

    def close(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        for _, fut in self.waiters:
            if not fut.done():
                fut.set_result(None)
        self.waiters.clear()
