import asyncio
import os
import time

import pytest
from fault_helpers import read_until_end, wait_until

from harness.faults import Latency, SlowClose


async def _fin_delay_s(proxy, upstream, payload) -> float:
    """Send ``payload`` and a FIN; the time until the upstream saw the FIN, once every byte is there."""
    endings = len(upstream.endings)
    reader, writer = await asyncio.open_connection(*proxy.address)
    writer.write(payload)
    writer.write_eof()
    start = time.monotonic()
    await wait_until(lambda: len(upstream.endings) > endings, what="FIN at the upstream")
    elapsed = time.monotonic() - start
    received, ending, _ = await read_until_end(reader)  # the echo, then its own FIN
    writer.close()
    assert received == payload and ending == "eof"
    return elapsed


async def test_slow_close_passes_the_fin_later_and_loses_nothing(proxy, upstream):
    assert await _fin_delay_s(proxy, upstream, b"quick") < 0.1  # baseline
    upstream.received.clear()
    proxy.add(Latency(0.05), "upstream")  # chunks still held by an earlier toxic go first
    proxy.add(SlowClose(0.3), "upstream")
    payload = os.urandom(2_000_000)
    assert 0.3 <= await _fin_delay_s(proxy, upstream, payload) <= 0.8
    assert upstream.endings[-1] == "eof" and bytes(upstream.received) == payload


async def test_slow_close_sends_data_at_once_and_only_delays_the_fin(proxy, upstream):
    proxy.add(SlowClose(0.4), "upstream")
    reader, writer = await asyncio.open_connection(*proxy.address)
    writer.write(b"now")
    start = time.monotonic()
    await wait_until(lambda: upstream.received == b"now", what="data at the upstream")
    assert time.monotonic() - start < 0.1  # data is not delayed
    writer.write_eof()
    start = time.monotonic()
    await wait_until(lambda: upstream.endings == ["eof"], what="FIN at the upstream")
    assert time.monotonic() - start >= 0.4
    writer.close()


async def test_slow_close_downstream_delays_the_servers_fin(proxy):
    proxy.add(SlowClose(0.3))
    reader, writer = await asyncio.open_connection(*proxy.address)
    writer.write(b"echo me")
    writer.write_eof()  # the echo upstream closes right after its echo
    received, ending, elapsed = await read_until_end(reader)
    writer.close()
    assert received == b"echo me" and ending == "eof" and 0.3 <= elapsed <= 0.6


def test_slow_close_refuses_a_negative_delay():
    with pytest.raises(ValueError):
        SlowClose(-1)
