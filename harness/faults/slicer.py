"""slicer: chunks are cut into small writes with a pause after each (exercises partial reads)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from harness.faults import Chunk, Link, Send


@dataclass(frozen=True)
class Slicer:
    """Cut each chunk into slices of ``avg_size`` ± ``size_variation`` bytes (at least 1) and wait
    ``delay_s`` after each slice, so a peer sees a TLS record or an HTTP head arrive in pieces."""

    avg_size: int
    delay_s: float = 0.0
    size_variation: int = 0

    def __post_init__(self) -> None:
        if self.avg_size < 1 or self.delay_s < 0 or not 0 <= self.size_variation < self.avg_size:
            raise ValueError("avg_size >= 1, delay_s >= 0 and 0 <= size_variation < avg_size")

    async def pipe(self, chunk: Chunk, send: Send, link: Link) -> None:
        data, offset = chunk.data, 0
        while offset < len(data):
            size = self.avg_size + (random.randint(-self.size_variation, self.size_variation)
                                    if self.size_variation else 0)
            await send(Chunk(data[offset:offset + size], chunk.read_at))
            offset += size
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
