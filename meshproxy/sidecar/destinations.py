"""Per-destination outbound state: breaker, outlier detector, balancer and the pending-request queue.

One ``Destination`` per service this sidecar may call. It outlives configuration generations while the
service's policy and identity are unchanged, so a config push (e.g. a new endpoint) does not reset
ejections or in-flight counts. The outlier detector is ticked every ``outlier_detection.interval``.
With ``load_balancing.health_check`` (and a ``HealthProber``) its endpoints are probed actively
(meshproxy/sidecar/health.py); ``health`` decides which are healthy, ``close`` stops the probes.

Pending requests (Envoy ``max_pending_requests``) wait in ``waiters``; ``pool.UpstreamPool`` serves them.
"""

from __future__ import annotations

import asyncio
from collections import deque

from meshscenario import MtlsMode, Policy
from meshproxy.policy.balancer import make_balancer
from meshproxy.policy.breaker import CircuitBreaker
from meshproxy.policy.health import HealthChecker
from meshproxy.policy.outlier import OutlierDetector
from meshproxy.sidecar.health import ActiveHealthCheck, HealthProber
from meshproxy.sidecar.metrics import Metrics
from meshproxy.defects import Defects


class Destination:
    def __init__(self, name: str, spiffe_id: str, policy: Policy, loop: asyncio.AbstractEventLoop,
                 metrics: Metrics, defects: Defects, prober: HealthProber | None = None):
        self.name = name
        self.spiffe_id = spiffe_id
        self.policy = policy
        self.stats = metrics.istio.cluster(name)  # Envoy's per-cluster counters (envoy_cluster_*)
        self.use_tls = policy.mtls.mode is not MtlsMode.DISABLE and not defects.active("plaintext_between_sidecars")
        self.breaker = CircuitBreaker(policy.circuit_breaker, defects)
        self.outlier = OutlierDetector(policy.outlier_detection, loop.time, defects)
        self.balancer = make_balancer(policy.load_balancing, defects)
        self.health = HealthChecker(policy.load_balancing.health_check if prober is not None else None, defects)
        self._probes: ActiveHealthCheck | None = None
        if self.health.enabled:
            self._probes = prober.watch(name, spiffe_id, self.use_tls, self.health, loop)
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

    def set_hosts(self, endpoints: list[str]) -> None:
        """This destination's current endpoints (every version): outlier and health state follow them."""
        self.outlier.set_hosts(endpoints)
        if self._probes is not None:
            self._probes.set_hosts(endpoints)

    def available(self, endpoints: list[str]) -> list[str]:
        """The endpoints a request may go to: neither ejected (outlier) nor failing active health checks.
        The outlier detector sees the whole set first: its max_ejection_percent counts every host."""
        available = self.outlier.available(endpoints)
        return self.health.available(available) if self._probes is not None else available

    def _tick(self) -> None:
        self.outlier.tick()
        self._tick_handle = self._loop.call_later(self.policy.outlier_detection.interval, self._tick)

    def close(self) -> None:
        if self._probes is not None:
            self._probes.close()
            self._probes = None
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        for _, fut in self.waiters:
            if not fut.done():
                fut.set_result(None)
        self.waiters.clear()
