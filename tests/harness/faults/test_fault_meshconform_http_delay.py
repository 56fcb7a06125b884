"""meshconform_http_delay: a delay per request, once at the chunk where it begins, not per chunk."""

import asyncio
import os
import time

import pytest
from fault_helpers import round_trip_s, wait_until
from http_helpers import HttpClient

from harness.faults import HttpDelay, make_toxic


async def _arrival_s(upstream, writer, data) -> float:
    """Write ``data``; seconds until the (echo) upstream has received it."""
    expected = len(upstream.received) + len(data)
    start = time.monotonic()
    writer.write(data)
    await wait_until(lambda: len(upstream.received) >= expected, what="bytes at the upstream")
    return time.monotonic() - start


async def test_each_request_is_delayed_once_where_it_begins(proxy, upstream):
    proxy.add(HttpDelay(0.2), "upstream")
    reader, writer = await asyncio.open_connection(*proxy.address)
    try:
        assert 0.2 <= await _arrival_s(upstream, writer, HttpClient.head("/get")) <= 0.35
        assert 0.2 <= await _arrival_s(upstream, writer, HttpClient.head("/post", "POST", body_length=12)) <= 0.35
        for part in (b"part", b"-of-", b"body"):  # a 3-chunk body: not delayed at all, let alone 3 ×
            assert await _arrival_s(upstream, writer, part) < 0.1
        assert 0.2 <= await _arrival_s(upstream, writer, HttpClient.head("/next")) <= 0.35  # next request
    finally:
        writer.close()


async def test_jitter_keeps_each_request_within_bounds(proxy, upstream):
    proxy.add(make_toxic("meshconform_http_delay", delay_s=0.1, jitter_s=0.05), "upstream")
    reader, writer = await asyncio.open_connection(*proxy.address)
    try:
        samples = [await _arrival_s(upstream, writer, HttpClient.head(f"/{n}")) for n in range(6)]
    finally:
        writer.close()
    assert all(0.049 <= s <= 0.2 for s in samples), samples


async def test_bytes_that_are_not_http_are_not_delayed(proxy, upstream):
    proxy.add(HttpDelay(0.3), "upstream")
    reader, writer = await asyncio.open_connection(*proxy.address)
    try:
        payload = b"\x16\x03\x01\x00\xa5\x01\x00" + os.urandom(500)
        assert await round_trip_s(reader, writer, payload) < 0.1
        assert await round_trip_s(reader, writer, HttpClient.head("/after-tls")) < 0.1
    finally:
        writer.close()
    assert bytes(upstream.received) == payload + HttpClient.head("/after-tls")


def test_http_delay_refuses_negative_values_and_names_its_stream():
    with pytest.raises(ValueError):
        HttpDelay(-0.1)
    with pytest.raises(ValueError):
        HttpDelay(0.1, jitter_s=-1)
    assert HttpDelay.STREAMS == ("upstream",)
