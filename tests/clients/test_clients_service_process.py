"""``meshconform faults serve`` as the clients meet it: the entry point, its ready line, its exits."""

import shutil
import signal
import subprocess
import sys

import pytest
from client_helpers import FaultService, connect_error

EXIT_TIMEOUT_S = 10.0


def wait_exit(process: subprocess.Popen, timeout_s: float = EXIT_TIMEOUT_S) -> int:
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
        raise AssertionError(f"faults serve did not exit within {timeout_s} s")


@pytest.mark.skipif(shutil.which("meshconform") is None, reason="the meshconform entry point is not installed")
def test_the_entry_point_prints_its_ready_line_and_exits_0_on_sigint(service_ip):
    class EntryPoint(FaultService):
        COMMAND = ["meshconform", "faults", "serve"]

    service = EntryPoint(service_ip).start()
    try:
        assert service.call("GET", "/proxies") == (200, {})
        service.process.send_signal(signal.SIGINT)
        assert wait_exit(service.process) == 0, service.stderr()
        assert connect_error(f"{service.host}:{service.port}") == "ConnectionRefusedError"
    finally:
        service.stop()


def test_it_exits_when_its_owner_dies(service_ip):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.DEVNULL)  # an owner to kill
    service = None
    try:
        service = FaultService(service_ip, owner=owner.pid).start()
        assert service.call("GET", "/version")[0] == 200
        owner.kill()
        owner.wait(timeout=5)
        wait_exit(service.process)
        assert connect_error(f"{service.host}:{service.port}") == "ConnectionRefusedError"
    finally:
        if service is not None:
            service.stop()
        if owner.poll() is None:
            owner.kill()
            owner.wait(timeout=5)
