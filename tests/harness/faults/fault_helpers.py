"""Helpers for the fault proxy tests: a TCP echo upstream and round-trip timing."""

import asyncio
import statistics
import time


class EchoServer:
    """A TCP echo upstream that also remembers what it received and how each connection ended."""

    def __init__(self):
        self.received = bytearray()
        self.endings: list[str] = []
        self.server = None

    async def start(self, ip):
        self.server = await asyncio.start_server(self._echo, ip, 0)
        self.address = self.server.sockets[0].getsockname()[:2]
        return self

    async def _echo(self, reader, writer):
        try:
            while data := await reader.read(65536):
                self.received += data
                writer.write(data)
                await writer.drain()
            self.endings.append("eof")
        except ConnectionResetError:
            self.endings.append("reset")
        finally:
            writer.close()

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()


async def round_trip_s(reader, writer, payload=b"ping") -> float:
    start = time.monotonic()
    writer.write(payload)
    await reader.readexactly(len(payload))
    return time.monotonic() - start


async def round_trips_s(address, trips=20) -> list[float]:
    """``trips`` round trips of 4 bytes on one connection (after one warm-up trip)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        await round_trip_s(reader, writer)
        return [await round_trip_s(reader, writer) for _ in range(trips)]
    finally:
        writer.close()


async def mean_round_trip_s(address, trips=20) -> float:
    return statistics.mean(await round_trips_s(address, trips))


async def read_until_end(reader, timeout_s=5.0) -> tuple[bytes, str, float]:
    """Read until the stream ends; returns (bytes, "eof" | "reset" | "timeout", seconds taken)."""
    start, received = time.monotonic(), b""
    try:
        async with asyncio.timeout(timeout_s):
            while data := await reader.read(65536):
                received += data
        ending = "eof"
    except ConnectionResetError:
        ending = "reset"
    except TimeoutError:
        ending = "timeout"
    return received, ending, time.monotonic() - start


async def wait_until(condition, timeout_s=3.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met after {timeout_s} s"
        await asyncio.sleep(0.01)  # polling pace, bounded by the deadline above
