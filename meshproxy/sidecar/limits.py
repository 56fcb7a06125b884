"""Resource limits of one sidecar (SPEC §6 bad input) and the watchdog that enforces the timeouts.

Defaults: bodies up to 16 MiB (else 413), at most 100 request headers and 64 KiB of request line plus
headers (else 431), headers complete within 10 s of the first byte and no body stall over 10 s (else
408), idle keep-alive connections closed after 60 s, at most 10,000 downstream connections (admin
connections included; at most 64 of those). Upstream responses: at most 100 headers and 64 KiB of
status line plus headers, and no stall over ``body_timeout_s`` once begun (else 502).

Timeouts are not one timer per request: each connection publishes a ``deadline`` (loop time) and one
sweep per ``Watchdog.period`` calls ``on_deadline()`` on the late ones. That keeps timer handles off the
hot path; the price is a precision of one period (a quarter of the shortest timeout, at most 1 s).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields
from typing import Any, Mapping, Protocol


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 16 * 1024 * 1024
    max_headers: int = 100
    max_header_bytes: int = 64 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0
    max_connections: int = 10_000
    connect_timeout_s: float = 5.0
    pool_idle_s: float = 30.0  # below aiohttp's and nginx's 75 s keep-alive, so the pool rarely hits a stale socket
    max_connecting: int = 2  # upstream connections being opened at once per endpoint (see policy/connecting.py)
    # the admin listener (aiohttp, meshproxy/httpguard.py): its own cap, and each one also counts in
    # max_connections (one file-descriptor budget); header and body timeouts as above
    admin_max_connections: int = 64
    # an upstream's response (the app's, or a peer sidecar's): more headers or bytes of status line and
    # headers than this is an invalid response, answered 502 and never forwarded (http1.ClientConnection)
    max_response_headers: int = 100
    max_response_header_bytes: int = 64 * 1024

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "Limits":
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data or {}) - set(known))
        if unknown:
            raise ValueError(f"bootstrap limits: unknown keys {', '.join(unknown)}")
        return cls(**{k: (int(v) if known[k] == "int" else float(v)) for k, v in (data or {}).items()})


class Watched(Protocol):
    deadline: float  # loop time; 0 disables

    def on_deadline(self) -> None: ...


class Watchdog:
    """Calls ``on_deadline()`` on every registered connection whose deadline has passed."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: Limits):
        self._loop = loop
        self.watched: set[Watched] = set()
        shortest = min(limits.header_timeout_s, limits.body_timeout_s, limits.idle_timeout_s)
        self.period = max(0.01, min(1.0, shortest / 4))
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._handle = self._loop.call_later(self.period, self._sweep)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _sweep(self) -> None:
        now = self._loop.time()
        late = [c for c in self.watched if 0 < c.deadline <= now]
        for conn in late:
            conn.deadline = 0
            conn.on_deadline()
        self._handle = self._loop.call_later(self.period, self._sweep)


class ConnectionGate:
    """Counts open downstream connections of all listeners; refuses more than ``limit``."""

    def __init__(self, limit: int):
        self.limit = limit
        self.open = 0

    def admit(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1


class LeakingGate(ConnectionGate):
    """The defect leak_connection_slots: a closed connection's slot is never freed, so once ``limit``
    connections have come and gone the listeners refuse every new one."""

    def release(self) -> None:
        pass
