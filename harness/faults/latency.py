"""latency: every chunk arrives ``latency_s`` ± ``jitter_s`` later than it was read."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from harness.faults import Chunk, Link, Send


@dataclass(frozen=True)
class Latency:
    """Delay each chunk by ``latency_s`` plus a uniform jitter in [-jitter_s, +jitter_s] (never below
    zero), counted from when the proxy read it, so a stream of chunks is shifted, not slowed: the added
    delay per round trip is ``latency_s`` per direction the toxic is on. Byte order is kept."""

    latency_s: float
    jitter_s: float = 0.0

    def __post_init__(self) -> None:
        if self.latency_s < 0 or self.jitter_s < 0:
            raise ValueError("latency_s and jitter_s are non-negative seconds")

    async def pipe(self, chunk: Chunk, send: Send, link: Link) -> None:
        delay = self.latency_s + (random.uniform(-self.jitter_s, self.jitter_s) if self.jitter_s else 0.0)
        wait = chunk.read_at + delay - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        await send(chunk)
