"""Admin API on ``ip:admin_port`` (aiohttp; off the request path): /ready, /config, /certs, /stats,
/metrics (Prometheus text), as documented in docs/architecture.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from meshproxy.sidecar.server import Sidecar


def make_admin_app(sidecar: "Sidecar") -> web.Application:
    async def ready(_: web.Request) -> web.Response:
        if sidecar.ready:
            return web.json_response({"ready": True})
        return web.json_response({"ready": False}, status=503)

    async def config(_: web.Request) -> web.Response:
        snap = sidecar.config.current
        if snap is None:
            return web.json_response({"generation": None, "version": None}, status=503)
        return web.json_response({"generation": snap.generation, "version": snap.version,
                                  "inbound_mode": snap.inbound_mode.value})

    async def certs(_: web.Request) -> web.Response:
        svid = sidecar.certs.svid
        if svid is None:
            return web.json_response({"error": "no certificate yet"}, status=503)
        return web.json_response(svid.info())

    async def stats(_: web.Request) -> web.Response:
        body = sidecar.metrics.stats()
        snap = sidecar.config.current
        if snap is not None:
            body["destinations"] = {
                name: {"breaker": d.breaker.stats(), "ejected": sorted(d.outlier.ejected)}
                for name, d in snap.destinations.items()}
        body["downstream_connections"] = sidecar.gate.open - sidecar.admin_gate.open  # the data path's
        body["admin_connections"] = sidecar.admin_gate.open
        return web.json_response(body)

    async def metrics(_: web.Request) -> web.Response:
        sidecar.metrics.downstream_connections = sidecar.gate.open - sidecar.admin_gate.open
        return web.Response(text=sidecar.metrics.prometheus(), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/ready", ready)
    app.router.add_get("/config", config)
    app.router.add_get("/certs", certs)
    app.router.add_get("/stats", stats)
    app.router.add_get("/metrics", metrics)
    return app
