import asyncio

from fault_helpers import read_until_end, round_trip_s

from harness.faults import Timeout


async def test_timeout_drops_data_then_closes(proxy, upstream):
    proxy.add(Timeout(0.5), "upstream")
    reader, writer = await asyncio.open_connection(*proxy.address)
    writer.write(b"never arrives")
    received, ending, elapsed = await read_until_end(reader)
    writer.close()
    assert received == b"" and ending == "eof"
    assert 0.4 <= elapsed <= 0.6
    assert b"never arrives" not in upstream.received


async def test_timeout_zero_is_a_blackhole_until_removed(proxy, upstream):
    reader, writer = await asyncio.open_connection(*proxy.address)
    await round_trip_s(reader, writer, b"before")
    with proxy.fault(Timeout(0), "upstream"):
        writer.write(b"lost")
        received, ending, _ = await read_until_end(reader, timeout_s=0.3)
        assert received == b"" and ending == "timeout"  # open, silent: a hang
    assert await round_trip_s(reader, writer, b"after") < 0.1  # same connection works again
    writer.close()
    assert bytes(upstream.received) == b"beforeafter"
