"""One keep-alive HTTP/1.1 client connection as an asyncio Protocol, parsed by httptools.

A connection carries one request at a time (no pipelining) and reports to its owner through three
calls: ``connection_ready(conn)`` once connected and after each response it can reuse the connection
for, ``response_done(conn, status, tag)`` with the tag the request was sent with, and
``request_failed(conn, tag)`` when a request in flight gets no complete response. The owner does all
timing; this class only moves bytes.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import httptools


class ConnectionOwner(Protocol):
    def connection_ready(self, conn: "HttpConnection") -> None: ...
    def response_done(self, conn: "HttpConnection", status: int, tag: Any) -> None: ...
    def request_failed(self, conn: "HttpConnection", tag: Any) -> None: ...
    def connection_closed(self, conn: "HttpConnection") -> None: ...


class HttpConnection(asyncio.Protocol):
    def __init__(self, owner: ConnectionOwner):
        self._owner = owner
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._tag: Any = None
        self.busy = False
        self.closed = False

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._owner.connection_ready(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail_and_close()
        except httptools.HttpParserError:
            self._fail_and_close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.busy:
            self.busy = False
            self._owner.request_failed(self, self._tag)
        self._owner.connection_closed(self)

    # -- httptools callbacks -----------------------------------------------------------------------
    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        keep_alive = self._parser.should_keep_alive()
        tag, self._tag, self.busy = self._tag, None, False
        self._owner.response_done(self, status, tag)
        if not keep_alive:
            self.close()
        elif not self.closed:
            self._owner.connection_ready(self)

    # -- used by the owner -----------------------------------------------------------------------
    def send(self, request: bytes, tag: Any) -> None:
        assert not self.busy and self._transport is not None
        self.busy, self._tag = True, tag
        self._transport.write(request)

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.abort()

    def _fail_and_close(self) -> None:
        # an unparsable reply: the connection's framing is lost, so it cannot be reused
        if self.busy:
            self.busy = False
            self._owner.request_failed(self, self._tag)
        self.abort()
