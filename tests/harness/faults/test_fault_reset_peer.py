import asyncio

from fault_helpers import read_until_end, round_trip_s, wait_until

from harness.faults import ResetPeer


async def test_reset_peer_resets_both_sides_after_its_delay(proxy, upstream):
    proxy.add(ResetPeer(after_s=0.3))
    reader, writer = await asyncio.open_connection(*proxy.address)
    assert await round_trip_s(reader, writer) < 0.1  # data flows until the reset
    _, ending, elapsed = await read_until_end(reader)
    writer.close()
    assert ending == "reset"
    assert 0.2 <= elapsed <= 0.4
    await wait_until(lambda: upstream.endings == ["reset"], what="upstream saw the reset")


async def test_reset_peer_zero_resets_at_once_and_removal_heals(proxy):
    with proxy.fault(ResetPeer()):
        reader, writer = await asyncio.open_connection(*proxy.address)
        _, ending, elapsed = await read_until_end(reader)
        writer.close()
        assert ending == "reset" and elapsed < 0.2
    reader, writer = await asyncio.open_connection(*proxy.address)
    assert await round_trip_s(reader, writer) < 0.1
    writer.close()


async def test_reset_peer_added_later_hits_open_connections(proxy):
    reader, writer = await asyncio.open_connection(*proxy.address)
    await round_trip_s(reader, writer)
    proxy.add(ResetPeer(after_s=0.1))
    _, ending, elapsed = await read_until_end(reader)
    writer.close()
    assert ending == "reset" and 0.05 <= elapsed <= 0.3


async def test_reset_peer_on_data_leaves_idle_connections_and_resets_after_the_first_data(proxy, upstream):
    proxy.add(ResetPeer(after_s=0.3, on_data=True))  # Toxiproxy's reset_peer, downstream
    reader, writer = await asyncio.open_connection(*proxy.address)
    received, ending, _ = await read_until_end(reader, timeout_s=0.5)
    assert (received, ending) == (b"", "timeout")  # idle: never reset
    writer.write(b"ping")  # the echo's answer is the first data downstream: dropped, then the reset
    received, ending, elapsed = await read_until_end(reader)
    writer.close()
    assert received == b"" and ending == "reset" and 0.25 <= elapsed <= 0.6
