"""meshconform_http_delay: each HTTP/1.1 request is held ``delay_s`` once, where it begins."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import ClassVar

from harness.faults import Chunk, Direction, Link, Send
from harness.faults.http_requests import Trackers


@dataclass(frozen=True)
class HttpDelay:
    """Delay each request by ``delay_s`` plus a uniform jitter in [-jitter_s, +jitter_s] (never below
    zero), counted from when the proxy read the chunk where the request begins: a per-request delay,
    so a body that arrives in many chunks is delayed once, not once per chunk as with ``latency``.
    Requests are found with httptools on the client→server stream (``STREAMS``); a chunk holding the
    start of several pipelined requests is held once. A connection whose bytes are not HTTP (TLS, a
    WebSocket after its upgrade, a toxic added in the middle of a request) passes unchanged from the
    first byte that fails to parse."""

    STREAMS: ClassVar[tuple[Direction, ...]] = ("upstream",)

    delay_s: float
    jitter_s: float = 0.0
    _trackers: Trackers = field(default_factory=Trackers, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.delay_s < 0 or self.jitter_s < 0:
            raise ValueError("delay_s and jitter_s are non-negative seconds")

    async def pipe(self, chunk: Chunk, send: Send, link: Link) -> None:
        if self._trackers[link].feed(chunk.data).begins:
            delay = self.delay_s + (random.uniform(-self.jitter_s, self.jitter_s) if self.jitter_s else 0.0)
            wait = chunk.read_at + delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        await send(chunk)
