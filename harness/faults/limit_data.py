"""limit_data: the connection is closed once ``bytes`` bytes have passed in the toxic's direction."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from harness.faults import Chunk, Link, Send


@dataclass(frozen=True)
class LimitData:
    """Let exactly ``bytes`` bytes through in this direction of each connection (a chunk crossing the
    limit is cut), then close the connection (FIN, both sides), as Toxiproxy's limit_data does. The
    count is per connection and starts at the first chunk this toxic sees on it, so a connection that
    was already open when the toxic was added counts from then. ``bytes = 0`` closes a connection when
    its first chunk in this direction arrives, passing nothing (an idle connection stays open)."""

    bytes: int
    _passed: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary, init=False,
                                               repr=False, compare=False)  # Link -> bytes passed

    def __post_init__(self) -> None:
        if self.bytes < 0:
            raise ValueError(f"bytes is a non-negative count, not {self.bytes!r}")

    async def pipe(self, chunk: Chunk, send: Send, link: Link) -> None:
        passed = self._passed.get(link, 0)
        data = chunk.data[:max(0, self.bytes - passed)]
        self._passed[link] = passed + len(data)
        if data:
            await send(chunk if len(data) == len(chunk.data) else Chunk(data, chunk.read_at))
        if passed + len(data) >= self.bytes:
            link.close()
