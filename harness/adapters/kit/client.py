"""The keep-alive HTTP/1.1 client behind every adapter's ``send()``, shared by threads.

A request is never retried by the client (a retry would corrupt the arrival counts the checks measure):
instead a pooled connection the peer has closed is noticed before it is used (it is readable while idle)
and replaced. The HTTP side is ``http.client`` (no hand parsing).
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time

from harness.adapters.base import HttpRequest, HttpResponse


class KeepAliveClient:
    """Keep-alive connections per address; ``send()`` one request, ``close()`` every idle connection."""

    MAX_IDLE_PER_ADDRESS = 32

    def __init__(self):
        self._idle: dict[str, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def send(self, address: str, request: HttpRequest) -> HttpResponse:
        headers = dict(request.headers)
        if request.host is not None:
            headers["Host"] = request.host
        began = time.perf_counter()
        conn = self._take(address, request.timeout_s)
        try:
            conn.request(request.method, request.path, body=request.body or None, headers=headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            return HttpResponse(status=None, elapsed_s=time.perf_counter() - began, error=_describe(exc))
        elapsed = time.perf_counter() - began
        merged: dict[str, str] = {}
        for name, value in response.getheaders():
            name = name.lower()
            merged[name] = f"{merged[name]}, {value}" if name in merged else value
        if response.will_close:
            conn.close()
        else:
            self._give_back(address, conn)
        return HttpResponse(status=response.status, headers=merged, body=body, elapsed_s=elapsed)

    def _take(self, address: str, timeout: float) -> http.client.HTTPConnection:
        with self._lock:
            idle = self._idle.get(address, [])
            while idle:
                conn = idle.pop()
                if _still_open(conn):
                    conn.sock.settimeout(timeout)
                    return conn
                conn.close()
        host, _, port = address.rpartition(":")
        return http.client.HTTPConnection(host, int(port), timeout=timeout)

    def _give_back(self, address: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(address, [])
            if len(idle) < self.MAX_IDLE_PER_ADDRESS:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            for conns in self._idle.values():
                for conn in conns:
                    conn.close()
            self._idle.clear()


def _still_open(conn: http.client.HTTPConnection) -> bool:
    """An idle keep-alive socket is readable only if the peer closed it (or sent junk): then drop it."""
    if conn.sock is None:
        return False
    readable, _, _ = select.select([conn.sock], [], [], 0)
    return not readable


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (ConnectionResetError, http.client.RemoteDisconnected)):
        return f"connection reset ({exc.__class__.__name__})"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{exc.__class__.__name__}: {exc}"
