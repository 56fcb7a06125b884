import asyncio
import time

from harness.faults import Slicer


async def test_slicer_delivers_data_in_small_spaced_pieces(proxy):
    proxy.add(Slicer(avg_size=100, delay_s=0.02), "downstream")
    reader, writer = await asyncio.open_connection(*proxy.address)
    payload = bytes(range(256)) * 4  # 1024 bytes -> 11 slices
    start = time.monotonic()
    writer.write(payload)
    pieces = []
    while sum(map(len, pieces)) < len(payload):
        pieces.append(await asyncio.wait_for(reader.read(65536), 2))
    elapsed = time.monotonic() - start
    writer.close()
    assert b"".join(pieces) == payload
    assert 8 <= len(pieces) <= 11, [len(p) for p in pieces]
    assert max(map(len, pieces)) <= 200
    assert 0.18 <= elapsed <= 0.4


async def test_slicer_with_variation_keeps_every_byte(proxy):
    proxy.add(Slicer(avg_size=50, size_variation=40), "upstream")
    reader, writer = await asyncio.open_connection(*proxy.address)
    payload = bytes(range(256)) * 40
    writer.write(payload)
    assert await asyncio.wait_for(reader.readexactly(len(payload)), 5) == payload
    writer.close()
