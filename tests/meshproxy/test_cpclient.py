"""The control plane clients against real control planes: the command line (a subprocess) for the sync
admin client, restarts and signals; an in-process one for the async client's identity rotation."""

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from meshproxy import ca as _ca
from meshproxy.controlplane.server import Settings, start_controlplane
from meshproxy.cpclient import (
    AsyncControlPlaneClient, ControlPlaneClient, ControlPlaneError, ControlPlaneUnavailable, NotInEffect,
    RegisterFirst, ScenarioRejected,
)

TD = "cluster.local"
ADMIN = "cli-admin-token"
BACKEND_ID = f"spiffe://{TD}/ns/default/sa/backend"
SCENARIO = {"apiVersion": "meshconform/v1", "name": "cli", "trust_domain": TD,
            "services": [{"name": "backend"}]}
READY_TIMEOUT_S = 15.0


def random_ip() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.1"


class ControlPlaneProcess:
    """``python -m meshproxy.controlplane`` with its stderr drained by a thread (so it never blocks)."""

    def __init__(self, ip: str, state_dir, token_file):
        self.url = f"https://{ip}:15010"
        self.bundle = state_dir / "bundle.pem"
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "meshproxy.controlplane", "--listen", f"{ip}:15010", "--state-dir",
             str(state_dir), "--trust-domain", TD, "--admin-token-file", str(token_file)],
            stderr=subprocess.PIPE, text=True, env={**os.environ, "MESHCONFORM_RUN_ID": "test-cpclient"})
        threading.Thread(target=self._drain, daemon=True).start()
        if not self.ready.wait(READY_TIMEOUT_S):
            self.stop()
            raise AssertionError("control plane not ready:\n" + "".join(self.lines))

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            if f"controlplane ready on {self.url}" in line:
                self.ready.set()

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise

    def admin(self, token=ADMIN) -> ControlPlaneClient:
        return ControlPlaneClient(self.url, self.bundle, admin_token=token)


@pytest.fixture
def cli(tmp_path):
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN + "\n")
    started = []

    def start(ip=None):
        process = ControlPlaneProcess(ip or random_ip(), tmp_path / "state", token_file)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def test_command_line_serves_and_exits_cleanly_on_sigterm_and_sigint(cli):
    cp = cli()
    assert cp.admin().healthz() is True
    started = time.monotonic()
    assert cp.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5
    assert any("controlplane stopping" in line for line in cp.lines)
    assert ControlPlaneClient(cp.url, cp.bundle).healthz() is False
    again = cli()
    assert again.stop(signal.SIGINT) == 0


def test_sync_admin_calls(cli):
    cp = cli()
    admin = cp.admin()
    assert admin.bundle() == cp.bundle.read_bytes()
    assert admin.put_scenario(SCENARIO) == 1
    assert admin.get_scenario()["scenario"]["name"] == "cli"

    with pytest.raises(ScenarioRejected) as rejected:
        admin.put_scenario({**SCENARIO, "services": [{"name": "Bad_Name"}]})
    assert [e["field"] for e in rejected.value.errors] == ["services.0.name"]

    with pytest.raises(ControlPlaneError) as wrong:
        cp.admin("wrong-token").status()
    assert wrong.value.status == 403

    token = admin.create_join_token("backend-v1-0", BACKEND_ID, ttl_s=60)
    assert isinstance(token, str) and len(token) > 30

    admin.override_endpoint("backend-v1-0", "127.0.0.1:7000", service="backend", namespace="default",
                            version="v1", instance=0)
    status = admin.status()
    assert status["workloads"]["backend-v1-0"]["address"] == "127.0.0.1:7000"
    # an override alone has no sidecar to wait for: the generation is in effect at once
    assert admin.wait_generation(status["generation"], timeout=1)["in_effect"]
    admin.deregister("backend-v1-0")
    assert admin.status()["workloads"] == {}


def test_restart_keeps_scenario_and_ca_and_asks_workloads_to_register_again(cli):
    ip = random_ip()
    cp = cli(ip)
    admin = cp.admin()
    version = admin.put_scenario(SCENARIO)
    token = admin.create_join_token("backend-v1-0", BACKEND_ID)

    async def join():
        client = AsyncControlPlaneClient(cp.url, cp.bundle)
        key, csr = _ca.new_key_and_csr()
        answer = await client.sign(csr, join_token=token)
        client.set_client_identity(answer["certificate"].encode(), _ca.key_pem(key))
        await client.register("backend-v1-0", service="backend", namespace="default", version="v1",
                              instance=0, address="127.0.0.1:15006")
        config = await client.config("backend-v1-0")
        await client.ack("backend-v1-0", config["generation"], config["version"])
        return client, config

    async def after_restart(client, before):
        try:
            with pytest.raises(RegisterFirst):
                await client.config("backend-v1-0", after=before["generation"], wait=5)
            renewed = await client.sign(_ca.new_key_and_csr()[1])  # the old SVID still authenticates
            assert _ca.parse_spiffe_id(_ca.load_cert(renewed["certificate"].encode())) == BACKEND_ID
            await client.register("backend-v1-0", service="backend", namespace="default", version="v1",
                                  instance=0, address="127.0.0.1:15006")
            # the generation keeps growing across the restart, so an old `after` answers at once
            config = await client.config("backend-v1-0", after=before["generation"], wait=5)
            assert config["generation"] > before["generation"] and config["version"] == version
        finally:
            await client.close()

    loop = asyncio.new_event_loop()
    try:
        client, before = loop.run_until_complete(join())
        assert admin.wait_generation(before["generation"], timeout=5)["in_effect"]
        assert cp.stop() == 0
        with pytest.raises(ControlPlaneUnavailable):
            loop.run_until_complete(client.config("backend-v1-0"))
        cp = cli(ip)
        admin = cp.admin()
        assert admin.get_scenario()["version"] == version
        stranger = AsyncControlPlaneClient(cp.url, cp.bundle)
        with pytest.raises(ControlPlaneError) as unknown:  # join tokens are memory-only
            loop.run_until_complete(stranger.sign(_ca.new_key_and_csr()[1], join_token=token))
        assert unknown.value.status == 401
        loop.run_until_complete(stranger.close())
        loop.run_until_complete(after_restart(client, before))
        status = admin.status()
        with pytest.raises(NotInEffect) as lagging:
            admin.wait_generation(status["generation"], timeout=0.3)
        assert lagging.value.lagging == ["backend-v1-0"]
    finally:
        loop.close()


async def test_rotation_keeps_inflight_long_poll_and_uses_new_cert(tmp_path):
    ip = random_ip()
    running = await start_controlplane(Settings(ip, 0, tmp_path, TD, ADMIN, defects={}))
    admin = AsyncControlPlaneClient(running.url, running.bundle_path, admin_token=ADMIN)
    client = AsyncControlPlaneClient(running.url, running.bundle_path)
    try:
        token = running.state.tokens.create("backend-v1-0", BACKEND_ID)
        key, csr = _ca.new_key_and_csr()
        first = await client.sign(csr, join_token=token)
        client.set_client_identity(first["certificate"].encode(), _ca.key_pem(key))
        await client.register("backend-v1-0", service="backend", namespace="default", version="v1",
                              instance=0, address="127.0.0.1:15006")
        current = (await client.config("backend-v1-0"))["generation"]
        poll = asyncio.create_task(client.config("backend-v1-0", after=current, wait=30))
        done, _ = await asyncio.wait({poll}, timeout=0.2)
        assert not done

        new_key, new_csr = _ca.new_key_and_csr()
        second = await client.sign(new_csr)
        client.set_client_identity(second["certificate"].encode(), _ca.key_pem(new_key))
        # a change: the long-poll made with the old certificate still answers
        await admin.register("backend-v1-0", service="backend", namespace="default", version="v1",
                             instance=0, address="127.0.0.1:7000")
        config = await asyncio.wait_for(poll, 5)
        assert config["endpoints"]["backend-v1-0"]["address"] == "127.0.0.1:7000"
        # and the next renewal is authenticated by the rotated certificate
        third = await client.sign(_ca.new_key_and_csr()[1])
        assert third["serial"] not in (first["serial"], second["serial"])
    finally:
        await client.close()
        await admin.close()
        await running.stop()


async def test_async_client_reports_an_absent_control_plane(tmp_path):
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(_ca.CertificateAuthority.create(TD, defects={}).bundle_pem())
    client = AsyncControlPlaneClient(f"https://{random_ip()}:15010", bundle, timeout=2)
    try:
        with pytest.raises(ControlPlaneUnavailable):
            await client.config("w")
    finally:
        await client.close()
