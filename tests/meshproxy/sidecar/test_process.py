"""``python -m meshproxy.sidecar --bootstrap FILE`` as a process: ready, serves, exits 0 on signals."""

import json
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from fixtures.certs import write_pair
from sidecar_testkit import ADMIN_PORT, APP_PORT, INBOUND_PORT, OUTBOUND_PORT, TD, Kit, spiffe, two_service_scenario


def _ready(ip):
    try:
        with urllib.request.urlopen(f"http://{ip}:{ADMIN_PORT}/ready", timeout=0.5) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_static_sidecar_process_is_ready_then_exits_zero_within_2s(tmp_path, sig):
    kit = Kit(tmp_path)
    ip = kit.ip()
    cert, key = write_pair(tmp_path, "client", *kit.ca.issue_svid(spiffe("client")))
    boot = {"workload": "client-v1-0", "service": "client", "namespace": "default", "version": "v1", "instance": 0,
            "spiffe_id": spiffe("client"), "trust_domain": TD, "ip": ip, "inbound_port": INBOUND_PORT,
            "outbound_port": OUTBOUND_PORT, "admin_port": ADMIN_PORT, "app": f"{ip}:{APP_PORT}",
            "bundle": str(kit.bundle), "work_dir": str(tmp_path / "work"),
            "static": {"scenario": two_service_scenario(), "endpoints": {}, "cert": str(cert), "key": str(key)}}
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(boot))
    proc = subprocess.Popen([sys.executable, "-m", "meshproxy.sidecar", "--bootstrap", str(path)],
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while not _ready(ip):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "sidecar not ready"
            time.sleep(0.05)  # polling /ready
        with urllib.request.urlopen(f"http://{ip}:{ADMIN_PORT}/certs", timeout=2) as resp:
            assert json.load(resp)["spiffe_id"] == spiffe("client")
        started = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 2.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
