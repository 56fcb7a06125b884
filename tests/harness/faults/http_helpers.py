"""Helpers for the HTTP-aware toxics' tests: an aiohttp upstream that records what reached it, and a
raw HTTP/1.1 client that sends one request per write (or a body in several) and reads responses with
httptools, so a test controls exactly which bytes form a chunk."""

import asyncio

import httptools
from aiohttp import web


class HttpUpstream:
    """An aiohttp server answering ``200 upstream <path>``; remembers (path, body, client port) of
    every request that reached it (the client port tells one proxy→upstream connection from another)."""

    def __init__(self):
        self.requests: list[tuple[str, bytes, int]] = []
        self.runner = None

    async def start(self, ip):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, ip, 0)
        await site.start()
        self.address = self.runner.addresses[0][:2]
        return self

    async def _handle(self, request):
        body = await request.read()
        self.requests.append((request.path, body, request.transport.get_extra_info("peername")[1]))
        return web.Response(text=f"upstream {request.path}")

    @property
    def paths(self) -> list[str]:
        return [path for path, _, _ in self.requests]

    async def stop(self):
        await self.runner.cleanup()


class Response:
    def __init__(self):
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.keep_alive = True


class HttpClient:
    """One client connection; ``request`` writes a request, ``response`` reads the next response."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self._parser = httptools.HttpResponseParser(self)
        self._current = Response()
        self._done: list[Response] = []

    @classmethod
    async def connect(cls, address):
        return cls(*await asyncio.open_connection(*address))

    # httptools callbacks
    def on_header(self, name, value):
        self._current.headers[name.decode().lower()] = value.decode()

    def on_body(self, body):
        self._current.body += body

    def on_message_complete(self):
        self._current.status = self._parser.get_status_code()
        self._current.keep_alive = self._parser.should_keep_alive()
        self._done.append(self._current)
        self._current = Response()

    @staticmethod
    def head(path, method="GET", headers=(), body_length=None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", "Host: upstream"] + list(headers)
        if body_length is not None:
            lines.append(f"Content-Length: {body_length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def get(self, path, headers=(), timeout_s=3.0) -> Response:
        self.writer.write(self.head(path, headers=headers))
        return await self.response(timeout_s)

    async def response(self, timeout_s=3.0) -> Response:
        async with asyncio.timeout(timeout_s):
            while not self._done:
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError("the connection ended before a complete response")
                self._parser.feed_data(data)
        return self._done.pop(0)

    async def at_eof(self, timeout_s=3.0) -> bool:
        """True if the connection ends (EOF) with no more bytes within ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            return await self.reader.read(65536) == b""

    def close(self):
        self.writer.close()
