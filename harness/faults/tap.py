"""tap: a recorder, not a fault. It lets a test see what crossed a hop (e.g. "is it TLS?")."""

from __future__ import annotations

import threading

from harness.faults import Chunk, Direction, Link, Send

TLS_HANDSHAKE_RECORD = 0x16
TLS_CLIENT_HELLO = 0x01
DEFAULT_LIMIT_BYTES = 1 << 20


class Tap:
    """Record the bytes of every connection, per direction, up to ``limit_bytes`` (1 MiB) in total;
    later bytes pass unrecorded and ``truncated`` turns True. Readable from any thread.

    Add it with ``proxy.tap()`` (both directions). Streams are kept per connection so a marker is never
    "found" across the boundary of two connections.
    """

    def __init__(self, limit_bytes: int = DEFAULT_LIMIT_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self.recorded_bytes = 0
        self.truncated = False
        self._streams: dict[tuple[int, Direction], bytearray] = {}
        self._lock = threading.Lock()

    async def pipe(self, chunk: Chunk, send: Send, link: Link) -> None:
        self._record(link.connection_id, link.direction, chunk.data)
        await send(chunk)

    def _record(self, connection_id: int, direction: Direction, data: bytes) -> None:
        with self._lock:
            room = self.limit_bytes - self.recorded_bytes
            if len(data) > room:
                self.truncated = True
                data = data[:room]
            if data:
                self._streams.setdefault((connection_id, direction), bytearray()).extend(data)
                self.recorded_bytes += len(data)

    def streams(self, direction: Direction | None = None) -> list[bytes]:
        """The recorded byte streams, one per connection (and direction), oldest connection first."""
        with self._lock:
            return [bytes(data) for (_, d), data in sorted(self._streams.items())
                    if direction is None or d == direction]

    def saw_tls_handshake(self) -> bool:
        """True if some client→server stream began with a TLS handshake record holding a ClientHello."""
        return any(len(s) >= 6 and s[0] == TLS_HANDSHAKE_RECORD and s[1] == 0x03 and s[5] == TLS_CLIENT_HELLO
                   for s in self.streams("upstream"))

    def all_tls(self) -> bool:
        """True if there was traffic and every client→server stream began with a ClientHello."""
        streams = self.streams("upstream")
        return bool(streams) and all(len(s) >= 6 and s[0] == TLS_HANDSHAKE_RECORD and s[5] == TLS_CLIENT_HELLO
                                     for s in streams)

    def contains(self, marker: bytes, direction: Direction | None = None) -> bool:
        return any(marker in s for s in self.streams(direction))

    def clear(self) -> None:
        with self._lock:
            self._streams.clear()
            self.recorded_bytes = 0
            self.truncated = False
