"""Active health checks end to end in real sidecars: probes over mTLS through the destination's inbound to
its app, an endpoint failing its health path leaves the balancer's set and comes back, probes stop when
the destination is closed, and the defect that ignores the results."""

import asyncio
import time

import aiohttp
from aiohttp import web

from sidecar_testkit import APP_PORT, INBOUND_PORT, OUTBOUND_PORT, spiffe

INTERVAL_S = 0.1
HEALTH = {"path": "/healthz", "interval": f"{int(INTERVAL_S * 1000)}ms", "timeout": "200ms",
          "unhealthy_threshold": 2, "healthy_threshold": 2}
DEADLINE_S = 5.0


class HealthApp:
    """An app whose ``/healthz`` answers ``health_status``; anything else answers its name."""

    def __init__(self, name: str):
        self.name = name
        self.health_status = 200
        self.probes: list[dict] = []
        self.requests = 0
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path == "/healthz":
            self.probes.append({k.lower(): v for k, v in request.headers.items()})
            return web.json_response({"ok": self.health_status == 200}, status=self.health_status)
        self.requests += 1
        return web.json_response({"name": self.name})

    async def start(self, ip: str) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, ip, APP_PORT).start()

    async def stop(self) -> None:
        await self._runner.cleanup()


def _scenario(health=HEALTH, mode="STRICT"):
    lb = {"policy": "round_robin"} | ({"health_check": health} if health else {})
    backend = {"name": "backend", "versions": [{"name": "v1", "instances": 2}]}
    return {"trust_domain": "cluster.local", "services": [{"name": "client"}, backend],
            "policies": [{"service": "backend", "mtls": {"mode": mode}, "load_balancing": lb}]}


async def _mesh(kit, scenario, defects=None, dead_second=False):
    """client sidecar + two backend instances (sidecar + HealthApp each); the second has no app and no
    sidecar at all when ``dead_second``."""
    cip, ips = kit.ip(), [kit.ip(), kit.ip()]
    endpoints = {f"backend-v1-{i}": {"service": "backend", "version": "v1", "instance": i,
                                     "address": f"{ip}:{INBOUND_PORT}"} for i, ip in enumerate(ips)}
    apps = []
    for i, ip in enumerate(ips):
        if dead_second and i == 1:
            break
        app = HealthApp(f"b{i}")
        await app.start(ip)
        kit.apps.append(app)
        apps.append(app)
        await kit.sidecar("backend", ip, scenario, endpoints, instance=i)
    client = await kit.sidecar("client", cip, scenario, endpoints, defects=defects)
    return client, apps, cip, [f"{ip}:{INBOUND_PORT}" for ip in ips]


async def _until(condition, what: str, deadline_s: float = DEADLINE_S):
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {deadline_s} s: {what}"
        await asyncio.sleep(0.01)  # polling pace of an in-process condition, bounded by the deadline


async def _names(cip, n):
    async with aiohttp.ClientSession() as session:
        got = []
        for _ in range(n):
            async with session.get(f"http://{cip}:{OUTBOUND_PORT}/x", headers={"Host": "backend"}) as resp:
                body = await resp.read()
                got.append(resp.status if resp.status != 200 else (await resp.json())["name"])
    return got, body


def _from_client(app):
    """Probes the client sidecar sent (every sidecar probes the destination, the backends' own too)."""
    return sum(f"URI={spiffe('client')}" in p.get("x-forwarded-client-cert", "") for p in app.probes)


def _health(client):
    return client.config.current.destinations["backend"].health


async def test_probes_cross_the_inbound_over_mtls_and_hosts_start_healthy_after_the_first(kit):
    client, apps, cip, eps = await _mesh(kit, _scenario())
    await _until(lambda: _health(client).available(eps) == eps, "both endpoints healthy")
    await _until(lambda: all(len(a.probes) >= 2 for a in apps), "two probes at each app")
    probe = apps[0].probes[-1]
    assert probe["host"] == "backend" and probe["user-agent"] == "Envoy/HC"
    # the client sidecar's own identity, as the backend's inbound saw it on the mTLS hop
    assert any(f"URI={spiffe('client')}" in p.get("x-forwarded-client-cert", "") for p in apps[0].probes)
    names, _ = await _names(cip, 6)
    assert sorted(names) == ["b0"] * 3 + ["b1"] * 3


async def test_a_failing_health_path_takes_the_endpoint_out_and_recovery_brings_it_back(kit):
    client, apps, cip, eps = await _mesh(kit, _scenario())
    await _until(lambda: _health(client).available(eps) == eps, "both endpoints healthy")
    apps[1].health_status = 503
    flipped = time.monotonic()
    await _until(lambda: not _health(client).is_healthy(eps[1]), "the failing endpoint out")
    # a non-200 answer is an active failure: out at the next probe, within one interval and a round trip
    assert time.monotonic() - flipped < INTERVAL_S + 0.5
    before = apps[1].requests
    names, _ = await _names(cip, 10)
    assert names == ["b0"] * 10 and apps[1].requests == before
    apps[1].health_status = 200
    await _until(lambda: _health(client).is_healthy(eps[1]), "the endpoint back")
    names, _ = await _names(cip, 4)
    assert sorted(names) == ["b0", "b0", "b1", "b1"]


async def test_an_endpoint_nobody_listens_on_never_gets_healthy(kit):
    client, apps, cip, eps = await _mesh(kit, _scenario(), dead_second=True)
    await _until(lambda: _health(client).is_healthy(eps[0]), "the live endpoint healthy")
    names, _ = await _names(cip, 6)
    assert names == ["b0"] * 6  # no connect errors: the dead endpoint is not in the set


async def test_every_endpoint_unhealthy_answers_no_healthy_upstream(kit):
    client, apps, cip, eps = await _mesh(kit, _scenario())
    await _until(lambda: _health(client).available(eps) == eps, "both endpoints healthy")
    for app in apps:
        app.health_status = 500
    await _until(lambda: _health(client).available(eps) == [], "both endpoints out")
    names, body = await _names(cip, 1)
    assert names == [503] and b"no healthy upstream" in body


async def test_plaintext_destination_is_probed_in_plaintext(kit):
    client, apps, cip, eps = await _mesh(kit, _scenario(mode="DISABLE"))
    await _until(lambda: _health(client).available(eps) == eps, "both endpoints healthy")
    assert all("x-forwarded-client-cert" not in p for p in apps[0].probes)


async def test_closing_the_destination_stops_its_probes(kit):
    client, apps, cip, eps = await _mesh(kit, _scenario())
    await _until(lambda: _from_client(apps[0]) >= 2, "probing under way")
    old = client.config.current.destinations["backend"]
    snap = client.config.current
    client.config.install(snap.generation + 1, snap.version + 1, _scenario(health=None), snap.endpoints)
    assert client.config.current.destinations["backend"] is not old  # a new policy: a new destination
    count = _from_client(apps[0])
    await asyncio.sleep(5 * INTERVAL_S)  # a window of five intervals in which no probe may come
    assert _from_client(apps[0]) <= count + 1  # at most the one already on the wire


async def test_defect_health_check_ignored_probes_but_keeps_sending(kit):
    client, apps, cip, eps = await _mesh(kit, _scenario(), defects={"health_check_ignored": True})
    await _until(lambda: _health(client).available(eps) == eps and all(a.probes for a in apps), "probing")
    apps[1].health_status = 503
    await _until(lambda: not _health(client).is_healthy(eps[1]), "the checker saw the failure")
    names, _ = await _names(cip, 6)
    assert names.count("b1") == 3
