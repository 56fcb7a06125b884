import os
import subprocess
import sys
import time

import pytest

from harness.load.cpu import CpuSample, cpu_seconds


def test_a_busy_child_accumulates_about_its_cpu_time():
    # the child spins until it has used 0.5 s of CPU (its own count), then waits to be read
    child = subprocess.Popen([sys.executable, "-c",
                              "import time,sys\nwhile time.process_time()<0.5: pass\n"
                              "print('done', flush=True)\nsys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        sample = CpuSample({"child": child.pid})
        assert child.stdout.readline().strip() == b"done"
        used = sample.elapsed()["child"]
        # 0.5 s less whatever start-up ran before the first sample (~0.05 s), plus one tick
        assert 0.4 <= used <= 0.55, used
    finally:
        child.kill()
        child.wait()


def test_an_idle_process_uses_almost_nothing():
    child = subprocess.Popen([sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == b"up"  # interpreter start-up is over
        sample = CpuSample({"idle": child.pid})
        time.sleep(0.3)  # the idle period being measured
        assert sample.elapsed()["idle"] <= 0.02
    finally:
        child.kill()
        child.wait()


def test_a_missing_process_is_a_lookup_error():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(ProcessLookupError):
        cpu_seconds(child.pid)
    assert cpu_seconds(os.getpid()) > 0
