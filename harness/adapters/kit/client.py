"""The keep-alive HTTP/1.1 client behind every adapter's ``send()``, shared by threads: urllib3 pools.

A request is never retried by the client (``retries=False``: a retry would corrupt the arrival counts
the checks measure); a pooled connection the peer has closed is noticed before it is used (urllib3
checks an idle socket for readability before reuse) and replaced. Errors come back as an
``HttpResponse`` with ``status=None`` and one of the strings the checks read: ``"connection reset
(<cause>)"``, ``"timeout"``, ``"connection refused"``, else ``"<Class>: <message>"``.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, ReadTimeoutError

from harness.adapters.base import HttpRequest, HttpResponse


class KeepAliveClient:
    """One urllib3 connection pool per address; ``send()`` one request, ``close()`` every pool."""

    MAX_IDLE_PER_ADDRESS = 64  # the suites send at most 64 requests at once (one thread each)

    def __init__(self):
        self._pools: dict[str, urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def send(self, address: str, request: HttpRequest) -> HttpResponse:
        headers = dict(request.headers)
        if request.host is not None:
            headers["Host"] = request.host
        pool = self._pool(address)
        timeout = urllib3.Timeout(connect=request.timeout_s, read=request.timeout_s)
        began = time.perf_counter()
        try:
            response = pool.urlopen(request.method, request.path, body=request.body or None, headers=headers,
                                    retries=False, redirect=False, timeout=timeout, preload_content=True,
                                    assert_same_host=False)
        except (OSError, HTTPError) as exc:
            return HttpResponse(status=None, elapsed_s=time.perf_counter() - began, error=_describe(exc))
        elapsed = time.perf_counter() - began
        merged = {name.lower(): value for name, value in response.headers.itermerged()}
        return HttpResponse(status=response.status, headers=merged, body=response.data, elapsed_s=elapsed)

    def _pool(self, address: str) -> urllib3.HTTPConnectionPool:
        with self._lock:
            pool = self._pools.get(address)
            if pool is None:
                host, _, port = address.rpartition(":")
                pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=self.MAX_IDLE_PER_ADDRESS, block=False,
                                                  retries=False)
                self._pools[address] = pool
            return pool

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


def _causes(exc: BaseException):
    """The exception and what it wraps (urllib3 wraps socket errors in its own)."""
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
        stack += [e.__cause__, e.__context__]


def _describe(exc: BaseException) -> str:
    causes = list(_causes(exc))
    for e in causes:
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
    for e in causes:
        if isinstance(e, (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
            return f"connection reset ({e.__class__.__name__})"
    for e in causes:
        if isinstance(e, (ReadTimeoutError, ConnectTimeoutError, socket.timeout, TimeoutError)):
            return "timeout"
    return f"{exc.__class__.__name__}: {exc}"
