"""reset_peer: the connection is reset (TCP RST to both sides) ``after_s`` seconds after it opened, or,
as Toxiproxy's reset_peer does, ``after_s`` seconds after the first data on the toxic's stream."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from harness.faults import Chunk, Link, Send


@dataclass(frozen=True)
class ResetPeer:
    """Reset each connection ``after_s`` seconds after the toxic met it (connection open, or the
    moment the toxic was added for connections already open); data flows normally until then.

    ``on_data=True`` is Toxiproxy's meaning (toxics/reset_peer.go): nothing happens to an idle
    connection; the first chunk on the toxic's stream starts the timer, is dropped with whatever
    follows it, and the connection is reset ``after_s`` later."""

    after_s: float = 0.0
    on_data: bool = False

    def __post_init__(self) -> None:
        if self.after_s < 0:
            raise ValueError("after_s is non-negative seconds")

    async def pipe(self, chunk: Chunk, send: Send, link: Link) -> None:
        if not self.on_data:
            await send(chunk)
            return
        await asyncio.sleep(self.after_s)  # holds this stream: later chunks wait behind it, then go too
        link.reset()

    async def watch(self, link: Link) -> None:
        if self.on_data:
            return
        if self.after_s:
            await asyncio.sleep(self.after_s)
        link.reset()
