"""Dynamic mode against the real control plane (in this loop): enroll with a join token, register,
receive configuration, and keep serving through certificate rotations (short TTL) with zero failures."""

import asyncio
import json
import random
import time

import aiohttp

from meshproxy.controlplane.server import Settings, start_controlplane
from meshproxy.sidecar.bootstrap import parse_bootstrap
from meshproxy.sidecar.server import Sidecar
from sidecar_testkit import ADMIN_PORT, APP_PORT, INBOUND_PORT, OUTBOUND_PORT, TD, RecordingApp, spiffe

ADMIN = "sidecar-test-admin"


async def _admin(session, cp, method, path, body):
    async with session.request(method, cp.url + path, json=body, headers={"Authorization": f"Bearer {ADMIN}"},
                               ssl=False) as resp:
        assert resp.status < 300, await resp.text()
        return await resp.json()


async def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)  # polling an observable condition


async def test_dynamic_sidecars_enroll_route_and_rotate_without_failures(tmp_path):
    block = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}"
    cp = await start_controlplane(Settings(f"{block}.1", 15010, tmp_path / "cp", TD, ADMIN, cert_ttl=4.0,
                                           defects={}))
    scenario = {"trust_domain": TD, "cert_ttl": 3, "services": [{"name": "client"}, {"name": "backend"}],
                "policies": [{"service": "backend", "mtls": {"mode": "STRICT"},
                              "authz": {"allowed_principals": [spiffe("client")]}}]}
    sidecars, apps = [], []
    try:
        async with aiohttp.ClientSession() as session:
            await _admin(session, cp, "PUT", "/v1/scenario", scenario)
            for i, service in enumerate(("backend", "client")):
                ip, name = f"{block}.{11 + i}", f"{service}-v1-0"
                token = (await _admin(session, cp, "POST", "/v1/join-tokens",
                                      {"workload": name, "spiffe_id": spiffe(service)}))["token"]
                app = RecordingApp(service)
                await app.start(ip, APP_PORT)
                apps.append(app)
                boot = parse_bootstrap({
                    "workload": name, "service": service, "namespace": "default", "version": "v1", "instance": 0,
                    "spiffe_id": spiffe(service), "trust_domain": TD, "ip": ip, "inbound_port": INBOUND_PORT,
                    "outbound_port": OUTBOUND_PORT, "admin_port": ADMIN_PORT, "app": f"{ip}:{APP_PORT}",
                    "controlplane": cp.url, "bundle": str(cp.bundle_path), "join_token": token,
                    "work_dir": str(tmp_path / name)})
                sidecar = Sidecar(boot, defects={})
                await sidecar.start()
                sidecars.append(sidecar)
            backend, client = sidecars
            cip = f"{block}.12"
            # the client learns the backend's endpoint from the control plane
            await _wait_for(lambda: client.config.current.endpoints_of("backend", "v1"), 10, "backend endpoint")
            first_serials = [s.certs.svid.serial for s in sidecars]
            ok = failed = 0
            deadline = time.monotonic() + 4.0  # renewals at ~1.5 s and ~3 s
            while time.monotonic() < deadline and ok + failed < 20_000:
                async with session.get(f"http://{cip}:{OUTBOUND_PORT}/", headers={"Host": "backend"}) as resp:
                    await resp.read()
                    ok, failed = (ok + 1, failed) if resp.status == 200 else (ok, failed + 1)
            assert failed == 0 and ok > 50
            assert all(s.metrics.cert_rotations >= 1 for s in sidecars)
            assert [s.certs.svid.serial for s in sidecars] != first_serials
            before = client.certs.svid.serial  # renewals every ~1.5 s may land between the two reads
            async with session.get(f"http://{cip}:{ADMIN_PORT}/certs") as resp:
                assert (await resp.json())["serial"] in (before, client.certs.svid.serial)
            async with session.get(f"http://{cip}:{ADMIN_PORT}/ready") as resp:
                assert resp.status == 200
            async with session.get(f"http://{cip}:{ADMIN_PORT}/metrics") as resp:
                text = await resp.text()
                assert 'meshproxy_requests_total{direction="outbound",code="200"}' in text
                assert "meshproxy_cert_rotations_total" in text
            status = await _admin(session, cp, "GET", "/v1/status", None)
            assert set(status["workloads"]) == {"backend-v1-0", "client-v1-0"}
    finally:
        for sidecar in sidecars:
            await sidecar.stop()
        for app in apps:
            await app.stop()
        await cp.stop()
