"""meshconform_http_status: the proxy answers HTTP/1.1 requests itself with ``status`` (e.g. 503).

Toxiproxy users ask for it (HTTP status faults, failing the first N requests); the proxy stays a TCP
proxy, and this toxic on the client→server stream reads where requests start with httptools.
"""

from __future__ import annotations

import http
import random
import weakref
from dataclasses import dataclass, field
from typing import ClassVar

from harness.faults import Chunk, Direction, Link, Send
from harness.faults.http_requests import RequestTracker

FAULT_HEADER = "x-meshconform-fault"


class FaultChoice:
    """Which requests get the fault, in the order they begin (over every connection): with
    ``first > 0`` exactly the first ``first`` ones (``share`` is ignored); otherwise each one with
    probability ``share``, from one ``rng.random()`` draw per request, so a seeded rng fixes the whole
    sequence. Pure given the rng: no clock, no I/O."""

    def __init__(self, first: int, share: float, rng: random.Random) -> None:
        self.first, self.share, self.rng = first, share, rng
        self.decided = 0

    def decide(self) -> bool:
        index, self.decided = self.decided, self.decided + 1
        if self.first > 0:
            return index < self.first
        return self.rng.random() < self.share


def answer(status: int, *, head: bool = False, close: bool = False) -> bytes:
    """The proxy's own response: a short text body with Content-Length (no body for 1xx, 204, 304 or
    a HEAD request), the ``x-meshconform-fault: http_status`` header, and ``Connection: close`` when
    the proxy closes the connection after it."""
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Fault"
    body = f"meshconform fault: http_status {status}\n".encode()
    lines = [f"HTTP/1.1 {status} {reason}", f"{FAULT_HEADER}: http_status",
             f"connection: {'close' if close else 'keep-alive'}"]
    if status < 200 or status in (204, 304):
        body = b""
    else:
        lines += ["content-type: text/plain; charset=utf-8", f"content-length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body)


@dataclass
class _Connection:
    """One connection's client→server stream, as this toxic sees it."""

    tracker: RequestTracker = field(default_factory=RequestTracker)
    dropping: bool = False   # the request in progress is faulted: its chunks are dropped
    closing: bool = False    # a fault met pipelining: drop all, answer with Connection: close, close
    closed: bool = False     # answered with close: nothing more to do


@dataclass(frozen=True)
class HttpStatus:
    """Answer chosen HTTP/1.1 requests with ``status`` from the proxy itself: the request never
    reaches the upstream. Which ones: with ``first > 0`` exactly the first ``first`` requests counted
    over all connections of this toxic (one instance per ``add``), later ones pass; with ``first = 0``
    each request with probability ``share`` (``random.Random(seed)``: a seed makes it repeatable).

    It acts on the client→server stream only (``STREAMS``), a chunk at a time, for clients that send
    one request at a time (no pipelining) so that a request starts at a chunk boundary: a faulted
    request's chunks are dropped, and when it is complete the proxy writes the answer to the client and
    keeps the connection alive (the upstream never saw the request, so both stay in step) unless the
    request asked for ``Connection: close`` (or was HTTP/1.0 without keep-alive).

    Pipelining: if a faulted request shares a chunk with another request's bytes (it began behind
    another one, or more requests follow it in the chunk), the chunk can be neither forwarded nor cut,
    so that chunk and everything after it is dropped, and at the first chunk end with no request in
    progress the proxy answers with ``Connection: close`` and closes the connection: the client's
    outstanding requests on that connection fail (it reads the answer as the reply to its oldest
    outstanding request; an upstream reply already on its way may arrive before it), and the upstream
    may have seen the start of the request ahead of the faulted one, never the faulted one.

    Bytes that are not HTTP (a parser error: TLS, another protocol, a toxic added in the middle of a
    request; or after an upgrade such as WebSocket or CONNECT, whose request passes) pass unchanged on
    that connection from then on and are never faulted; a faulted request whose rest fails to parse
    closes the connection (FIN) instead of being answered."""

    STREAMS: ClassVar[tuple[Direction, ...]] = ("upstream",)

    status: int = 503
    first: int = 0
    share: float = 1.0
    seed: int | None = None
    _choice: FaultChoice = field(init=False, repr=False, compare=False)
    _connections: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary, init=False,
                                                    repr=False, compare=False)  # Link -> _Connection

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"status is an HTTP status code in 100..599, not {self.status!r}")
        if not self.first >= 0:
            raise ValueError(f"first is a non-negative count of requests, not {self.first!r}")
        if not 0.0 <= self.share <= 1.0:  # also refuses NaN
            raise ValueError(f"share is a fraction of requests in 0..1, not {self.share!r}")
        object.__setattr__(self, "_choice", FaultChoice(self.first, self.share, random.Random(self.seed)))

    async def pipe(self, chunk: Chunk, send: Send, link: Link) -> None:
        state = self._connections.get(link)
        if state is None:
            state = self._connections[link] = _Connection()
        if state.closed:
            return
        fed = state.tracker.feed(chunk.data)
        if not fed.http:
            if state.dropping or state.closing:  # the faulted request is not HTTP after all
                state.closed = True
                link.close()
            else:
                await send(chunk)
            return
        faulted = [state.dropping] if fed.in_request_before else []
        if not state.closing:
            faulted += [self._choice.decide() for _ in range(fed.begins)]
        if not state.closing and not any(faulted):
            await send(chunk)
            return
        # the chunk is dropped: it holds (part of) a faulted request
        state.closing = state.closing or len(faulted) > 1
        state.dropping = fed.in_request_after
        if not fed.in_request_after:
            close = state.closing or not state.tracker.keep_alive
            state.closed = close
            link.respond(answer(self.status, head=state.tracker.head, close=close), close)
