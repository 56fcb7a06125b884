"""``Sidecar``: wires certificates, configuration, listeners and admin into one event loop.

Start order: bind the three sockets (a port conflict fails fast), start the admin API (``/ready`` 503
until the end), get a certificate and a first configuration (static bootstrap, or join: enroll +
register the inbound address + fetch from the control plane, retried while it cannot be reached;
callers arriving before we accept wait in the listen backlog), start the outbound and inbound
listeners, then watch for configuration and renew the certificate in the background. ``ready`` is True from then on. ``stop`` closes the listeners,
deregisters (best effort, 1 s), and closes pooled connections.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from pathlib import Path
from typing import Any, Mapping

from aiohttp import web

from meshproxy import defects as _defects
from meshproxy.httpguard import CountingGate, GuardedSite, ListenerLimits
from meshproxy.sidecar.admin import make_admin_app
from meshproxy.sidecar.bootstrap import Bootstrap
from meshproxy.sidecar.certs import CertificateStore, Rotator, Svid
from meshproxy.sidecar.config import ConfigStore
from meshproxy.sidecar.health import HealthProber
from meshproxy.sidecar.http1 import ServerConnection
from meshproxy.sidecar.inbound import Inbound
from meshproxy.sidecar.limits import ConnectionGate, LeakingGate, Watchdog
from meshproxy.sidecar.istio_metrics import IstioMetrics
from meshproxy.sidecar.metrics import Metrics
from meshproxy.sidecar.outbound import DROP, Outbound
from meshproxy.sidecar.pool import UpstreamPool
from meshproxy.sidecar.telemetry import Telemetry

log = logging.getLogger(__name__)


def _listen(ip: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ip, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


class Sidecar:
    def __init__(self, boot: Bootstrap, defects: Mapping[str, Any] | None = None):
        self.boot = boot
        self.defects = _defects.current() if defects is None else _defects.Defects.of(defects)
        self.metrics = Metrics()
        self.metrics.istio = IstioMetrics(boot.workload, boot.service, boot.spiffe_id)
        self.telemetry: Telemetry | None = None
        self.limits = boot.limits
        self.gate = (LeakingGate(int(self.defects.param("leak_connection_slots")))
                     if self.defects.active("leak_connection_slots") else ConnectionGate(boot.limits.max_connections))
        # admin connections: a cap of their own, and each counts in the data path's gate too
        self.admin_gate = CountingGate(boot.limits.admin_max_connections, also=self.gate)
        self.certs = CertificateStore(Path(boot.work_dir), self.metrics, self.defects)
        self.prober = HealthProber(self.certs, boot.limits, self.metrics)
        self.config = ConfigStore(boot.service, self.metrics, self.defects, prober=self.prober)
        self.ready = False
        self._tasks: list[asyncio.Task] = []
        self._outbound_server: asyncio.AbstractServer | None = None
        self._admin: web.AppRunner | None = None
        self._cp = None
        self._socks: list[socket.socket] = []

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        b = self.boot
        self._socks = [_listen(b.ip, port) for port in (b.inbound_port, b.outbound_port, b.admin_port)]
        inbound_sock, outbound_sock, admin_sock = list(self._socks)
        # the admin API first: /ready answers 503 while the sidecar waits for the control plane
        self._admin = web.AppRunner(make_admin_app(self), access_log=None,
                                    keepalive_timeout=self.limits.idle_timeout_s)
        await self._admin.setup()
        await GuardedSite(self._admin, admin_sock, gate=self.admin_gate, limits=ListenerLimits(
            header_timeout_s=self.limits.header_timeout_s, body_timeout_s=self.limits.body_timeout_s,
            max_connections=self.limits.admin_max_connections)).start()
        self._socks.remove(admin_sock)
        if b.static is not None:
            self._load_static()
        else:
            from meshproxy.sidecar.dynamic import ControlPlaneSession
            self._cp = ControlPlaneSession(b, self.certs, self.config, self.defects)
            # defect "ready_without_controlplane": ready (admin /ready 200) before it has joined
            self.ready = self.defects.active("ready_without_controlplane")
            # enroll, register, first configuration; retried while the control plane is away (the
            # sockets already listen: early callers wait in the backlog, nothing is served meanwhile)
            await self._cp.join()
        self.watchdog = Watchdog(loop, self.limits)
        self.watchdog.start()
        self.pool = UpstreamPool(self.limits, self.metrics, self.watchdog)
        rng = random.Random()  # seeded from os.urandom once; request ids, span ids, sampling, balancing
        self.telemetry = Telemetry(b, self.metrics, self.defects, rng)
        self.outbound = Outbound(self.config, self.certs, self.pool, self.metrics, self.defects, rng,
                                 telemetry=self.telemetry, workload=b.workload)
        self.inbound = Inbound(own_id=b.spiffe_id, trust_domain=b.trust_domain, app=b.app_address,
                               config=self.config, certs=self.certs, pool=self.pool, limits=self.limits,
                               watchdog=self.watchdog, gate=self.gate, metrics=self.metrics,
                               defects=self.defects, service=b.service, telemetry=self.telemetry, rng=rng)
        self._outbound_server = await loop.create_server(
            lambda: ServerConnection(self.outbound.handle, self.limits, self.watchdog, DROP, self.gate,
                                     admitted=False),
            sock=outbound_sock, backlog=4096)
        self._socks.remove(outbound_sock)  # each server owns (and closes) its socket from here on
        self.inbound.start(inbound_sock)
        self._socks.remove(inbound_sock)
        if self._cp is not None:
            self._tasks.append(loop.create_task(self._cp.watch()))
            self._tasks.append(loop.create_task(Rotator(self.certs, self._cp.renew, self.defects).run()))
        self.ready = True
        log.info("sidecar %s ready: inbound %s, outbound %s:%s, admin %s:%s", b.workload, b.inbound_address,
                 b.ip, b.outbound_port, b.ip, b.admin_port)

    def _load_static(self) -> None:
        static = self.boot.static
        svid = Svid.from_pem(Path(static["cert"]).read_bytes(), Path(static["key"]).read_bytes(),
                             Path(self.boot.bundle).read_bytes())
        self.certs.install(svid)
        self.config.install(static.get("generation", 1), static.get("version", 1), static["scenario"],
                            static["endpoints"])

    async def stop(self) -> None:
        self.ready = False
        if getattr(self, "inbound", None) is not None:
            self.inbound.stop()
        if self._outbound_server is not None:
            self._outbound_server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._cp is not None:
            try:
                await asyncio.wait_for(self._cp.deregister(), 1.0)
            except Exception as exc:
                log.warning("deregister failed: %s", exc)
            await self._cp.close()
        if self.telemetry is not None:
            await self.telemetry.close()  # the access log's last lines, the spans still queued (bounded)
        if self._admin is not None:
            await self._admin.cleanup()
        if getattr(self, "pool", None) is not None:
            self.pool.close_all()
        if getattr(self, "watchdog", None) is not None:
            self.watchdog.stop()
        self.config.close()
        for sock in self._socks:  # what start() bound but never handed to a server
            sock.close()
        self._socks.clear()
