import random

import pytest
from fault_helpers import EchoServer

from harness.faults import FaultProxy


@pytest.fixture
def loopback_ip() -> str:
    """A random 127.A.B.x address (A never 0) so parallel runs never share a port."""
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


@pytest.fixture
async def upstream(loopback_ip):
    server = await EchoServer().start(loopback_ip)
    yield server
    await server.stop()


@pytest.fixture
async def proxy(upstream, loopback_ip):
    async with FaultProxy(listen=(loopback_ip, 0), upstream=upstream.address) as proxy:
        yield proxy
