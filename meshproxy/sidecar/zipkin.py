"""Reports spans to a Zipkin v2 collector: ``POST http://<zipkin>/api/v2/spans`` with a JSON array.

Thin I/O off the request path: ``report`` appends to a bounded queue (over ``MAX_QUEUE`` the span is
dropped and counted) and wakes one sender task, which POSTs batches of at most ``BATCH`` spans, at
least every ``FLUSH_S`` while spans wait, one POST at a time, each cut after ``POST_TIMEOUT_S``. A
collector that is down, refuses or hangs costs spans (``spans_failed``/``spans_dropped``), never a
request's latency. ``target`` is the collector's ``IP:PORT`` of the current configuration.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Any

import aiohttp

from meshproxy.sidecar.metrics import Metrics

log = logging.getLogger(__name__)

MAX_QUEUE = 4096
BATCH = 100
FLUSH_S = 0.2
POST_TIMEOUT_S = 2.0
CLOSE_FLUSH_S = 1.0


class ZipkinReporter:
    def __init__(self, metrics: Metrics, loop: asyncio.AbstractEventLoop, *, max_queue: int = MAX_QUEUE,
                 batch: int = BATCH, flush_s: float = FLUSH_S, post_timeout_s: float = POST_TIMEOUT_S):
        self._metrics = metrics
        self._loop = loop
        self._max_queue, self._batch, self._flush_s, self._post_timeout_s = max_queue, batch, flush_s, post_timeout_s
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def report(self, target: str, span: dict[str, Any]) -> None:
        if self._closed or len(self._queue) >= self._max_queue:
            self._metrics.spans_dropped += 1
            return
        self._queue.append((target, span))
        if self._task is None:
            self._task = self._loop.create_task(self._run())
        if len(self._queue) >= self._batch:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            if len(self._queue) < self._batch:
                try:
                    await asyncio.wait_for(self._wake.wait(), self._flush_s)
                except asyncio.TimeoutError:
                    pass
            self._wake.clear()
            await self._send_all()

    async def _send_all(self) -> None:
        while self._queue:
            target = self._queue[0][0]
            batch = []
            while self._queue and len(batch) < self._batch and self._queue[0][0] == target:
                batch.append(self._queue.popleft()[1])
            await self._post(target, batch)

    async def _post(self, target: str, batch: list[dict[str, Any]]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._post_timeout_s))
        try:
            async with self._session.post(f"http://{target}/api/v2/spans", data=json.dumps(batch),
                                          headers={"Content-Type": "application/json"}) as response:
                await response.read()
                ok = response.status < 300
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            log.debug("zipkin %s: %r", target, exc)
            ok = False
        if ok:
            self._metrics.spans_reported += len(batch)
        else:
            self._metrics.spans_failed += len(batch)

    async def close(self) -> None:
        """Send what is queued (for at most CLOSE_FLUSH_S), then stop."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await asyncio.wait_for(self._send_all(), CLOSE_FLUSH_S)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        self._metrics.spans_dropped += len(self._queue)
        self._queue.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
