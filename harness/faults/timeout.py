"""timeout: nothing passes; the connection is closed ``timeout_s`` later (0 = a blackhole, never closed)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from harness.faults import Chunk, Link, Send


@dataclass(frozen=True)
class Timeout:
    """Drop every chunk in this direction while the toxic is on, and close the connection (FIN, both
    sides) ``timeout_s`` seconds after the toxic met it. ``timeout_s = 0`` never closes: the hop is a
    blackhole until the toxic is removed, which is how a test makes an upstream silently hang."""

    timeout_s: float = 0.0

    def __post_init__(self) -> None:
        if self.timeout_s < 0:
            raise ValueError("timeout_s is non-negative seconds")

    async def pipe(self, chunk: Chunk, send: Send, link: Link) -> None:
        return  # dropped: Toxiproxy's timeout loses the data too

    async def watch(self, link: Link) -> None:
        if self.timeout_s > 0:
            await asyncio.sleep(self.timeout_s)
            link.close()
