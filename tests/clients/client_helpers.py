"""Helpers for driving ``meshconform faults serve`` with real Toxiproxy clients.

* :class:`FaultService`: the service as a subprocess on a loopback address, ready once it printed its
  one line (read with a deadline, never slept for); stopped with SIGTERM, killed if it lingers.
* :class:`ThreadedEcho`: a TCP echo upstream on its own threads, so blocking clients (requests, a
  ``node`` subprocess) can run in the test's thread.
* Blocking wire measurements: round-trip time, download time, how a connection ends.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

READY = re.compile(r"^meshconform faults: serving the Toxiproxy API on http://(?P<host>[0-9.]+):(?P<port>\d+)$")
START_TIMEOUT_S = 30.0  # a start takes well under a second; a busy CI machine gets a wide margin
STOP_TIMEOUT_S = 5.0
ROOT = Path(__file__).resolve().parents[2]

# loopback calls never go through a proxy from the environment
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without proxy variables (loopback only), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    env.update(extra)
    return env


class FaultService:
    """``python -m harness.cli faults serve --listen IP:0 --owner <this pid>`` until :meth:`stop`."""

    COMMAND = [sys.executable, "-m", "harness.cli", "faults", "serve"]

    def __init__(self, ip: str, owner: int | None = None):
        self.ip = ip
        self.owner = owner or os.getpid()  # the service exits when this process does
        self.process: subprocess.Popen | None = None
        self.host = ""
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "FaultService":
        self._stderr_text = None
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [*self.COMMAND, "--listen", f"{self.ip}:0", "--owner", str(self.owner)],
            stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL, cwd=ROOT, env=clean_env())
        line = self._first_line(START_TIMEOUT_S)
        match = READY.match(line)
        if not match:
            self.stop()
            raise AssertionError(f"unexpected first line from faults serve: {line!r}; stderr: {self.stderr()}")
        self.host, self.port = match["host"], int(match["port"])
        assert self.host == self.ip, f"asked for {self.ip}, the ready line says {line!r}"
        assert self.port != 0, f"port 0 must resolve to the real port in the ready line: {line!r}"
        return self

    def _first_line(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        buffer = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.process.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.stop()
                    raise AssertionError(f"faults serve printed no ready line in {timeout_s} s "
                                         f"(so far {buffer!r}); stderr: {self.stderr()}")
                if sel.select(timeout=remaining):
                    chunk = os.read(self.process.stdout.fileno(), 4096)
                    if not chunk:
                        self.process.wait(timeout=STOP_TIMEOUT_S)
                        code = self.stop()
                        raise AssertionError(f"faults serve exited ({code}) before its ready line "
                                             f"(printed {buffer!r}); stderr: {self.stderr()}")
                    buffer += chunk
        return buffer.split(b"\n", 1)[0].decode()

    def stderr(self) -> str:
        """The last 4000 characters the service wrote to stderr (kept when it stops)."""
        if self._stderr_text is not None:
            return self._stderr_text
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-4000:]

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; the exit code (None if it had to be killed)."""
        if self.process is None:
            return None
        try:
            if self.process.poll() is not None:
                return self.process.returncode
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
                return None
        finally:
            self.process.stdout.close()
            if self._stderr_text is None:
                self._stderr_text = self.stderr()
                self._stderr.close()

    # -- raw API calls, for set-up and clean-up the clients do not do themselves -------------------------
    def call(self, method: str, path: str, body=None) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with _OPENER.open(request, timeout=10) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        if not raw.strip():
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def delete_all_proxies(self) -> None:
        status, proxies = self.call("GET", "/proxies")
        assert status == 200, (status, proxies)
        for name in proxies:
            self.call("DELETE", f"/proxies/{name}")


class ThreadedEcho:
    """A TCP echo server on ``ip``: each connection echoes on its own thread until EOF."""

    def __init__(self, ip: str):
        self.sock = socket.create_server((ip, 0), backlog=128)
        self.address = self.sock.getsockname()[:2]
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._closed = threading.Event()
        self._accept = threading.Thread(target=self._accept_loop, name="echo-accept", daemon=True)
        self._accept.start()

    @property
    def hostport(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            thread = threading.Thread(target=self._echo, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not)
        except OSError:
            pass
        self.sock.close()
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._accept.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)


class ThreadedHttp:
    """An HTTP/1.1 upstream on ``ip`` answering every GET 200 ``ok`` (keep-alive), on its own threads."""

    def __init__(self, ip: str):
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((ip, 0), Handler)
        self.server.daemon_threads = True
        self.address = self.server.server_address[:2]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def hostport(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def http_get(address: str, requests: int = 1) -> list[tuple[int, str | None, float]]:
    """``requests`` GETs on one keep-alive connection: (status, x-meshconform-fault header, seconds)."""
    import http.client

    host, port = hostport(address)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    out = []
    try:
        for _ in range(requests):
            start = time.monotonic()
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            out.append((response.status, response.getheader("x-meshconform-fault"), time.monotonic() - start))
            if response.will_close:
                conn.close()
    finally:
        conn.close()
    return out


def hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def connect(address: str | tuple[str, int], timeout_s: float = 5.0) -> socket.socket:
    if isinstance(address, str):
        address = hostport(address)
    sock = socket.create_connection(address, timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"the connection ended after {len(data)} of {n} bytes")
        data += chunk
    return data


def round_trip_s(address: str, payload: bytes = b"ping", trips: int = 3) -> float:
    """The smallest of ``trips`` round trips on one connection (after a warm-up trip): the toxic's floor."""
    with connect(address) as sock:
        sock.sendall(payload)
        recv_exactly(sock, len(payload))
        best = float("inf")
        for _ in range(trips):
            start = time.monotonic()
            sock.sendall(payload)
            assert recv_exactly(sock, len(payload)) == payload
            best = min(best, time.monotonic() - start)
        return best


def echo_download_s(address: str, size: int) -> float:
    """Seconds to send ``size`` bytes through the echo and get all of them back."""
    payload = os.urandom(size)
    with connect(address, timeout_s=30) as sock:
        start = time.monotonic()
        sender = threading.Thread(target=sock.sendall, args=(payload,), daemon=True)
        sender.start()
        got = recv_exactly(sock, size)
        elapsed = time.monotonic() - start
        sender.join(timeout=30)
    assert got == payload
    return elapsed


def read_until_end(sock: socket.socket, timeout_s: float = 5.0) -> tuple[bytes, str, float, int]:
    """Read until the stream ends: (bytes, "eof" | "reset" | "timeout", seconds, number of reads)."""
    sock.settimeout(timeout_s)
    start, received, reads = time.monotonic(), b"", 0
    deadline = start + timeout_s
    try:
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                ending = "eof"
                break
            received += chunk
            reads += 1
    except ConnectionResetError:
        ending = "reset"
    except (socket.timeout, TimeoutError):
        ending = "timeout"
    return received, ending, time.monotonic() - start, reads


def connect_error(address: str) -> str | None:
    """None when a TCP connection to ``address`` opens, else the error's class name."""
    try:
        with connect(address, timeout_s=2):
            return None
    except OSError as exc:
        return type(exc).__name__
