"""compose/docker-compose.yml comes up healthy with `docker compose` (v2) and `docker-compose` (v1), and a
request goes client outbound -> mTLS -> a backend echo; `down -v` leaves nothing of the project.

Skips (saying why) when that compose, Docker or the images are missing, except under CI (``CI`` set) or
``MESHCONFORM_REQUIRE_DOCKER=1``, where a missing Docker or docker-compose v1 fails: CI must run them.
"""

import http.client
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from meshproxy.runtime import docker as docker_runtime

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"
SERVICES = 1 + 4 * 3  # control plane; per workload a pod, an echo and a sidecar
UP_TIMEOUT_S = 180


def _required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("MESHCONFORM_REQUIRE_DOCKER") == "1"


def _compose(kind: str) -> list[str] | None:
    if kind == "v1":
        return ["docker-compose"] if shutil.which("docker-compose") else None
    ok = shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    return ["docker", "compose"] if ok else None


@pytest.mark.parametrize("kind", ["v2", "v1"])
def test_compose_up_healthy_and_a_request_through_it(kind):
    reason = docker_runtime.unavailable_reason()
    command = _compose(kind)
    if reason or command is None:
        why = reason or f"compose {kind} is not installed"
        if _required() and (reason or kind == "v1"):
            pytest.fail(f"CI needs this test to run: {why}")
        pytest.skip(why)
    project = f"mctest{kind}{os.getpid()}"
    base = [*command, "-f", str(COMPOSE_FILE), "-p", project]
    env = {**os.environ, "MESHCONFORM_TAG": docker_runtime.image_tag("echo").rpartition(":")[2]}
    client = docker_runtime.docker_client()
    began = time.monotonic()
    try:
        up = subprocess.run([*base, "up", "-d"], capture_output=True, text=True, env=env, timeout=UP_TIMEOUT_S)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        label = {"label": f"com.docker.compose.project={project}"}
        deadline = time.monotonic() + UP_TIMEOUT_S
        while True:  # bounded poll: every service healthy
            healthy = client.api.containers(filters={**label, "health": "healthy"})
            if len(healthy) == SERVICES or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # polling pace of the health states, bounded by the deadline above
        assert len(healthy) == SERVICES, [c["Names"][0] + " " + c["Status"] for c in client.api.containers(all=True, filters=label)]
        seconds = time.monotonic() - began
        conn = http.client.HTTPConnection("127.0.0.1", 15001, timeout=10)
        conn.request("GET", "/hello", headers={"Host": "backend"})
        response = conn.getresponse()
        body = json.loads(response.read())
        assert response.status == 200 and body["service"] == "backend", body
        assert body["headers"]["x-forwarded-client-cert"].endswith("URI=spiffe://cluster.local/ns/default/sa/client")
        print(f"compose {kind}: {SERVICES} services healthy in {seconds:.1f} s")
    finally:
        subprocess.run([*base, "down", "-v", "--timeout", "3"], capture_output=True, env=env, timeout=120)
        left = client.api.containers(all=True, filters={"label": f"com.docker.compose.project={project}"})
        client.close()
    assert left == []
