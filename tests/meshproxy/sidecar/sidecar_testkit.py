"""Real sidecars in the test's own event loop, with real TLS: a test mesh CA, an aiohttp app that
records what arrives, and static bootstraps on a random 127.A.B.0/24 block (docs/architecture.md ports).
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

from aiohttp import web

from fixtures.certs import ForeignCA, write_pair
from meshproxy.sidecar.bootstrap import parse_bootstrap
from meshproxy.sidecar.server import Sidecar

TD = "cluster.local"
APP_PORT, INBOUND_PORT, OUTBOUND_PORT, ADMIN_PORT = 8080, 15006, 15001, 15000


def spiffe(service: str, td: str = TD) -> str:
    return f"spiffe://{td}/ns/default/sa/{service}"


def two_service_scenario(backend_mode: str = "STRICT", allowed: list[str] | None = None, **extra: Any) -> dict:
    policies = [{"service": "backend", "mtls": {"mode": backend_mode}}]
    if allowed is not None:
        policies[0]["authz"] = {"allowed_principals": allowed}
    return {"trust_domain": TD, "services": [{"name": "client"}, {"name": "backend"}],
            "policies": policies, **extra}


class RecordingApp:
    """The local app behind a sidecar: answers JSON with the headers it got; records each arrival and
    the client ports it saw (one per upstream connection of the sidecar's pool)."""

    def __init__(self, name: str):
        self.name = name
        self.arrivals: list[dict] = []
        self.peers: set[tuple] = set()
        self.per_key: dict[str, int] = {}
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        """Query ``fail=K`` answers 503 to the first K arrivals of ``key``; ``delay=S`` (first arrival of the
        key only with ``delay_once=1``) sleeps before answering."""
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.peers.add(request.transport.get_extra_info("peername"))
        self.arrivals.append({"path": request.path_qs, "headers": headers, "body": body})
        key = request.query.get("key", "")
        seen = self.per_key[key] = self.per_key.get(key, 0) + 1
        delay = float(request.query.get("delay", 0))
        if delay and (seen == 1 or not request.query.get("delay_once")):
            await asyncio.sleep(delay)  # the programmed slowness of this upstream
        if seen <= int(request.query.get("fail", 0)):
            return web.json_response({"failed": seen}, status=503)
        return web.json_response({"service": self.name, "headers": headers, "body_bytes": len(body)})

    async def start(self, ip: str, port: int) -> None:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, ip, port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Kit:
    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.block = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}"
        self.ca = ForeignCA("meshconform test mesh CA")
        self.bundle = self.ca.write_bundle(tmp_path / "bundle.pem")
        self.sidecars: list[Sidecar] = []
        self.apps: list[RecordingApp] = []
        self._next = 10

    def ip(self) -> str:
        self._next += 1
        return f"{self.block}.{self._next}"

    def issue(self, name: str, spiffe_id: str, **options: Any) -> tuple[Path, Path]:
        cert, key = self.ca.issue_svid(spiffe_id, **options)
        return write_pair(self.tmp / "certs", name, cert, key)

    async def app(self, name: str, ip: str) -> RecordingApp:
        app = RecordingApp(name)
        await app.start(ip, APP_PORT)
        self.apps.append(app)
        return app

    async def sidecar(self, service: str, ip: str, scenario: dict, endpoints: dict, *,
                      limits: dict | None = None, defects: dict | None = None, version: str = "v1",
                      instance: int = 0) -> Sidecar:
        name = f"{service}-{version}-{instance}"
        cert, key = self.issue(name, spiffe(service))
        boot = parse_bootstrap({
            "workload": name, "service": service, "namespace": "default", "version": version, "instance": instance,
            "spiffe_id": spiffe(service), "trust_domain": TD, "ip": ip, "inbound_port": INBOUND_PORT,
            "outbound_port": OUTBOUND_PORT, "admin_port": ADMIN_PORT, "app": f"{ip}:{APP_PORT}",
            "bundle": str(self.bundle), "work_dir": str(self.tmp / name),
            "static": {"scenario": scenario, "endpoints": endpoints, "cert": str(cert), "key": str(key)},
            "limits": limits or {}})
        sidecar = Sidecar(boot, defects=defects or {})
        await sidecar.start()
        self.sidecars.append(sidecar)
        return sidecar

    async def pair(self, scenario: dict, **backend_options: Any) -> tuple[Sidecar, Sidecar, RecordingApp, str, str]:
        """client sidecar + backend sidecar with its app; returns (client, backend, app, client_ip, backend_ip)."""
        cip, bip = self.ip(), self.ip()
        endpoints = {"backend-v1-0": {"service": "backend", "version": "v1", "instance": 0,
                                      "address": f"{bip}:{INBOUND_PORT}"}}
        app = await self.app("backend", bip)
        backend = await self.sidecar("backend", bip, scenario, endpoints, **backend_options)
        client = await self.sidecar("client", cip, scenario, endpoints)
        return client, backend, app, cip, bip

    async def close(self) -> None:
        for sidecar in self.sidecars:
            await sidecar.stop()
        for app in self.apps:
            await app.stop()


async def raw_exchange(ip: str, port: int, data: bytes, *, ssl: Any = None, timeout: float = 5.0) -> bytes:
    """Send bytes, return everything until the server closes (or ``timeout``)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port, ssl=ssl, server_hostname=None
                                                                    if ssl is None else ""), timeout)
    writer.write(data)
    chunks = []
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return b"".join(chunks)


def json_body(raw: bytes) -> dict:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


class ParsedResponse:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


def parse_response(raw: bytes) -> ParsedResponse | None:
    """The first HTTP response in ``raw`` (parsed by httptools), or None if there is none."""
    import httptools

    parsed = ParsedResponse()
    parser = httptools.HttpResponseParser(parsed)
    try:
        parser.feed_data(raw)
    except httptools.HttpParserError:
        pass
    if not raw or not parsed.complete and not parsed.headers:
        return None
    parsed.status = parser.get_status_code()
    return parsed


async def tls_exchange(ip: str, port: int, data: bytes, ctx: Any, timeout: float = 5.0) -> bytes | None:
    """Like raw_exchange over TLS; None when the server refused (handshake failure, alert, reset, EOF).

    TLS 1.3 reports a rejected client certificate only at the first read, so a refusal may show up
    as an alert or an empty answer after the request was written."""
    import ssl as _ssl

    try:
        raw = await raw_exchange(ip, port, data, ssl=ctx, timeout=timeout)
    except (_ssl.SSLError, ConnectionError, OSError):
        return None
    return raw or None


def mesh_client_ctx(kit: "Kit", spiffe_id: str, **options: Any):
    from fixtures.certs import client_ssl_context

    cert, key = kit.ca.issue_svid(spiffe_id, **options)
    return client_ssl_context(kit.bundle, cert, key)


GET = b"GET /probe HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n"
