"""Connections held open on purpose, and when the proxy closes them: the timed half of the hardening checks.

A ``Held`` connection has sent its first bytes and then either says nothing more or trickles one byte
every ``TRICKLE_S`` (slowloris). ``watch`` drives any number of them from one thread: it writes the
trickles when due, reads whatever comes back, and notes when the proxy closed each (EOF or reset),
until all are closed or ``bound_s`` has passed since the first one started. Waiting is ``select`` on
the sockets with a short timeout under that deadline, never a sleep. A ``flood`` is ``count`` plain TCP
connections that send nothing at all.

Bounds (stated by the checks that use them) are generous on purpose: a busy 2-core machine must not
turn a working proxy into a failure. ``SLOW_BOUND_S`` is three times the reference mesh's 10 s header
and body timeouts; ``GOOD_BOUND_S`` is how long a good request may take while the listener is under
such load (the reference answers in milliseconds).
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from dataclasses import dataclass, field

from ._support import CONNECT_TIMEOUT_S, Exchange, Listener, answers_in, exchange

SLOW_BOUND_S = 30.0  # a slow or silent client must be closed within this of its first byte
GOOD_BOUND_S = 5.0  # a good request on another connection meanwhile is answered within this
TRICKLE_S = 0.5  # slowloris: one byte this often
SELECT_S = 0.05
MAX_KEEP = 64 * 1024  # bytes of answer kept per held connection


@dataclass
class Held:
    """One connection held open by the client; ``closed_after`` is set when the proxy closed it."""

    name: str
    listener: str
    path: str = ""  # the path of its request, if it has one (its arrivals at the app are those)
    trickle: bytes = b""  # sent one byte at a time, every TRICKLE_S; empty: silent after the first bytes
    idle_body: bool = False  # its head is complete, its declared body is not
    sock: socket.socket | None = None
    started: float = 0.0
    closed_after: float | None = None  # seconds from the first byte to the proxy's close
    error: str | None = None
    raw: bytes = b""
    _next: float = 0.0
    _sent: int = field(default=0, repr=False)

    def statuses(self) -> list[int]:
        return answers_in(self.raw)[0]

    def describe(self) -> str:
        if self.error:
            return f"no exchange ({self.error})"
        answers = ", ".join(map(str, self.statuses())) or "no answer"
        closed = (f"closed after {self.closed_after:.1f} s" if self.closed_after is not None
                  else f"still open after {SLOW_BOUND_S:.0f} s")
        return f"{answers}; {closed}"


def connect(listener: Listener, timeout: float = CONNECT_TIMEOUT_S) -> socket.socket:
    """A connection to ``listener`` (TLS with the harness's client certificate on the inbound)."""
    ip, port = listener.address.rsplit(":", 1)
    sock = socket.create_connection((ip, int(port)), timeout=timeout)
    if listener.tls is not None:
        try:
            sock = listener.tls.wrap_socket(sock, server_side=False)
        except BaseException:
            sock.close()
            raise
    return sock


def start(held: Held, listener: Listener, first: bytes) -> Held:
    """Open ``held``'s connection and send its first bytes; a failure is recorded, not raised."""
    try:
        held.sock = connect(listener)
        held.sock.sendall(first)
    except (OSError, ssl.SSLError) as exc:
        held.error = f"connect or first write: {exc}"
        held.closed_after = 0.0
        return held
    held.started = held._next = time.monotonic()
    held.sock.setblocking(False)
    return held


def _read(held: Held, now: float) -> None:
    while True:
        try:
            chunk = held.sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except (OSError, ssl.SSLError):
            chunk = b""  # reset: closed by the proxy
        if not chunk:
            held.closed_after = now - held.started
            return
        if len(held.raw) < MAX_KEEP:
            held.raw += chunk[:MAX_KEEP - len(held.raw)]


def _trickle(held: Held, now: float) -> None:
    if held._sent >= len(held.trickle) or now < held._next:
        return
    try:
        held.sock.send(held.trickle[held._sent:held._sent + 1])
        held._sent += 1
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        pass
    except (OSError, ssl.SSLError):
        held.closed_after = now - held.started  # the proxy closed (our write hit the reset)
    held._next = now + TRICKLE_S


def watch(helds: list[Held], bound_s: float = SLOW_BOUND_S) -> None:
    """Drive ``helds`` until the proxy has closed every one or ``bound_s`` passed since the first started;
    then close what is left (their ``closed_after`` stays None)."""
    live = [h for h in helds if h.sock is not None and h.closed_after is None]
    if live:
        deadline = min(h.started for h in live) + bound_s
        while live:
            now = time.monotonic()
            if now >= deadline:
                break
            for h in live:
                _trickle(h, now)
                if h.closed_after is None:
                    _read(h, now)
            live = [h for h in live if h.closed_after is None]
            if live:
                # wait for an answer, a close, or the next trickle, whichever comes first (under the deadline)
                wake = min([h._next for h in live if h._sent < len(h.trickle)] + [now + SELECT_S])
                pending = [h for h in live if isinstance(h.sock, ssl.SSLSocket) and h.sock.pending()]
                if not pending:
                    select.select([h.sock for h in live], [], [], max(0.0, min(wake, deadline) - now))
    for h in helds:
        if h.sock is not None:
            try:
                h.sock.close()
            except OSError:
                pass
            h.sock = None


def timed_exchange(listener: Listener, data: bytes) -> tuple[Exchange, float]:
    """``exchange`` and how long it took (seconds)."""
    began = time.monotonic()
    got = exchange(listener, data)
    return got, time.monotonic() - began


def flood(listener: Listener, count: int) -> tuple[list[socket.socket], list[str]]:
    """``count`` plain TCP connections to ``listener`` that send nothing (no TLS handshake either); the
    ones that connected, and why the others did not."""
    ip, port = listener.address.rsplit(":", 1)
    socks, errors = [], []
    deadline = time.monotonic() + count * 0.02 + CONNECT_TIMEOUT_S  # bounded whatever the proxy does
    for _ in range(count):
        if time.monotonic() >= deadline:
            errors.append("flood deadline passed")
            break
        try:
            socks.append(socket.create_connection((ip, int(port)), timeout=CONNECT_TIMEOUT_S))
        except OSError as exc:
            errors.append(str(exc))
    return socks, errors


def release(socks: list[socket.socket]) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
