"""Active HTTP health checks of one destination: the probes on the wire, decided by policy/health.py.

One ``_Session`` per endpoint sends ``GET <path>`` (``Host: <service>``, ``user-agent: Envoy/HC``) over
the kind of connection real traffic uses: ``UpstreamPool.open`` with the sidecar's client certificate
and the destination's expected SPIFFE ID when the destination speaks mTLS, plaintext otherwise. The
destination's inbound sidecar forwards it to its app like any request (the echo answers ``/healthz``
unjournaled). The probe connection is the session's own and kept alive between probes (Envoy's
``reuse_connection``); like Envoy's health-check connections it is outside the pool and the breaker.

Timer-driven on the sidecar's loop: a new endpoint is probed at once; each probe is cut after
``timeout`` and the next one starts ``interval`` after the previous result. ``close`` (from
``Destination.close``) cancels every timer, task and connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Sequence

from meshproxy.policy.health import HealthChecker, classify
from meshproxy.sidecar.certs import CertificateStore
from meshproxy.sidecar.limits import Limits
from meshproxy.sidecar.metrics import Metrics

log = logging.getLogger(__name__)

USER_AGENT = b"Envoy/HC"


class HealthProber:
    """What every destination's probes share: certificates, limits and one connection opener."""

    def __init__(self, certs: CertificateStore, limits: Limits, metrics: Metrics):
        self.certs = certs
        self.limits = limits
        self.metrics = metrics
        self._pool: Any = None
        self.probes_sent = 0

    def pool(self) -> Any:
        if self._pool is None:
            # imported here: pool.py imports destinations.py, which imports this module
            from meshproxy.sidecar.pool import UpstreamPool
            self._pool = UpstreamPool(self.limits, self.metrics)
        return self._pool

    def watch(self, name: str, spiffe_id: str, use_tls: bool, checker: HealthChecker,
              loop: asyncio.AbstractEventLoop) -> "ActiveHealthCheck":
        return ActiveHealthCheck(self, name, spiffe_id, use_tls, checker, loop)


class ActiveHealthCheck:
    """The probe sessions of one destination, one per endpoint of its current host set."""

    def __init__(self, prober: HealthProber, name: str, spiffe_id: str, use_tls: bool, checker: HealthChecker,
                 loop: asyncio.AbstractEventLoop):
        self.prober = prober
        self.name = name
        self.checker = checker
        self.spiffe_id = spiffe_id
        self.use_tls = use_tls
        self.loop = loop
        path = checker.config.path.encode()
        self.request = b"GET %s HTTP/1.1\r\nhost: %s\r\nuser-agent: %s\r\n\r\n" % (path, name.encode(), USER_AGENT)
        self._sessions: dict[str, _Session] = {}
        self._closed = False

    def set_hosts(self, endpoints: Sequence[str]) -> None:
        if self._closed:
            return
        self.checker.set_hosts(endpoints)
        wanted = set(endpoints)
        for gone in [e for e in self._sessions if e not in wanted]:
            self._sessions.pop(gone).close()
        for endpoint in endpoints:
            if endpoint not in self._sessions:
                self._sessions[endpoint] = _Session(self, endpoint)

    def close(self) -> None:
        self._closed = True
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()


class _Session:
    """Probes one endpoint until closed: probe, record, wait ``interval``, probe again."""

    def __init__(self, owner: ActiveHealthCheck, endpoint: str):
        self.owner = owner
        self.endpoint = endpoint
        self.conn: Any = None
        self.task: asyncio.Task | None = None
        self.timer: asyncio.TimerHandle | None = owner.loop.call_soon(self._probe)
        self.closed = False

    def _probe(self) -> None:
        self.timer = None
        self.task = self.owner.loop.create_task(self._run())

    async def _run(self) -> None:
        owner = self.owner
        timeout = owner.checker.config.timeout
        status: int | None = None
        try:
            status = await asyncio.wait_for(self._exchange(timeout), timeout)
        except asyncio.CancelledError:
            self._drop()
            raise
        except Exception as exc:  # timeout, connect failure, reset, protocol error: no usable answer
            log.debug("health probe of %s failed: %r", self.endpoint, exc)
            self._drop()
        self.task = None
        if self.closed:
            return
        if status != 200:  # Envoy's health_check.failure: a probe that did not pass
            owner.prober.metrics.istio.cluster(owner.name).health_check_failure += 1
        if owner.checker.record(self.endpoint, classify(status)):
            log.info("health check: %s is now %s", self.endpoint,
                     "healthy" if owner.checker.is_healthy(self.endpoint) else "unhealthy")
        self.timer = owner.loop.call_later(owner.checker.next_probe_in(), self._probe)

    async def _exchange(self, timeout: float) -> int | None:
        owner = self.owner
        if self.conn is None or self.conn.closed:
            host, _, port = self.endpoint.rpartition(":")
            ctx = owner.prober.certs.client_ctx if owner.use_tls else None
            self.conn = await owner.prober.pool().open(("health", self.endpoint, owner.use_tls), host, int(port),
                                                       ctx, owner.spiffe_id, None, timeout)
        owner.prober.probes_sent += 1
        result = await self.conn.send_and_wait(owner.request)
        if isinstance(result, BaseException):
            raise result
        if not self.conn.reusable:
            self._drop()
        return result.status

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.abandon()
            self.conn = None

    def close(self) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.task is not None:
            self.task.cancel()
            self.task = None
        self._drop()

