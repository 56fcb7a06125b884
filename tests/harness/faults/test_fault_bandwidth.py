import asyncio
import time

import pytest

from harness.faults import Bandwidth


async def _transfer_s(address, size):
    reader, writer = await asyncio.open_connection(*address)
    start = time.monotonic()
    writer.write(b"b" * size)
    received = await reader.readexactly(size)
    elapsed = time.monotonic() - start
    writer.close()
    return elapsed, received


async def test_bandwidth_limits_the_rate(proxy):
    proxy.add(Bandwidth(100_000), "upstream")
    elapsed, received = await _transfer_s(proxy.address, 200_000)
    assert received == b"b" * 200_000
    assert 1.7 <= elapsed <= 2.3, elapsed


async def test_without_the_toxic_the_same_transfer_is_fast(proxy):
    with proxy.fault(Bandwidth(100_000), "downstream"):
        pass
    elapsed, _ = await _transfer_s(proxy.address, 200_000)
    assert elapsed < 0.2


def test_bandwidth_must_be_positive():
    with pytest.raises(ValueError):
        Bandwidth(0)
