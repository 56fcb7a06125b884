"""Where HTTP/1.1 requests start and end in a client→server byte stream, for the HTTP-aware toxics.

A toxic keeps one :class:`RequestTracker` per connection (``trackers[link]``) and feeds it every chunk
it sees; :meth:`RequestTracker.feed` says which request events (begin, complete) the chunk held, in
order, and whether a request was in progress before and after it. Parsing is httptools' (llhttp), never
by hand. The model is a client that sends one request at a time (no pipelining): a request then starts
at a chunk boundary, and a toxic can act on whole chunks. When the bytes stop being HTTP (a parser
error: TLS, another protocol, a toxic added in the middle of a request; or an upgrade such as WebSocket
or CONNECT), the tracker turns ``http = False`` for good and reports no events from then on.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Literal

import httptools

from harness.faults import Link

Event = Literal["begin", "complete"]
BEGIN: Event = "begin"
COMPLETE: Event = "complete"


@dataclass(frozen=True)
class Fed:
    """What one chunk held: the request events in order; whether a request was in progress before and
    after it; ``http`` False when the stream is not (or no longer) HTTP (``events`` is then empty)."""

    events: tuple[Event, ...]
    in_request_before: bool
    in_request_after: bool
    http: bool

    @property
    def begins(self) -> int:
        return self.events.count(BEGIN)


class RequestTracker:
    """An httptools request parser on one direction of one connection."""

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._events: list[Event] = []
        self.http = True
        self.in_request = False
        self.keep_alive = True   # of the last completed request: False after "Connection: close", HTTP/1.0
        self.head = False        # the last request (headers complete) was a HEAD

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._events.append(BEGIN)
        self.in_request = True

    def on_headers_complete(self) -> None:
        self.head = self._parser.get_method() == b"HEAD"

    def on_message_complete(self) -> None:
        self._events.append(COMPLETE)
        self.in_request = False
        self.keep_alive = self._parser.should_keep_alive()

    def feed(self, data: bytes) -> Fed:
        before = self.in_request
        if not self.http:
            return Fed((), before, before, False)
        self._events = []
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # WebSocket, CONNECT: what follows is not HTTP
            self.http = False
        except httptools.HttpParserError:
            self.http = False
        if not self.http:
            return Fed((), before, self.in_request, False)
        return Fed(tuple(self._events), before, self.in_request, True)


class Trackers:
    """One :class:`RequestTracker` per link (direction of a connection), forgotten with the link."""

    def __init__(self) -> None:
        self._trackers: weakref.WeakKeyDictionary[Link, RequestTracker] = weakref.WeakKeyDictionary()

    def __getitem__(self, link: Link) -> RequestTracker:
        tracker = self._trackers.get(link)
        if tracker is None:
            tracker = self._trackers[link] = RequestTracker()
        return tracker
