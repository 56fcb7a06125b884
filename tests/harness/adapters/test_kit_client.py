"""KeepAliveClient (urllib3 underneath): one try per send, keep-alive reuse, a peer-closed idle
connection replaced before use, and the error strings the checks read."""

from __future__ import annotations

import socket
import threading

import pytest

from harness.adapters.base import HttpRequest
from harness.adapters.kit import KeepAliveClient

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\nhi"


class RawServer:
    """A loopback server that answers each request with what ``behaviour`` says, counting requests and
    connections."""

    def __init__(self):
        self.behaviour = "ok"
        self.requests = 0
        self.connections = 0
        self.closed_idle = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            while conn.recv(65536):
                self.requests += 1
                if self.behaviour == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    return
                if self.behaviour == "silent":
                    conn.recv(65536)  # never answers: the client's read timeout ends it
                    return
                conn.sendall(OK)
                if self.behaviour == "close_after":
                    conn.shutdown(socket.SHUT_RDWR)
                    self.closed_idle.set()
                    return

    def close(self):
        self._sock.close()


@pytest.fixture
def server():
    s = RawServer()
    yield s
    s.close()


def test_keep_alive_reuses_one_connection_and_merges_repeated_headers(server):
    client = KeepAliveClient()
    answers = [client.send(server.address, HttpRequest(host="backend", path="/")) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert answers[0].headers["x-a"] == "1, 2" and answers[0].body == b"hi"
    assert server.connections == 1
    client.close()


def test_a_peer_closed_idle_connection_is_replaced_not_retried(server):
    client = KeepAliveClient()
    server.behaviour = "close_after"
    assert client.send(server.address, HttpRequest(path="/")).status == 200
    assert server.closed_idle.wait(5)
    server.behaviour = "ok"
    assert client.send(server.address, HttpRequest(path="/")).status == 200
    assert (server.requests, server.connections) == (2, 2)
    client.close()


def test_a_reset_is_reported_once_and_never_retried(server):
    client = KeepAliveClient()
    server.behaviour = "reset"
    answer = client.send(server.address, HttpRequest(path="/"))
    assert answer.status is None and answer.error.startswith("connection reset")
    assert server.requests == 1
    client.close()


def test_timeout_and_refused_have_their_names(server):
    client = KeepAliveClient()
    server.behaviour = "silent"
    assert client.send(server.address, HttpRequest(path="/", timeout_s=0.2)).error == "timeout"
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    assert client.send(f"127.0.0.1:{port}", HttpRequest(path="/")).error == "connection refused"
    client.close()
