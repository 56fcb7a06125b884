"""slow_close: when one side closes (FIN), the FIN reaches the other side ``delay_s`` later."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from harness.faults import Chunk, Link, Send


@dataclass(frozen=True)
class SlowClose:
    """Data passes unchanged; when the stream in this direction ends (its sender's FIN), the FIN is
    passed on ``delay_s`` seconds later, after every chunk has been passed on (no data is lost), as
    Toxiproxy's slow_close delays the close. The other direction is untouched meanwhile (half-close);
    a reset still passes at once. A delay already running when the toxic is removed runs to its end."""

    delay_s: float

    def __post_init__(self) -> None:
        if self.delay_s < 0:
            raise ValueError("delay_s is non-negative seconds")

    async def pipe(self, chunk: Chunk, send: Send, link: Link) -> None:
        await send(chunk)

    async def closing(self, link: Link) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
