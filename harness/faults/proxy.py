"""FaultProxy: a Toxiproxy-like TCP proxy on asyncio, for one hop.

    async with FaultProxy(listen=("127.3.4.50", 0), upstream=("127.3.4.11", 15006)) as proxy:
        with proxy.fault(Latency(0.05)):         # a lease: removed when the block ends
            ...
        proxy.enabled = False                    # partition: refuse new connections, drop open ones

    with FaultProxy.running_in_thread(listen, upstream) as proxy:   # for sync callers
        proxy.add(Timeout(0))                    # every method is callable from any thread

Per connection and direction one task reads (at most 8 chunks of 64 KiB ahead: backpressure), and one
pumps each chunk through the direction's toxics in the order they were added, then writes it. A FIN
from one side is passed on as a FIN (half-close); a reset from either side, or a connect failure to the
upstream, becomes an RST to the other side, so the client sees what it would see without the proxy.
Before a FIN is passed on, each ``ClosingFault`` on that direction may hold it (slow_close). A toxic may
answer the client itself (``Link.respond``: the HTTP toxics). ``toxicity`` is drawn once per toxic and
connection from the proxy's ``rng``. A direction with no toxic skips the pump: its reader writes each
chunk itself. Healing (``heal()``, leaving a lease, stopping) is idempotent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from harness.faults import DIRECTIONS, TOXICS, Chunk, ClosingFault, ConnectionFault, Direction, Fault
from harness.faults.tap import DEFAULT_LIMIT_BYTES, Tap

log = logging.getLogger(__name__)

READ_SIZE = 65536
READ_AHEAD_CHUNKS = 8
BACKLOG = 1024
_CROSS_THREAD_TIMEOUT_S = 10.0


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _kind(toxic: Fault) -> str:
    for name, cls in TOXICS.items():
        if type(toxic) is cls:
            return name
    return type(toxic).__name__.lower()


@dataclass(frozen=True)
class _Attached:
    name: str
    direction: Direction
    toxic: Fault
    toxicity: float = 1.0  # the chance that the toxic acts on a given connection (Toxiproxy's)


def _check_toxicity(toxicity: float) -> None:
    if not 0.0 <= toxicity <= 1.0:  # also refuses NaN
        raise ValueError(f"toxicity is a chance in 0..1, not {toxicity!r}")


class _Stream:
    """One direction of one connection; it is the ``Link`` its toxics see."""

    def __init__(self, connection: "_Connection", direction: Direction,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connection = connection
        self.connection_id = connection.connection_id
        self.direction = direction
        self.reader, self.writer = reader, writer
        self._pumping = False  # a chunk is between the queue and the writer

    def reset(self) -> None:
        self.connection.reset()

    def close(self) -> None:
        self.connection.close()

    def respond(self, data: bytes, close: bool) -> None:
        """Write ``data`` to the client (not through the downstream toxics); then, if ``close``, close
        both sides with FIN (the transport sends what it holds first)."""
        if self.connection.done:
            return
        self.connection.writers[0].write(data)
        if close:
            self.connection.close()

    async def run(self) -> None:
        queue: asyncio.Queue[Chunk | None] = asyncio.Queue(READ_AHEAD_CHUNKS)
        reading = asyncio.create_task(self._read(queue))
        try:
            while (chunk := await queue.get()) is not None:
                self._pumping = True
                toxics = self.connection.proxy._toxics[self.direction]  # a snapshot: tuples are replaced
                await self._send_from(toxics, 0, chunk)
                self._pumping = False
            for attached in self.connection.proxy._toxics[self.direction]:  # every chunk is out: now the FIN
                if (isinstance(attached.toxic, ClosingFault) and not self.connection.done
                        and self.connection.acts(attached)):
                    await attached.toxic.closing(self)
            if self.writer.can_write_eof() and not self.writer.is_closing():
                self.writer.write_eof()
        except (ConnectionError, OSError):
            self.connection.reset()
        except Exception:  # a broken toxic must not leave a half-open connection behind
            log.exception("toxic failed on connection %s (%s)", self.connection_id, self.direction)
            self.connection.reset()
        finally:
            reading.cancel()

    async def _read(self, queue: asyncio.Queue) -> None:
        try:
            while data := await self.reader.read(READ_SIZE):
                if not self.connection.proxy._toxics[self.direction] and not self._pumping and queue.empty():
                    # no toxic on this direction and nothing ahead of this chunk: write it now, without
                    # the hand-over to the pump task (~60 µs a round trip here); order is kept
                    self.writer.write(data)
                    await self.writer.drain()
                    continue
                await queue.put(Chunk(data, time.monotonic()))
        except (ConnectionError, OSError):
            self.connection.reset()
            return
        await queue.put(None)

    async def _send_from(self, toxics: tuple[_Attached, ...], index: int, chunk: Chunk) -> None:
        if index == len(toxics):
            self.writer.write(chunk.data)
            await self.writer.drain()
            return
        attached = toxics[index]
        if not self.connection.acts(attached):
            await self._send_from(toxics, index + 1, chunk)
            return
        await attached.toxic.pipe(chunk, functools.partial(self._send_from, toxics, index + 1), self)


class _Connection:
    def __init__(self, proxy: "FaultProxy", connection_id: int, client, server) -> None:
        self.proxy = proxy
        self.connection_id = connection_id
        self.writers = (client[1], server[1])
        self.streams = {"upstream": _Stream(self, "upstream", client[0], server[1]),
                        "downstream": _Stream(self, "downstream", server[0], client[1])}
        self._tasks: list[asyncio.Task] = []
        self._watches: dict[str, asyncio.Task] = {}
        self._acting: dict[_Attached, bool] = {}  # toxicity, drawn once per toxic and connection
        self.done = False

    async def run(self) -> None:
        for attached in self.proxy.attached():
            self.attach(attached)
        self._tasks = [asyncio.create_task(s.run()) for s in self.streams.values()]
        try:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            self.close()

    def acts(self, attached: _Attached) -> bool:
        """Whether ``attached`` acts on this connection: drawn once, when it first meets it."""
        acting = self._acting.get(attached)
        if acting is None:
            acting = self._acting[attached] = (attached.toxicity >= 1.0
                                               or self.proxy.rng.random() < attached.toxicity)
        return acting

    def attach(self, attached: _Attached) -> None:
        if isinstance(attached.toxic, ConnectionFault) and not self.done and self.acts(attached):
            self._watches[attached.name] = asyncio.create_task(
                attached.toxic.watch(self.streams[attached.direction]))

    def detach(self, name: str) -> None:
        task = self._watches.pop(name, None)
        if task is not None:
            task.cancel()
        for attached in [a for a in self._acting if a.name == name]:
            del self._acting[attached]

    def reset(self) -> None:
        if not self.done:
            for writer in self.writers:
                _abort_with_rst(writer)
        self._finish()

    def close(self) -> None:
        if not self.done:
            for writer in self.writers:
                writer.close()
        self._finish()

    def _finish(self) -> None:
        self.done = True
        current = asyncio.current_task()
        for task in [*self._tasks, *self._watches.values()]:
            if task is not current:
                task.cancel()
        self._watches.clear()


class FaultProxy:
    """A TCP proxy from ``listen`` (port 0 = any free one, see ``address``) to ``upstream``."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int], *,
                 connect_timeout_s: float = 5.0, rng: random.Random | None = None) -> None:
        self.listen = listen
        self.upstream = upstream
        self.connect_timeout_s = connect_timeout_s
        self.rng = rng or random.Random()  # draws toxicity per connection; seed it for a repeatable run
        self._toxics: dict[Direction, tuple[_Attached, ...]] = {d: () for d in DIRECTIONS}
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task] = set()
        self._server: asyncio.AbstractServer | None = None
        self._serving: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._address: tuple[str, int] | None = None
        self._enabled = True
        self._stopped = False
        self._pending_sock: socket.socket | None = None  # bound for re-enabling, not yet served
        self._next_connection_id = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def address(self) -> tuple[str, int]:
        """Where clients connect (the real port when ``listen`` asked for port 0)."""
        if self._address is None:
            raise RuntimeError("the proxy has not started")
        return self._address

    async def start(self) -> "FaultProxy":
        self._loop = asyncio.get_running_loop()
        sock = self._listening_socket(self.listen)
        self._address = sock.getsockname()[:2]
        self._server = await asyncio.start_server(self._handle, sock=sock)
        return self

    async def stop(self) -> None:
        """Heal, stop listening and drop every connection. Idempotent."""
        self._run_on_loop(self._shutdown)
        if self._serving is not None:
            with contextlib.suppress(OSError):
                await self._serving
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)

    def _shutdown(self) -> None:
        self._stopped = True
        self._clear()
        self._close_listener()
        for connection in list(self._connections):
            connection.reset()

    async def __aenter__(self) -> "FaultProxy":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    @contextlib.contextmanager
    def running_in_thread(cls, listen: tuple[str, int], upstream: tuple[str, int],
                          **options: Any) -> Iterator["FaultProxy"]:
        """Run the proxy on its own event loop in a daemon thread; every method of the proxy may be
        called from the caller's thread. Leaving the block heals and stops it."""
        proxy = cls(listen, upstream, **options)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"FaultProxy {listen}", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(_CROSS_THREAD_TIMEOUT_S)
            yield proxy
        finally:
            try:
                if proxy._loop is not None:
                    asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(_CROSS_THREAD_TIMEOUT_S)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(_CROSS_THREAD_TIMEOUT_S)
                if not thread.is_alive():
                    loop.close()

    # ------------------------------------------------------------------ toxics (callable from any thread)

    def add(self, toxic: Fault, direction: Direction = "downstream", name: str | None = None,
            toxicity: float = 1.0) -> str:
        """Put ``toxic`` on ``direction`` of every connection, open ones included; returns its name
        (default ``<kind>_<direction>``, which must be unused). ``toxicity`` is the chance that it
        acts on a connection, drawn once per connection (Toxiproxy's meaning); 1 = every one."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction is one of {DIRECTIONS}, not {direction!r}")
        _check_toxicity(toxicity)
        attached = _Attached(name or f"{_kind(toxic)}_{direction}", direction, toxic, float(toxicity))
        return self._run_on_loop(self._add, attached)

    def update(self, name: str, toxic: Fault | None = None, toxicity: float | None = None) -> None:
        """Change a toxic's parameters or toxicity in place (same direction, same place in the order);
        open connections get the new one at their next chunk, and toxicity is drawn again. KeyError
        if there is no toxic ``name``."""
        if toxicity is not None:
            _check_toxicity(toxicity)
        self._run_on_loop(self._update, name, toxic, toxicity)

    def _update(self, name: str, toxic: Fault | None, toxicity: float | None) -> None:
        old = next((a for a in self.attached() if a.name == name), None)
        if old is None:
            raise KeyError(f"no toxic named {name!r} on this proxy")
        new = _Attached(name, old.direction, toxic if toxic is not None else old.toxic,
                        old.toxicity if toxicity is None else float(toxicity))
        self._toxics[old.direction] = tuple(new if a is old else a for a in self._toxics[old.direction])
        for connection in self._connections:
            connection.detach(name)
            connection.attach(new)

    def _add(self, attached: _Attached) -> str:
        if any(a.name == attached.name for a in self.attached()):
            raise ValueError(f"a toxic named {attached.name!r} is already on this proxy")
        self._toxics[attached.direction] += (attached,)
        for connection in self._connections:
            connection.attach(attached)
        return attached.name

    def remove(self, name: str) -> bool:
        """Take a toxic off (chunks it already holds still go through). False if it was not there."""
        return self._run_on_loop(self._remove, name)

    def _remove(self, name: str) -> bool:
        found = False
        for direction in DIRECTIONS:
            kept = tuple(a for a in self._toxics[direction] if a.name != name)
            found |= len(kept) != len(self._toxics[direction])
            self._toxics[direction] = kept
        for connection in self._connections:
            connection.detach(name)
        return found

    def clear(self) -> None:
        """Remove every toxic."""
        self._run_on_loop(self._clear)

    def _clear(self) -> None:
        for attached in self.attached():
            self._remove(attached.name)

    def attached(self) -> list[_Attached]:
        return [a for d in DIRECTIONS for a in self._toxics[d]]

    def toxics(self) -> dict[str, tuple[Direction, Fault]]:
        return {a.name: (a.direction, a.toxic) for a in self.attached()}

    def toxicity(self, name: str) -> float:
        return next(a.toxicity for a in self.attached() if a.name == name)

    @contextlib.contextmanager
    def fault(self, toxic: Fault, direction: Direction = "downstream", name: str | None = None) -> Iterator[str]:
        """A lease on one toxic: added now, removed when the block ends (whatever happened)."""
        added = self.add(toxic, direction, name)
        try:
            yield added
        finally:
            self.remove(added)

    def tap(self, limit_bytes: int = DEFAULT_LIMIT_BYTES) -> Tap:
        """A new Tap on both directions (named ``tap_upstream`` / ``tap_downstream``)."""
        tap = Tap(limit_bytes)
        for direction in DIRECTIONS:
            self.add(tap, direction, f"tap_{direction}")
        return tap

    # ------------------------------------------------------------------ partition

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        """False: close the listener (new connections are refused) and reset open connections.
        True: listen again on the same address."""
        self._run_on_loop(self._set_enabled, bool(value))

    def _set_enabled(self, value: bool) -> None:
        if value == self._enabled:
            return
        self._enabled = value
        if not value:
            self._close_listener()
            for connection in list(self._connections):
                connection.reset()
        elif self._loop is not None and not self._stopped:
            # bind now, so the address accepts (into the backlog) as soon as this call returns
            self._pending_sock = self._listening_socket(self.address)
            self._serving = self._loop.create_task(self._serve(self._pending_sock))

    async def _serve(self, sock: socket.socket) -> None:
        if sock is not self._pending_sock:
            return  # disabled again before we ran: _close_listener closed it
        self._pending_sock = None
        server = await asyncio.start_server(self._handle, sock=sock)
        if self._enabled and not self._stopped and self._server is None:
            self._server = server
        else:  # disabled or stopped while the server came up
            server.close()

    def heal(self) -> None:
        """Remove every toxic and re-enable the proxy. Idempotent."""
        self._run_on_loop(self._heal)

    def _heal(self) -> None:
        self._clear()
        self._set_enabled(True)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _listening_socket(address: tuple[str, int]) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _close_listener(self) -> None:
        if self._pending_sock is not None:
            self._pending_sock.close()
            self._pending_sock = None
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._handlers.add(task)
        try:
            await self._proxy_connection(client_reader, client_writer)
        except asyncio.CancelledError:
            # stop() cancelled it (the connection is reset by then): end the task quietly, since
            # Python 3.11's start_server callback logs a cancelled handler's CancelledError as an error
            pass
        finally:
            self._handlers.discard(task)

    async def _proxy_connection(self, client_reader, client_writer) -> None:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                server = await asyncio.open_connection(*self.upstream)
        except (OSError, TimeoutError):
            _abort_with_rst(client_writer)  # the client sees a reset, as with a dead upstream
            return
        except asyncio.CancelledError:
            _abort_with_rst(client_writer)
            raise
        if not self._enabled:  # partitioned while we connected
            _abort_with_rst(client_writer)
            _abort_with_rst(server[1])
            return
        self._next_connection_id += 1
        connection = _Connection(self, self._next_connection_id, (client_reader, client_writer), server)
        self._connections.add(connection)
        try:
            await connection.run()
        except asyncio.CancelledError:
            connection.reset()
            raise
        finally:
            self._connections.discard(connection)

    def _run_on_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn`` on the proxy's loop: directly when already there (or not started), otherwise
        hand it over and wait for the result (up to 10 s)."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return fn(*args)
        try:
            if asyncio.get_running_loop() is loop:
                return fn(*args)
        except RuntimeError:
            pass
        future: concurrent.futures.Future = concurrent.futures.Future()

        def call() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the caller's thread
                future.set_exception(exc)

        loop.call_soon_threadsafe(call)
        return future.result(_CROSS_THREAD_TIMEOUT_S)
