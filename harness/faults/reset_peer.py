"""reset_peer: the connection is reset (TCP RST to both sides) ``after_s`` seconds after it opened."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from harness.faults import Chunk, Link, Send


@dataclass(frozen=True)
class ResetPeer:
    """Reset each connection ``after_s`` seconds after the toxic met it (connection open, or the
    moment the toxic was added for connections already open); data flows normally until then."""

    after_s: float = 0.0

    def __post_init__(self) -> None:
        if self.after_s < 0:
            raise ValueError("after_s is non-negative seconds")

    async def pipe(self, chunk: Chunk, send: Send, link: Link) -> None:
        await send(chunk)

    async def watch(self, link: Link) -> None:
        if self.after_s:
            await asyncio.sleep(self.after_s)
        link.reset()
