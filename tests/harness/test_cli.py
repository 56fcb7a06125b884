"""The `meshconform` console script end to end, as a user runs it (real processes, real mTLS)."""

import http.client
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from meshruntime.processes import OWNER_ENV, RUN_ID_ENV, wait_until
from meshruntime.sweep import tagged_processes

# a child that just stays alive (60 s bounds it if a test leaks it); nothing waits on its sleep
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]  # a child that stays alive, bounded


def _meshconform(*args, timeout=60):
    return subprocess.run(["meshconform", *args], capture_output=True, text=True, timeout=timeout)


def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_bad_scenario_file_exits_2_naming_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  - name: Not_A_Dns_Label\n    versions: [{name: v1, instances: 0}]\n")
    result = _meshconform("up", "--scenario", str(bad), "--state", str(tmp_path / "s.json"))
    assert result.returncode == 2, result.stderr
    assert "services.0.name" in result.stderr
    assert "services.0.versions.0.instances" in result.stderr
    assert not (tmp_path / "s.json").exists()


def test_missing_scenario_file_exits_2(tmp_path):
    result = _meshconform("up", "--scenario", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2 and "(file)" in result.stderr


def test_unknown_defect_exits_2(tmp_path):
    result = _meshconform("up", "--defects", '{"no_such_defect": true}', "--state", str(tmp_path / "s.json"))
    assert result.returncode == 2 and "no_such_defect" in result.stderr


def test_down_with_an_unreadable_state_file_exits_2(tmp_path):
    result = _meshconform("down", "--state", str(tmp_path / "absent.json"))
    assert result.returncode == 2 and "absent.json" in result.stderr


def test_sweep_removes_an_orphan_of_that_run_only(tmp_path):
    env = dict(os.environ, **{RUN_ID_ENV: "cli-sweep-test", OWNER_ENV: "999999999/0"})
    orphan = subprocess.Popen(SLEEPER, env=env, start_new_session=True)
    other = subprocess.Popen(SLEEPER, env=dict(env, **{RUN_ID_ENV: "cli-sweep-other"}), start_new_session=True)
    try:
        wait_until(lambda: len(tagged_processes("cli-sweep-test")) == 1, timeout=5, what="orphan visible")
        result = _meshconform("sweep", "--run-id", "cli-sweep-test")
        assert result.returncode == 0, result.stderr
        assert str(orphan.pid) in result.stdout and "1 leftover" in result.stdout
        assert orphan.wait(timeout=5) == -signal.SIGTERM
        assert other.poll() is None
    finally:
        for proc in (orphan, other):
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_up_serves_mtls_traffic_and_down_stops_everything(tmp_path):
    state_path = tmp_path / "state.json"
    up = subprocess.Popen(["meshconform", "up", "--state", str(state_path)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    run_id = None
    try:
        wait_until(lambda: state_path.exists(), timeout=90, what="meshconform up wrote its state",
                   abort=lambda: None if up.poll() is None else f"up exited: {up.communicate()[1][-2000:]}")
        state = json.loads(state_path.read_text())
        run_id = state["run_id"]
        assert state["owner_pid"] == up.pid
        assert len(state["workloads"]) == 4  # the default scenario: client + backend v1 x2 + v2

        host, _, port = state["workloads"]["client-v1-0"]["outbound"].rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/hello", headers={"Host": "backend"})
        response = conn.getresponse()
        answer = json.loads(response.read())
        conn.close()
        assert response.status == 200
        assert answer["service"] == "backend" and answer["path"] == "/hello"
        assert "URI=spiffe://cluster.local/ns/default/sa/client" in answer["headers"]["x-forwarded-client-cert"]

        pids = [state["controlplane"]["pid"]] + [p for w in state["workloads"].values() for p in w["pids"].values()]
        assert len(pids) == 9 and not any(_gone(p) for p in pids)
        began = time.monotonic()
        down = _meshconform("down", "--state", str(state_path))
        assert down.returncode == 0, down.stderr
        assert time.monotonic() - began < 15
        assert up.wait(timeout=10) == 0
        assert all(_gone(p) for p in pids)
        assert tagged_processes(run_id) == []
        assert not state_path.exists()
        assert "client-v1-0" in up.stdout.read()  # the table of workloads was printed
    finally:
        if up.poll() is None:
            up.terminate()
            up.wait(timeout=15)
        if run_id:
            subprocess.run(["meshconform", "sweep", "--run-id", run_id], capture_output=True, timeout=30)
