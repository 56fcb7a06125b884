"""TCP faults for any hop: a Toxiproxy-like proxy and its toxics (SPEC §3).

A :class:`~harness.faults.proxy.FaultProxy` sits between a client and an upstream and copies bytes in
both directions: ``upstream`` (client → server) and ``downstream`` (server → client). Each direction of
each connection runs its chunks through the toxics added for that direction, in the order they were
added. A toxic is a frozen dataclass of parameters with one method, ``pipe`` (the :class:`Fault`
Protocol); a toxic that must act on a connection with no data flowing (a reset, a close) also has
``watch`` (:class:`ConnectionFault`); one that acts on a close has ``closing`` (:class:`ClosingFault`),
and an HTTP toxic answers the client itself with ``link.respond``. Toxics apply to connections already open too, and removing one
loses no data already read. "Down" is not a toxic: it is ``proxy.enabled = False``.

Adding a toxic: one file with the dataclass, and a line in :data:`TOXICS` below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Literal, Protocol, runtime_checkable

Direction = Literal["upstream", "downstream"]
DIRECTIONS: tuple[Direction, ...] = ("upstream", "downstream")


@dataclass(frozen=True)
class Chunk:
    """Bytes read from one side, with the monotonic time (s) they were read: latency counts from it."""

    data: bytes
    read_at: float


Send = Callable[[Chunk], Awaitable[None]]


class Link(Protocol):
    """What a toxic may do to the connection it is on."""

    connection_id: int
    direction: Direction

    def reset(self) -> None:
        """Abort both sides with TCP RST."""

    def close(self) -> None:
        """Close both sides with FIN."""

    def respond(self, data: bytes, close: bool) -> None:
        """Write ``data`` to the client (past the downstream toxics), then close both sides with FIN
        if ``close``: how an HTTP toxic answers a request itself."""


class Fault(Protocol):
    async def pipe(self, chunk: Chunk, send: Send, link: Link) -> None:
        """Pass ``chunk`` on by awaiting ``send`` zero or more times (drop, delay, split it)."""


@runtime_checkable
class ConnectionFault(Protocol):
    async def watch(self, link: Link) -> None:
        """Runs while the toxic is on the connection (cancelled when removed): timers that act alone."""


@runtime_checkable
class ClosingFault(Protocol):
    async def closing(self, link: Link) -> None:
        """Awaited when the stream in the toxic's direction has ended (its sender's FIN) and every
        chunk has been passed on, before the FIN is passed on: a toxic that delays or acts on a close."""


from harness.faults.bandwidth import Bandwidth  # noqa: E402  (the toxics need the types above)
from harness.faults.http_delay import HttpDelay  # noqa: E402
from harness.faults.http_status import HttpStatus  # noqa: E402
from harness.faults.latency import Latency  # noqa: E402
from harness.faults.limit_data import LimitData  # noqa: E402
from harness.faults.reset_peer import ResetPeer  # noqa: E402
from harness.faults.slicer import Slicer  # noqa: E402
from harness.faults.slow_close import SlowClose  # noqa: E402
from harness.faults.tap import Tap  # noqa: E402
from harness.faults.timeout import Timeout  # noqa: E402

TOXICS: dict[str, type] = {
    "latency": Latency,
    "bandwidth": Bandwidth,
    "reset_peer": ResetPeer,
    "timeout": Timeout,
    "slicer": Slicer,
    "limit_data": LimitData,
    "slow_close": SlowClose,
    "meshconform_http_status": HttpStatus,  # ours, HTTP/1.1-aware: upstream stream only (STREAMS)
    "meshconform_http_delay": HttpDelay,  # ours, HTTP/1.1-aware: upstream stream only (STREAMS)
}


def make_toxic(kind: str, **parameters) -> Fault:
    """A toxic from data, e.g. ``make_toxic("latency", latency_s=0.05)`` (scenario files, CLI)."""
    try:
        return TOXICS[kind](**parameters)
    except KeyError:
        raise ValueError(f"unknown toxic {kind!r}; known: {', '.join(sorted(TOXICS))}") from None


from harness.faults.proxy import FaultProxy  # noqa: E402

__all__ = ["Bandwidth", "Chunk", "ClosingFault", "ConnectionFault", "Direction", "Fault", "FaultProxy",
           "HttpDelay", "HttpStatus", "Latency", "LimitData", "Link", "ResetPeer", "Send", "Slicer",
           "SlowClose", "TOXICS", "Tap", "Timeout", "make_toxic"]
