"""LocalMesh with the real control plane, sidecars and echoes: start, traffic, chaos, stop, hygiene."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from meshproxy.runtime import LocalMesh, MeshStartError
from meshruntime.processes import wait_until
from meshruntime.sweep import sweep, tagged_processes

from runtime_helpers import echo_json, get_through, small_scenario

pytestmark = pytest.mark.slow


def _all_pids(state):
    pids = [state["controlplane"]["pid"]]
    for w in state["workloads"].values():
        pids += list(w["pids"].values())
    return pids


def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


@pytest.fixture(scope="module")
def mesh():
    mesh = LocalMesh(small_scenario())
    mesh.start(timeout=60)
    yield mesh
    mesh.stop()


def test_request_crosses_the_mesh_with_the_callers_identity(mesh):
    state = mesh.state
    status, _, body = get_through(state["workloads"]["client-v1-0"]["outbound"], "backend")
    assert status == 200
    answer = echo_json(body)
    assert answer["service"] == "backend"
    assert "URI=spiffe://cluster.local/ns/default/sa/client" in answer["headers"]["x-forwarded-client-cert"]


def test_state_has_every_process_and_private_files(mesh):
    state = mesh.state
    assert state["owner_pid"] == os.getpid()
    assert state["controlplane"]["url"] == f"https://{mesh.layout.controlplane}"
    assert set(state["workloads"]) == {"client-v1-0", "backend-v1-0"}
    pids = _all_pids(state)
    assert len(pids) == 5 and all(isinstance(p, int) and not _gone(p) for p in pids)
    assert {p.pid for p in tagged_processes(mesh.run_id)} >= set(pids)
    for name in state["workloads"]:
        bootstrap = mesh.state_dir / "workloads" / name / "bootstrap.json"
        assert stat.S_IMODE(bootstrap.stat().st_mode) == 0o600
    assert stat.S_IMODE((mesh.state_dir / "admin-token").stat().st_mode) == 0o600


def test_apply_changes_the_config_everywhere(mesh):
    before = mesh.client.status()["version"]
    seconds = mesh.apply(small_scenario(routes=[{"destination": "backend", "timeout": "2s"}]))
    assert 0 < seconds < 30
    status = mesh.client.status()
    assert status["version"] > before
    assert all(w["generation"] == status["generation"] for w in status["workloads"].values())


def test_kill_then_restart_sidecar(mesh):
    outbound = mesh.state["workloads"]["client-v1-0"]["outbound"]
    old_pid = mesh.state["workloads"]["client-v1-0"]["pids"]["sidecar"]
    mesh.kill("client-v1-0")
    assert _gone(old_pid)
    with pytest.raises(ConnectionRefusedError):
        get_through(outbound, "backend")
    seconds = mesh.restart("client-v1-0")
    new_pid = mesh.state["workloads"]["client-v1-0"]["pids"]["sidecar"]
    assert new_pid != old_pid and seconds < 30
    assert get_through(outbound, "backend")[0] == 200


def test_pause_and_resume_echo(mesh):
    outbound = mesh.state["workloads"]["client-v1-0"]["outbound"]
    mesh.pause("backend-v1-0/echo")
    try:
        began = time.monotonic()
        status, _, _ = get_through(outbound, "backend", timeout=10)
        # the route has a 2 s timeout (applied above, or none): a paused upstream is no answer in time
        assert status in (503, 504) or time.monotonic() - began >= 1.5
    except TimeoutError:
        pass
    finally:
        mesh.resume("backend-v1-0/echo")
    assert get_through(outbound, "backend")[0] == 200


def test_restart_controlplane_keeps_serving(mesh):
    outbound = mesh.state["workloads"]["client-v1-0"]["outbound"]
    old = mesh.state["controlplane"]["pid"]
    mesh.restart("controlplane")
    assert mesh.state["controlplane"]["pid"] != old
    assert mesh.client.healthz()
    assert get_through(outbound, "backend")[0] == 200


def test_stop_leaves_no_process_and_no_state_dir():
    mesh = LocalMesh(small_scenario())
    state = mesh.start(timeout=60)
    pids = _all_pids(state)
    state_dir = mesh.state_dir
    mesh.stop()
    mesh.stop()  # idempotent
    assert all(_gone(p) for p in pids)
    assert tagged_processes(mesh.run_id) == []
    assert not state_dir.exists()


def test_owner_killed_by_sigkill_leaves_no_process(tmp_path):
    """Run the owner as its own process, kill -9 it, and poll /proc until its children are gone."""
    script = textwrap.dedent("""
        import json, sys
        from meshproxy.runtime import LocalMesh
        from meshscenario import parse_scenario
        mesh = LocalMesh(parse_scenario({"services": [{"name": "client"}, {"name": "backend"}]}))
        state = mesh.start(timeout=60)
        print(json.dumps({"run_id": mesh.run_id, "state_dir": str(mesh.state_dir)}), flush=True)
        sys.stdin.read()
    """)
    owner = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    run_id = None
    try:
        import json
        line = owner.stdout.readline()
        assert line, "the owner did not start its mesh"
        run_id = json.loads(line)["run_id"]
        assert len(tagged_processes(run_id)) == 5
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=5)
        wait_until(lambda: tagged_processes(run_id) == [], timeout=10, what="children of a killed owner gone")
    finally:
        owner.kill()
        owner.wait(timeout=5)
        if run_id:
            sweep(run_id)


def test_a_component_that_cannot_start_is_reported_with_its_log(tmp_path):
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho \"cannot start: $*\" >&2\nexit 3\n")
    fake_python.chmod(0o755)
    mesh = LocalMesh(small_scenario(), python=str(fake_python), state_dir=tmp_path / "state")
    began = time.monotonic()
    with pytest.raises(MeshStartError) as caught:
        mesh.start(timeout=20)
    assert time.monotonic() - began < 10  # an exited process fails fast, not at the deadline
    message = str(caught.value)
    assert "exited with code 3" in message and "cannot start: -m meshproxy.controlplane" in message
    assert tagged_processes(mesh.run_id) == []
