"""toxiproxy-python (PyPI), unchanged, against ``meshconform faults serve``: every call it makes and the
effect of each toxic measured on the wire through a real echo upstream.

The client keeps the server's host and port in class attributes of ``toxiproxy.api.APIConsumer``
(process-wide): the ``toxiproxy`` fixture points them at this module's service and puts back what was
there. The client calls ``requests``, which would honour proxy variables: they are removed for the test.
"""

import json
import os
import socket
import time

import pytest
from client_helpers import (PROXY_VARIABLES, ThreadedHttp, connect, connect_error, echo_download_s, http_get,
                            read_until_end, recv_exactly, round_trip_s)

toxiproxy = pytest.importorskip("toxiproxy", reason="toxiproxy-python: pip install -e '.[chaos]'")
from toxiproxy.api import APIConsumer  # noqa: E402
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists  # noqa: E402

LATENCY_MS = 200
FAST_S = 0.15  # a round trip with no toxic, with room for a busy 2-vCPU machine (it takes ~1 ms)


@pytest.fixture
def server(service, monkeypatch):
    """A ``toxiproxy.Toxiproxy`` whose process-wide API address is this module's service."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setattr(APIConsumer, "host", service.host)
    monkeypatch.setattr(APIConsumer, "port", service.port)
    return toxiproxy.Toxiproxy()


@pytest.fixture
def proxy(server, echo, service_ip):
    return server.create(upstream=echo.hostport, name="echo", listen=f"{service_ip}:0")


def test_the_client_finds_the_server_and_its_version(server):
    assert server.running()
    version = server.version()
    assert version, "GET /version answered nothing"
    assert json.loads(version)["version"]


def test_create_answers_the_real_port_and_lists_the_proxy(server, proxy, echo, service_ip):
    host, _, port = proxy.listen.rpartition(":")
    assert host == service_ip and port.isdigit() and int(port) != 0, proxy.listen
    assert proxy.upstream == echo.hostport and proxy.enabled is True
    listed = server.proxies()
    assert list(listed) == ["echo"]
    assert listed["echo"].listen == proxy.listen
    assert server.get_proxy("echo").upstream == echo.hostport
    assert server.get_proxy("nope") is None
    assert round_trip_s(proxy.listen) < FAST_S


def test_latency_adds_to_every_round_trip_until_removed(proxy):
    assert round_trip_s(proxy.listen) < FAST_S
    proxy.add_toxic(type="latency", attributes={"latency": LATENCY_MS, "jitter": 0})
    toxic = proxy.get_toxic("latency_downstream")  # the client's default name: <type>_<stream>
    assert (toxic.type, toxic.stream, toxic.toxicity) == ("latency", "downstream", 1.0)
    assert toxic.attributes["latency"] == LATENCY_MS
    assert round_trip_s(proxy.listen) >= LATENCY_MS / 1000 * 0.95
    assert proxy.destroy_toxic("latency_downstream")
    assert proxy.toxics() == {}
    assert round_trip_s(proxy.listen) < FAST_S


def test_latency_upstream_counts_too(proxy):
    proxy.add_toxic(type="latency", stream="upstream", name="slow_requests", attributes={"latency": LATENCY_MS})
    assert list(proxy.toxics()) == ["slow_requests"]
    assert proxy.toxics()["slow_requests"].stream == "upstream"
    assert round_trip_s(proxy.listen) >= LATENCY_MS / 1000 * 0.95


def test_bandwidth_limits_a_download(proxy):
    size = 200_000  # bytes; at 400 KB/s (Toxiproxy's KB: 1000 bytes) that takes 0.5 s
    unlimited = echo_download_s(proxy.listen, size)
    proxy.add_toxic(type="bandwidth", attributes={"rate": 400})
    limited = echo_download_s(proxy.listen, size)
    assert limited >= 0.35, f"200 KB at 400 KB/s took {limited:.3f} s (expected about 0.5 s)"
    assert limited < 10
    assert unlimited < limited / 2, (unlimited, limited)


def test_timeout_holds_the_data_then_closes(proxy):
    proxy.add_toxic(type="timeout", attributes={"timeout": 500})
    with connect(proxy.listen) as sock:
        sock.sendall(b"ping")
        data, ending, seconds, _ = read_until_end(sock, timeout_s=5)
    assert data == b"", "the timeout toxic let data through"
    assert ending in ("eof", "reset"), f"the connection was not closed after 500 ms ({ending})"
    assert 0.45 <= seconds < 4, seconds


def test_timeout_zero_holds_and_drops_until_removed(proxy):
    proxy.add_toxic(type="timeout", attributes={"timeout": 0})
    with connect(proxy.listen) as sock:
        sock.sendall(b"ping")
        data, ending, seconds, _ = read_until_end(sock, timeout_s=1.0)
        assert (data, ending) == (b"", "timeout"), "timeout 0 must hold the connection open and pass nothing"
        proxy.destroy_toxic("timeout_downstream")
        # Toxiproxy drops what the toxic saw ("data will be dropped until the toxic is removed"): the
        # connection carries new data again, and only that
        sock.settimeout(5)
        sock.sendall(b"pong")
        assert recv_exactly(sock, 4) == b"pong"


def test_reset_peer_resets_the_connection_once_data_comes(proxy):
    # Toxiproxy's reset_peer (toxics/reset_peer.go) waits for the first chunk on its stream, then
    # `timeout` ms, then closes with SO_LINGER 0 (an RST); the chunk is dropped. An idle connection stays.
    proxy.add_toxic(type="reset_peer", attributes={"timeout": 0})
    with connect(proxy.listen) as sock:
        idle, ending, _, _ = read_until_end(sock, timeout_s=0.3)
        assert (idle, ending) == (b"", "timeout"), f"an idle connection ended by {ending}: no data came yet"
        sock.sendall(b"ping")
        data, ending, seconds, _ = read_until_end(sock, timeout_s=5)
    assert ending == "reset", f"expected a TCP reset, the connection ended by {ending} after {data!r}"
    assert data == b""


def test_reset_peer_timeout_counts_from_the_first_data(proxy):
    proxy.add_toxic(type="reset_peer", attributes={"timeout": 300})
    with connect(proxy.listen) as sock:
        idle, ending, _, _ = read_until_end(sock, timeout_s=0.4)
        assert (idle, ending) == (b"", "timeout"), f"an idle connection ended by {ending} within 0.4 s"
        sock.sendall(b"ping")
        data, ending, seconds, _ = read_until_end(sock, timeout_s=5)
    assert ending == "reset", f"expected a TCP reset, the connection ended by {ending} after {data!r}"
    assert data == b"", "Toxiproxy drops the chunk that started the reset timer"
    assert 0.28 <= seconds < 4, seconds


def test_slicer_splits_and_spaces_the_data(proxy):
    # 2000 bytes in 100-byte slices 20 ms (20,000 µs) apart: 20 slices over about 0.4 s
    proxy.add_toxic(type="slicer", attributes={"average_size": 100, "size_variation": 0, "delay": 20_000})
    payload = os.urandom(2000)
    with connect(proxy.listen) as sock:
        sock.sendall(payload)
        start, received, reads = time.monotonic(), b"", 0
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            assert chunk, f"the connection ended after {len(received)} bytes"
            received, reads = received + chunk, reads + 1
        seconds = time.monotonic() - start
    assert received == payload
    assert reads >= 5, f"2000 bytes arrived in {reads} reads: not sliced"
    assert seconds >= 0.25, f"20 slices 20 ms apart arrived in {seconds:.3f} s"


def test_limit_data_cuts_the_connection_at_n_bytes(proxy):
    proxy.add_toxic(type="limit_data", attributes={"bytes": 100})
    payload = os.urandom(1000)
    with connect(proxy.listen) as sock:
        sock.sendall(payload)
        data, ending, _, _ = read_until_end(sock, timeout_s=5)
    assert data == payload[:100], f"got {len(data)} bytes, expected the first 100"
    assert ending in ("eof", "reset"), ending


def test_slow_close_delays_the_fin(proxy):
    proxy.add_toxic(type="slow_close", attributes={"delay": 300})
    with connect(proxy.listen) as sock:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
        sock.shutdown(socket.SHUT_WR)  # the echo closes in turn; its FIN reaches us 300 ms later
        data, ending, seconds, _ = read_until_end(sock, timeout_s=5)
    assert (data, ending) == (b"", "eof"), (data, ending)
    assert 0.28 <= seconds < 4, seconds


def test_down_refuses_connections_then_comes_back_on_the_same_address(server, proxy):
    assert round_trip_s(proxy.listen) < FAST_S
    with proxy.down():
        assert connect_error(proxy.listen) == "ConnectionRefusedError"
        assert server.get_proxy("echo").enabled is False
    assert server.get_proxy("echo").enabled is True
    assert server.get_proxy("echo").listen == proxy.listen
    assert round_trip_s(proxy.listen) < FAST_S


def test_reset_enables_every_proxy_and_removes_every_toxic(server, proxy):
    proxy.add_toxic(type="latency", attributes={"latency": LATENCY_MS})
    proxy.disable()
    assert connect_error(proxy.listen) == "ConnectionRefusedError"
    assert server.reset()
    assert server.get_proxy("echo").enabled is True
    assert proxy.toxics() == {}
    assert round_trip_s(proxy.listen) < FAST_S


def test_populate_and_destroy_all(server, echo, service_ip):
    created = server.populate([
        {"name": "one", "upstream": echo.hostport, "listen": f"{service_ip}:0"},
        {"name": "two", "upstream": echo.hostport, "listen": f"{service_ip}:0"},
    ])
    assert sorted(p.name for p in created) == ["one", "two"]
    assert sorted(server.proxies()) == ["one", "two"]
    for p in created:
        assert round_trip_s(p.listen) < FAST_S
    server.destroy_all()
    assert server.proxies() == {}
    for p in created:
        assert connect_error(p.listen) == "ConnectionRefusedError"


def test_errors_reach_the_client_as_its_exceptions(server, proxy, echo, service_ip):
    with pytest.raises(ProxyExists):  # the client checks GET /proxies first
        server.create(upstream=echo.hostport, name="echo")
    with pytest.raises(ProxyExists):  # 409 from POST /proxies
        APIConsumer.post("/proxies", json={"name": "echo", "upstream": echo.hostport, "listen": f"{service_ip}:0"})
    with pytest.raises(InvalidToxic):  # 400: unknown toxic type
        proxy.add_toxic(type="no_such_toxic")
    proxy.add_toxic(type="latency", attributes={"latency": 1})
    with pytest.raises(ProxyExists):  # 409: a toxic of that name is there
        proxy.add_toxic(type="latency", attributes={"latency": 2})
    with pytest.raises(NotFound):
        proxy.destroy_toxic("no_such_toxic")
    assert proxy.destroy()
    with pytest.raises(NotFound):
        proxy.destroy()
    with pytest.raises(NotFound):
        APIConsumer.get("/proxies/echo")


@pytest.fixture
def http_upstream(service_ip):
    server = ThreadedHttp(service_ip)
    yield server
    server.close()


def test_meshconform_http_status_through_the_plain_client(server, http_upstream, service_ip):
    """Our extension types need nothing the client lacks: a type name and attributes."""
    web = server.create(upstream=http_upstream.hostport, name="web", listen=f"{service_ip}:0")
    assert [s for s, _, _ in http_get(web.listen)] == [200]
    web.add_toxic(type="meshconform_http_status", stream="upstream", attributes={"status": 503, "first": 2})
    toxic = web.get_toxic("meshconform_http_status_upstream")
    assert toxic.attributes["status"] == 503 and toxic.attributes["first"] == 2
    answers = http_get(web.listen, requests=4)
    assert [(s, h) for s, h, _ in answers] == [(503, "http_status"), (503, "http_status"), (200, None), (200, None)]


def test_meshconform_http_delay_through_the_plain_client(server, http_upstream, service_ip):
    web = server.create(upstream=http_upstream.hostport, name="web", listen=f"{service_ip}:0")
    web.add_toxic(type="meshconform_http_delay", stream="upstream", attributes={"delay": 200})
    answers = http_get(web.listen, requests=3)
    assert all(s == 200 for s, _, _ in answers)
    assert min(seconds for _, _, seconds in answers) >= 0.19, answers
    web.destroy_toxic("meshconform_http_delay_upstream")
    assert min(seconds for _, _, seconds in http_get(web.listen, requests=3)) < FAST_S
