"""Fixtures for the real-client tests: one fault service per module, a clean slate per test."""

import random

import pytest
from client_helpers import FaultService, ThreadedEcho


def _random_loopback() -> str:
    """A random 127.A.B.C address (A never 0) so parallel runs never share a port."""
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


@pytest.fixture(scope="module")
def service_ip() -> str:
    return _random_loopback()


@pytest.fixture(scope="module")
def fault_service(service_ip):
    """The real ``meshconform faults serve`` as a subprocess, for the whole module."""
    service = FaultService(service_ip).start()
    yield service
    code = service.stop()
    assert code == 0, f"faults serve exited {code} on SIGTERM (expected 0); stderr: {service.stderr()}"


@pytest.fixture
def service(fault_service):
    """The module's service with no proxy left over from an earlier test (before and after)."""
    fault_service.delete_all_proxies()
    yield fault_service
    fault_service.delete_all_proxies()


@pytest.fixture
def echo(service_ip):
    server = ThreadedEcho(service_ip)
    yield server
    server.close()
