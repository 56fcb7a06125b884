"""A conformance run leaves no process behind, even when pytest is interrupted or killed (issue 3).

The run under test is a real ``pytest suites/security --mesh=reference`` in a subprocess. Its mesh's
processes are recognised by their ``MESHCONFORM_OWNER`` tag naming that pytest process. Once the whole
mesh is up (observed, not slept for) the run is interrupted (SIGINT, as Ctrl-C) or killed (SIGKILL);
then every process it started must disappear within a deadline.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshruntime.sweep import tagged_processes

ROOT = Path(__file__).resolve().parents[2]
SECURITY_PROCESSES = 9  # control plane + 4 workloads x (sidecar + echo)
UP_DEADLINE_S = 90
GONE_DEADLINE_S = 15


def _owned_by(pid: int) -> list:
    return [p for p in tagged_processes() if (p.owner or "").split("/")[0] == str(pid)]


def _wait_for(predicate, deadline_s: float, what: str):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)  # polling interval of an observable condition
    pytest.fail(f"timed out after {deadline_s}s waiting for {what}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_no_process_survives_an_interrupted_run(tmp_path, sig):
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", str(ROOT / "suites" / "security"), "--mesh=reference",
         "--run-test=MeshCertRotationUnderLoad", f"--report-output={tmp_path}", "-p", "no:cacheprovider", "-q"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: len(_owned_by(run.pid)) >= SECURITY_PROCESSES, UP_DEADLINE_S,
                  f"{SECURITY_PROCESSES} mesh processes of pytest {run.pid}")
        run.send_signal(sig)
        run.wait(timeout=GONE_DEADLINE_S)
        _wait_for(lambda: not _owned_by(run.pid), GONE_DEADLINE_S, "the mesh processes to exit")
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert _owned_by(run.pid) == []
