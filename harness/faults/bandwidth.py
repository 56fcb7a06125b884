"""bandwidth: at most ``rate_bytes_per_s`` pass, paced in 10 ms slices."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from harness.faults import Chunk, Link, Send

_SLICE_S = 0.01  # pacing granularity: fine enough that a 100 KB/s transfer looks smooth


@dataclass(frozen=True)
class Bandwidth:
    """Limit one direction to ``rate_bytes_per_s``: each chunk goes out in slices of 10 ms worth of
    bytes, each slice when the schedule (start + bytes sent / rate) allows. The proxy reads at most
    8 × 64 KiB ahead, so the sender is slowed by TCP backpressure rather than buffered without bound."""

    rate_bytes_per_s: float

    def __post_init__(self) -> None:
        if self.rate_bytes_per_s <= 0:
            raise ValueError("rate_bytes_per_s must be positive")

    async def pipe(self, chunk: Chunk, send: Send, link: Link) -> None:
        slice_size = max(1, int(self.rate_bytes_per_s * _SLICE_S))
        start, sent, data = time.monotonic(), 0, chunk.data
        for offset in range(0, len(data), slice_size):
            piece = data[offset:offset + slice_size]
            await send(Chunk(piece, chunk.read_at))
            sent += len(piece)
            wait = start + sent / self.rate_bytes_per_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
