"""Faults never outlive their run: a kill -9 of a pytest that had faults in place leaves zero proxies and
zero toxics within 2 s (the service polls owners every 0.25 s), and a service started with --owner
exits within 2 s of its owner's death."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from harness.faults.cli import READY_PREFIX
from harness.faults.client import FaultServiceClient
from harness.faults.served import FaultServiceProcess

REMOVED_WITHIN_S = 2.0


def _wait_for_line(path, prefix, process, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
        assert process.poll() is None, f"exited with {process.returncode}: {path.read_text(errors='replace')}"
        time.sleep(0.02)  # polling pace of the child's output
    raise AssertionError(f"no {prefix!r} line within {timeout_s} s: {path.read_text(errors='replace')}")


def test_kill_9_of_a_pytest_with_faults_in_place_leaves_nothing(tmp_path, loopback_ip):
    with FaultServiceProcess.start(loopback_ip, log_dir=tmp_path) as served:
        client = FaultServiceClient(served.url)
        client.create_proxy("unowned", "127.0.0.1:9")  # this test's, to see the others go and it stay
        test_file = tmp_path / "test_holds_faults.py"
        test_file.write_text(textwrap.dedent(f"""
            import time
            from harness.faults.client import FaultServiceClient

            def test_holds():
                client = FaultServiceClient({served.url!r})
                with client.proxy("held", "127.0.0.1:9"):
                    with client.toxic("held", "latency", {{"latency": 100}}):
                        with client.toxic("unowned", "timeout"):
                            print("FAULTS IN PLACE", flush=True)
                            deadline = time.monotonic() + 60
                            while time.monotonic() < deadline:   # until it is killed (bounded)
                                time.sleep(0.1)  # idle pace while it waits to be killed
        """))
        out = tmp_path / "child.out"
        with open(out, "wb") as sink:
            child = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                                      str(test_file)], stdout=sink, stderr=subprocess.STDOUT, cwd=os.getcwd())
        try:
            _wait_for_line(out, "FAULTS IN PLACE", child)
            proxies = client.proxies()
            assert set(proxies) == {"unowned", "held"} and proxies["held"]["toxics"] and proxies["unowned"]["toxics"]
            os.kill(child.pid, signal.SIGKILL)
            child.wait(5)
            killed = time.monotonic()
            while True:
                proxies = client.proxies()
                if set(proxies) == {"unowned"} and not proxies["unowned"]["toxics"]:
                    break
                assert time.monotonic() - killed < REMOVED_WITHIN_S, f"left after kill -9: {proxies}"
                time.sleep(0.02)  # polling pace of the service's state
        finally:
            child.kill()
            child.wait(5)


def test_a_service_with_an_owner_exits_when_the_owner_dies(tmp_path, loopback_ip):
    owner = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:
        service = subprocess.Popen([sys.executable, "-m", "harness.cli", "faults", "serve", "--listen",
                                    f"{loopback_ip}:0", "--owner", str(owner.pid)], stdout=sink, stderr=subprocess.STDOUT)
    try:
        url = _wait_for_line(log, READY_PREFIX, service)
        assert FaultServiceClient(url).version()
        owner.kill()
        owner.wait(5)
        service.wait(REMOVED_WITHIN_S)
        assert service.returncode == 0
    finally:
        owner.kill()
        service.kill()
        service.wait(5)


def test_bad_flags_exit_2_naming_the_flag():
    for args, flag in ((["--listen", "nowhere"], "--listen"), (["--owner", "999999999"], "--owner")):
        done = subprocess.run([sys.executable, "-m", "harness.cli", "faults", "serve", *args],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and flag in done.stderr


def test_a_busy_address_exits_1_saying_so(loopback_ip):
    with FaultServiceProcess.start(loopback_ip) as served:
        port = served.url.rsplit(":", 1)[1]
        done = subprocess.run([sys.executable, "-m", "harness.cli", "faults", "serve", "--listen",
                               f"{loopback_ip}:{port}"], capture_output=True, text=True, timeout=30)
        assert done.returncode == 1 and "cannot listen" in done.stderr


def test_a_runs_service_dies_with_its_run_and_sweep_finds_nothing_left(tmp_path, loopback_ip):
    from meshruntime.processes import alive
    from meshruntime.sweep import tagged_processes

    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from harness.faults.served import FaultServiceProcess
        served = FaultServiceProcess.start({loopback_ip!r}, run_id="faults-sweep-test", log_dir={str(tmp_path)!r})
        print("SERVICE", served.process.pid, flush=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:   # until it is killed (bounded)
            time.sleep(0.1)  # idle pace while it waits to be killed
    """))
    out = tmp_path / "run.out"
    with open(out, "wb") as sink:
        run = subprocess.Popen([sys.executable, str(script)], stdout=sink, stderr=subprocess.STDOUT, cwd=os.getcwd())
    try:
        pid = int(_wait_for_line(out, "SERVICE ", run))
        assert [p.pid for p in tagged_processes("faults-sweep-test")] == [pid]
        os.kill(run.pid, signal.SIGKILL)
        run.wait(5)
        killed = time.monotonic()
        while alive(pid):
            assert time.monotonic() - killed < REMOVED_WITHIN_S, "the run's fault service outlived it"
            time.sleep(0.02)  # polling pace of the process table
        assert tagged_processes("faults-sweep-test") == []
    finally:
        run.kill()
        run.wait(5)
