"""The proxy itself: faithful relaying, partition, leases, live changes, thread mode."""

import asyncio
import os
import socket
from pathlib import Path
import threading
import time

import pytest
from fault_helpers import EchoServer, read_until_end, round_trip_s, wait_until

from harness.faults import TOXICS, FaultProxy, Latency, Timeout, make_toxic


async def test_relays_large_payloads_on_many_connections(proxy):
    async def exchange(payload):
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(payload)
        received = await reader.readexactly(len(payload))
        writer.close()
        return received

    payloads = [os.urandom(1_000_000) for _ in range(5)]
    assert await asyncio.gather(*map(exchange, payloads)) == payloads


async def test_half_close_is_passed_on(proxy, upstream):
    reader, writer = await asyncio.open_connection(*proxy.address)
    writer.write(b"last words")
    writer.write_eof()
    received, ending, _ = await read_until_end(reader)
    assert received == b"last words" and ending == "eof"  # the reply still came after our FIN
    writer.close()
    await wait_until(lambda: upstream.endings == ["eof"])


async def test_unreachable_upstream_is_a_reset(loopback_ip):
    dead = socket.socket()
    dead.bind((loopback_ip, 0))
    address = dead.getsockname()
    dead.close()  # nothing listens there now
    async with FaultProxy((loopback_ip, 0), address) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        _, ending, elapsed = await read_until_end(reader)
        writer.close()
    assert ending == "reset" and elapsed < 0.5


async def test_partition_refuses_new_connections_drops_open_ones_and_heals(proxy, upstream):
    reader, writer = await asyncio.open_connection(*proxy.address)
    await round_trip_s(reader, writer)
    proxy.enabled = False
    _, ending, _ = await read_until_end(reader)
    assert ending in ("reset", "eof")
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(*proxy.address)
    proxy.heal()
    proxy.heal()  # idempotent
    assert proxy.enabled
    reader, writer = await asyncio.open_connection(*proxy.address)  # same address again
    assert await round_trip_s(reader, writer) < 0.1
    writer.close()


async def test_a_lease_ends_even_when_the_test_fails(proxy):
    with pytest.raises(RuntimeError):
        with proxy.fault(Timeout(0)):
            assert list(proxy.toxics()) == ["timeout_downstream"]
            raise RuntimeError("test failed inside the lease")
    assert proxy.toxics() == {}
    assert not proxy.remove("timeout_downstream")  # removing twice is harmless


async def test_toxics_apply_to_open_connections_and_removal_loses_nothing(proxy, upstream):
    reader, writer = await asyncio.open_connection(*proxy.address)
    assert await round_trip_s(reader, writer) < 0.02
    name = proxy.add(Latency(0.2))
    writer.write(b"in flight")
    await wait_until(lambda: upstream.received.endswith(b"in flight"))  # now the echo is in the toxic
    proxy.remove(name)
    assert await asyncio.wait_for(reader.readexactly(9), 1) == b"in flight"
    assert await round_trip_s(reader, writer) < 0.02
    writer.close()


def test_names_are_unique_and_toxics_can_come_from_data(loopback_ip):
    proxy = FaultProxy((loopback_ip, 0), (loopback_ip, 1))
    proxy.add(make_toxic("latency", latency_s=0.01))
    with pytest.raises(ValueError, match="already"):
        proxy.add(Latency(0.02))
    assert proxy.add(Latency(0.02), name="second") == "second"
    with pytest.raises(ValueError, match="unknown toxic"):
        make_toxic("gremlins")
    with pytest.raises(ValueError, match="direction"):
        proxy.add(Latency(0.01), "sideways")


def test_every_registered_toxic_is_a_toxic_with_its_own_test():
    """Derived from the registry: a new toxic is one file, one registration line and one test file."""
    here = Path(__file__).parent
    assert TOXICS
    for name, toxic in TOXICS.items():
        assert callable(getattr(toxic, "pipe", None)), f"{name}: {toxic.__name__} has no pipe()"
        assert (here / f"test_fault_{name}.py").is_file(), f"toxic {name!r} has no tests/harness/faults/test_fault_{name}.py"


def _sync_round_trip_s(address) -> float:
    with socket.create_connection(address, timeout=5) as sock:
        start = time.monotonic()
        sock.sendall(b"ping")
        received = b""
        while len(received) < 4:
            received += sock.recv(4)
        return time.monotonic() - start


def test_running_in_a_thread_for_sync_callers(loopback_ip):
    loop = asyncio.new_event_loop()
    upstream = loop.run_until_complete(EchoServer().start(loopback_ip))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        with FaultProxy.running_in_thread((loopback_ip, 0), upstream.address) as proxy:
            address = proxy.address
            assert _sync_round_trip_s(address) < 0.05
            with proxy.fault(Latency(0.1)):  # called from this (non-loop) thread
                assert 0.09 <= _sync_round_trip_s(address) <= 0.15
            proxy.enabled = False
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(address, timeout=5)
            proxy.enabled = True
            assert _sync_round_trip_s(address) < 0.05
            proxy.add(Timeout(0))  # left on purpose: leaving the block must heal and stop
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=5)
    finally:
        asyncio.run_coroutine_threadsafe(upstream.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def test_toxicity_is_drawn_once_per_connection_from_the_injected_rng(upstream, loopback_ip):
    import random

    rng_seed = 7
    expected = [random.Random(rng_seed).random() < 0.5 for _ in range(1)]  # the first draw decides connection 1
    async with FaultProxy(listen=(loopback_ip, 0), upstream=upstream.address, rng=random.Random(rng_seed)) as proxy:
        proxy.add(Latency(0.3), toxicity=0.5)
        slow = []
        for _ in range(12):
            reader, writer = await asyncio.open_connection(*proxy.address)
            first = await round_trip_s(reader, writer)
            second = await round_trip_s(reader, writer)  # same connection: the same draw
            writer.close()
            assert (first >= 0.3) == (second >= 0.3)
            slow.append(first >= 0.3)
        draws = random.Random(rng_seed)
        assert slow == [draws.random() < 0.5 for _ in range(12)] and slow[:1] == expected
        assert 0 < sum(slow) < 12


async def test_update_changes_a_toxic_in_place_for_open_connections(proxy):
    reader, writer = await asyncio.open_connection(*proxy.address)
    proxy.add(Latency(0.3), name="slow")
    assert await round_trip_s(reader, writer) >= 0.3
    proxy.update("slow", Latency(0.0))
    assert await round_trip_s(reader, writer) < 0.2
    proxy.update("slow", toxicity=0.0)
    assert proxy.toxicity("slow") == 0.0 and list(proxy.toxics()) == ["slow"]
    with pytest.raises(KeyError):
        proxy.update("nope", Latency(0.1))
    with pytest.raises(ValueError):
        proxy.add(Timeout(0), toxicity=1.5)
    writer.close()
