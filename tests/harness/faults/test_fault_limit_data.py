import asyncio
import os

import pytest
from fault_helpers import read_until_end, round_trip_s, wait_until

from harness.faults import LimitData


async def test_limit_data_passes_exactly_n_bytes_then_closes_both_sides(proxy, upstream):
    proxy.add(LimitData(1000), "upstream")
    reader, writer = await asyncio.open_connection(*proxy.address)
    payload = os.urandom(1200)
    for offset in (0, 400, 800):  # three chunks: the third crosses the limit and is cut
        writer.write(payload[offset:offset + 400])
        if offset < 800:
            await wait_until(lambda: len(upstream.received) == offset + 400, what="chunk at the upstream")
    received, ending, _ = await read_until_end(reader)
    writer.close()
    assert ending == "eof"
    await wait_until(lambda: upstream.endings == ["eof"], what="FIN at the upstream")
    assert bytes(upstream.received) == payload[:1000]
    assert payload[:1000].startswith(received)  # what the echo managed to return before the close


async def test_limit_data_downstream_cuts_a_reply_at_the_limit(proxy):
    proxy.add(LimitData(3000))
    reader, writer = await asyncio.open_connection(*proxy.address)
    payload = os.urandom(100_000)
    writer.write(payload)
    received, ending, _ = await read_until_end(reader)
    writer.close()
    assert received == payload[:3000] and ending == "eof"


async def test_limit_data_counts_per_connection_from_when_it_was_added(proxy):
    a = await asyncio.open_connection(*proxy.address)
    await round_trip_s(*a, os.urandom(5000))  # before the toxic: not counted
    proxy.add(LimitData(100))
    b = await asyncio.open_connection(*proxy.address)
    for reader, writer in (a, b):
        await round_trip_s(reader, writer, b"x" * 80)  # 80 each: a shared count would have cut b
    for reader, writer in (a, b):
        writer.write(b"y" * 50)
        received, ending, _ = await read_until_end(reader)
        writer.close()
        assert received == b"y" * 20 and ending == "eof"


async def test_limit_data_zero_closes_at_the_first_byte(proxy, upstream):
    proxy.add(LimitData(0), "upstream")
    reader, writer = await asyncio.open_connection(*proxy.address)
    writer.write(b"nothing passes")
    received, ending, _ = await read_until_end(reader)
    writer.close()
    assert received == b"" and ending == "eof"
    await wait_until(lambda: upstream.endings == ["eof"], what="FIN at the upstream")
    assert upstream.received == b""


def test_limit_data_refuses_a_negative_count():
    with pytest.raises(ValueError, match="bytes"):
        LimitData(-1)
