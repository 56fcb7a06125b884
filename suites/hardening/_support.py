"""How the hardening checks send bad input to a mesh's listeners and judge what the echo saw.

A check writes hand-made request bytes (that is the point: no client library would send them) on its
own connection to a listener: the client's outbound listener (``MeshDataPlane.outbound_address``, plain
HTTP/1.1, Host picks the destination) and the backend's inbound listener (``WorkloadInfo.inbound``) over
TLS with a client certificate the harness had the mesh CA issue for ``client`` (``MeshCertificates``).
It reads what comes back until the proxy closes or ``CLOSE_WAIT_S`` passes, and counts the answers with
httptools' response parser. Every request carries the check's key (``x-echo-key``) and a path naming its
case, so the echo's journal says exactly what of each case reached the application. After its cases a
check sends one good request on a fresh connection: the listener must still serve (answer 200 from the
echo, and the request arrives), and its arrival also bounds the wait for anything a case let through
(the journal is read once the good request, sent last, has arrived).

Deterministic: each case is one connection and a fixed byte string; no statistics, no retries, no
timing bound but the generous read deadline.
"""

from __future__ import annotations

import socket
import ssl
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Sequence

import httptools

from harness.adapters.base import MeshCertificates, MeshDataPlane
from harness.probes import client_context

from ..conftest import require

CLIENT = "client-v1-0"
BACKEND = "backend-v1-0"
SERVICE = "backend"
KEY_HEADER = "x-echo-key"
CLOSE_WAIT_S = 1.5  # a refused request's connection must be closed by then (RFC 9112 §6.3: 400 and close)
CONNECT_TIMEOUT_S = 3.0
ARRIVAL_WAIT_S = 5.0  # the good request, sent last, must arrive by then
MAX_READ_BYTES = 1 << 20
POLL_S = 0.02


@dataclass
class Exchange:
    """What one connection's bad input got back."""

    statuses: list[int] = field(default_factory=list)  # final answers (1xx left out), in order
    closed: bool = False  # the proxy closed (EOF or reset) within CLOSE_WAIT_S
    error: str | None = None  # the connection or TLS handshake failed
    unparsable: str | None = None  # the bytes after the answers were not HTTP/1.1
    raw: bytes = b""

    def describe(self) -> str:
        if self.error:
            return f"no exchange ({self.error})"
        answers = ", ".join(map(str, self.statuses)) or "no answer"
        return f"{answers}; {'closed' if self.closed else f'still open after {CLOSE_WAIT_S:.1f} s'}" + (
            f"; then not HTTP ({self.unparsable})" if self.unparsable else "")


class _Answers:
    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status >= 200:  # an interim answer (100 Continue) is not an answer
            self.statuses.append(status)


def answers_in(raw: bytes) -> tuple[list[int], str | None]:
    """The final statuses in ``raw`` (a stream of responses), and why parsing stopped early, if it did."""
    answers = _Answers()
    try:
        answers.parser.feed_data(raw)
    except httptools.HttpParserUpgrade:
        return answers.statuses, None
    except httptools.HttpParserError as exc:
        return answers.statuses, str(exc)
    return answers.statuses, None


@dataclass(frozen=True)
class Listener:
    name: str  # "outbound" or "inbound"
    address: str  # "IP:PORT"
    tls: ssl.SSLContext | None = None


def listeners(mesh, deployment, scenario) -> list[Listener]:
    """The client's outbound listener and the backend's inbound one (with a client certificate of
    ``client`` from the mesh CA, valid now)."""
    plane = require(mesh, MeshDataPlane, "send raw bytes to a workload's outbound listener")
    ca = require(mesh, MeshCertificates, "issue a client certificate for the inbound listener")
    now = datetime.now(timezone.utc)
    cert, key = ca.issue_certificate(scenario.spiffe_id("client"), not_before=now - timedelta(minutes=5),
                                     not_after=now + timedelta(hours=1))
    return [Listener("outbound", plane.outbound_address(CLIENT)),
            Listener("inbound", deployment.workloads[BACKEND].inbound, client_context(ca.bundle_path, cert, key))]


def exchange(listener: Listener, data: bytes) -> Exchange:
    """Write ``data`` on a new connection, read until the proxy closes or ``CLOSE_WAIT_S`` passes."""
    ip, port = listener.address.rsplit(":", 1)
    try:
        sock = socket.create_connection((ip, int(port)), timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:
        return Exchange(error=f"connect: {exc}", closed=True)
    try:
        if listener.tls is not None:
            try:
                sock = listener.tls.wrap_socket(sock, server_side=False)
            except (OSError, ssl.SSLError) as exc:
                return Exchange(error=f"TLS handshake: {exc}", closed=True)
        raw, closed = b"", False
        try:
            sock.sendall(data)
        except OSError:
            pass  # the proxy may refuse and close before reading it all: what it answered still counts
        deadline = time.monotonic() + CLOSE_WAIT_S
        while len(raw) < MAX_READ_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except (OSError, ssl.SSLError):
                closed = True  # reset
                break
            if not chunk:
                closed = True
                break
            raw += chunk
        statuses, unparsable = answers_in(raw)
        return Exchange(statuses, closed, None, unparsable, raw[:2000])
    finally:
        try:
            sock.close()
        except OSError:
            pass


def request(method: str, path: str, key: str, *headers: str, host: str | None = SERVICE,
            body: bytes = b"", version: str = "HTTP/1.1") -> bytes:
    """Request bytes exactly as given: ``headers`` are whole lines without CRLF."""
    lines = [f"{method} {path} {version}"] + ([f"Host: {host}"] if host is not None else [])
    lines += [f"{KEY_HEADER}: {key}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def good_request(key: str, path: str) -> bytes:
    return request("GET", path, key, "Connection: close")


def arrivals_after_good(deployment, key: str, good_path: str) -> tuple[list[dict], bool]:
    """The journal of ``key`` at the backend once the good request (sent last) arrived, or after
    ``ARRIVAL_WAIT_S`` if it never did; and whether it did."""
    echo = deployment.echo(BACKEND)
    deadline = time.monotonic() + ARRIVAL_WAIT_S
    arrivals: list[dict] = []
    since = 0
    while True:
        page, since = echo.journal_page_sync(key, since)
        arrivals += page
        if any(a["path"] == good_path for a in arrivals):
            return arrivals, True
        if time.monotonic() >= deadline:
            return arrivals, False
        time.sleep(POLL_S)  # polling the journal under a deadline


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    path: str  # the path of the case's own request (its arrivals are those with this path)
    smuggled: str | None = None  # the path of a request hidden inside it, which must never arrive
    may_arrive: bool = False  # a valid request (a limit, something to strip): refused, or forwarded once


def case_path(check: str, case: str, listener: str) -> str:
    return f"/hardening/{check}/{case}/{listener}"


def new_key() -> str:
    return uuid.uuid4().hex


def still_serves(listener: Listener, key: str, check: str) -> tuple[str, Exchange]:
    path = case_path(check, "good-afterwards", listener.name)
    return path, exchange(listener, good_request(key, path))


# -- decisions (pure) ----------------------------------------------------------------------------------

def refusal(status: int) -> bool:
    """A refusal of bad input: a 4xx, or the two 5xx RFC 9112 names for what a server does not
    implement: 501 for an unknown transfer coding (§6.1), 505 for an HTTP version (RFC 9110 §15.6.6)."""
    return 400 <= status <= 499 or status in (501, 505)


def judge_case(listener: str, case: Case, got: Exchange, arrivals: Sequence[dict], *, refuse: bool,
               must_close: bool = False, allowed: Sequence[int] = ()) -> list[str]:
    """The problems of one case. ``refuse``: the request is bad and nothing of it may arrive; otherwise
    (``may_arrive``: a valid request with something to strip, or at a limit) it may be refused or
    arrive once. Always: at most one answer, never a hidden request's arrival. ``allowed``: the statuses
    a refusal may have (empty: :func:`refusal`). ``must_close``: the connection must be closed after a
    refusal (RFC 9112 §6.3 for bad framing)."""
    where = f"{listener} listener, {case.name}"
    problems: list[str] = []
    if got.error:
        return [f"{where}: {got.describe()}"]
    mine = [a for a in arrivals if a["path"] == case.path]
    hidden = [a for a in arrivals if case.smuggled and a["path"] == case.smuggled]
    if hidden:
        problems.append(f"{where}: a request hidden in it ({case.smuggled}) arrived at the app as a "
                        f"request of its own ({len(mine)} + {len(hidden)} arrivals from one request)")
    if len(got.statuses) > 1:
        problems.append(f"{where}: {len(got.statuses)} answers to one request ({got.describe()})")
    if refuse and not case.may_arrive:
        if mine:
            heads = sorted({f"{a['method']} {a['path']}" for a in mine})
            problems.append(f"{where}: it was forwarded ({len(mine)} arrivals at the app: {heads}) instead of refused")
        status = got.statuses[0] if got.statuses else None
        if status is None:
            problems.append(f"{where}: no answer (want a clear refusal; {got.describe()})")
        elif allowed and status not in allowed:
            problems.append(f"{where}: answered {status}, want {' or '.join(map(str, allowed))}")
        elif not allowed and not refusal(status):
            problems.append(f"{where}: answered {status}, want a 4xx refusal (or 501/505)")
        if must_close and not got.closed:
            problems.append(f"{where}: the connection stayed open after the refusal ({got.describe()})")
    elif len(mine) > 1:
        problems.append(f"{where}: {len(mine)} arrivals at the app from one request")
    elif not mine and got.statuses and not refusal(got.statuses[0]) and got.statuses[0] != 200:
        problems.append(f"{where}: answered {got.statuses[0]} and not forwarded (want a refusal or the app's answer)")
    for a in mine:
        h = a["headers"]
        if "content-length" in h and "transfer-encoding" in h:
            problems.append(f"{where}: it arrived with both Content-Length and Transfer-Encoding")
    return problems


def judge_good(listener: str, got: Exchange, arrived: bool) -> list[str]:
    if got.statuses[:1] == [200] and arrived:
        return []
    return [f"{listener} listener stopped serving: a good request afterwards got {got.describe()}"
            f"{'' if arrived else ' and never arrived at the app'}"]
