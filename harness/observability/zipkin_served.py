"""One Zipkin collector on a loopback address, served by a thread with its own event loop, and a small
synchronous client of its read API (what the checks use, so they read spans as a user would).

    with ZipkinCollector.start("127.0.0.1:0") as zipkin:   # port 0: any free port
        scenario.telemetry.tracing.zipkin = zipkin.address
        ...
        spans = zipkin.client().wait_trace(trace_id, spans=2, timeout=5)

``stop()`` closes the listener and joins the thread (idempotent): nothing is left behind.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from aiohttp import web

from harness.observability.zipkin_app import make_app
from harness.observability.zipkin_model import Span
from harness.observability.zipkin_store import SpanStore

START_TIMEOUT_S = 10.0


def parse_listen(text: str) -> tuple[str, int]:
    """``"IP:PORT"`` on loopback → (ip, port); ValueError naming what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen must be IP:PORT, got {text!r}")
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"--listen address must be an IP, got {host!r}") from None
    if not ip.is_loopback:
        raise ValueError(f"--listen address must be a loopback address (127.x.y.z or ::1), got {host}")
    return str(ip), int(port)


class ZipkinCollector:
    def __init__(self, host: str, port: int, store: SpanStore | None = None):
        self._host, self._port = host, port
        self.store = store or SpanStore()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.address = ""

    @classmethod
    def start(cls, listen: str = "127.0.0.1:0", store: SpanStore | None = None) -> "ZipkinCollector":
        host, port = parse_listen(listen)
        collector = cls(host, port, store)
        collector._thread = threading.Thread(target=collector._serve, name="zipkin-collector", daemon=True)
        collector._thread.start()
        if not collector._ready.wait(START_TIMEOUT_S):
            collector.stop()
            raise RuntimeError(f"the Zipkin collector did not start on {listen} within {START_TIMEOUT_S:g} s")
        if collector._error is not None:
            collector.stop()
            raise RuntimeError(f"the Zipkin collector could not listen on {listen}: {collector._error}")
        return collector

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._open())
        except BaseException as e:  # noqa: BLE001 - reported to start()
            self._error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    async def _open(self) -> None:
        self._runner = web.AppRunner(make_app(self.store), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=False)
        await site.start()
        host, port = site._server.sockets[0].getsockname()[:2]
        self.address = f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def client(self) -> "ZipkinClient":
        return ZipkinClient(self.url)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10.0)
        self._thread = None

    def __enter__(self) -> "ZipkinCollector":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass(frozen=True)
class ZipkinClient:
    """Zipkin's read API, synchronously (any Zipkin v2 server, this collector or a real one)."""

    base_url: str
    timeout_s: float = 5.0

    def _get(self, path: str) -> object | None:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise RuntimeError(f"Zipkin {path} answered {e.code}: {e.read()[:300]!r}") from None

    def services(self) -> list[str]:
        return self._get("/api/v2/services") or []

    def trace(self, trace_id: str) -> list[Span]:
        spans = self._get(f"/api/v2/trace/{trace_id}") or []
        return [Span.model_validate_json(json.dumps(s)) for s in spans]

    def dependencies(self) -> list[dict]:
        return self._get(f"/api/v2/dependencies?endTs={int(time.time() * 1000) + 60_000}") or []

    def wait_trace(self, trace_id: str, *, spans: int, timeout: float, poll_s: float = 0.05) -> list[Span]:
        """The trace once it has at least ``spans`` spans (spans arrive batched, ≤ 0.2 s late), or what
        it has at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.trace(trace_id)
            if len(got) >= spans or time.monotonic() >= deadline:
                return got
            time.sleep(poll_s)  # polling pace of an observable (the collector's trace), bounded by the deadline
