"""meshconform_http_status: the proxy answers chosen HTTP/1.1 requests itself; they never reach the
upstream, and the keep-alive connection stays usable (client and upstream stay in step)."""

import asyncio
import math
import os
import random

import httptools
import pytest
from fault_helpers import read_until_end, wait_until
from http_helpers import HttpClient, HttpUpstream

from harness.faults import FaultProxy, HttpStatus, make_toxic
from harness.faults.http_status import FaultChoice, answer


@pytest.fixture
async def http_upstream(loopback_ip):
    server = await HttpUpstream().start(loopback_ip)
    yield server
    await server.stop()


@pytest.fixture
async def http_proxy(http_upstream, loopback_ip):
    async with FaultProxy(listen=(loopback_ip, 0), upstream=http_upstream.address) as proxy:
        yield proxy


def _is_fault(response, status=503):
    return (response.status == status and response.headers.get("x-meshconform-fault") == "http_status"
            and int(response.headers["content-length"]) == len(response.body) > 0)


async def test_first_requests_are_answered_by_the_proxy_then_pass_on_the_same_connection(http_proxy, http_upstream):
    http_proxy.add(HttpStatus(first=3), "upstream")
    client = await HttpClient.connect(http_proxy.address)
    try:
        responses = [await client.get(f"/{n}") for n in range(1, 6)]
    finally:
        client.close()
    assert [r.status for r in responses] == [503, 503, 503, 200, 200]
    assert all(_is_fault(r) and r.keep_alive for r in responses[:3])
    assert [r.body for r in responses[3:]] == [b"upstream /4", b"upstream /5"]
    assert http_upstream.paths == ["/4", "/5"]  # 1-3 never reached it
    assert len({port for _, _, port in http_upstream.requests}) == 1  # one proxy→upstream connection


async def test_first_counts_requests_over_all_connections(http_proxy, http_upstream):
    http_proxy.add(HttpStatus(status=500, first=2), "upstream")
    statuses = []
    for n in range(4):
        client = await HttpClient.connect(http_proxy.address)
        try:
            statuses.append((await client.get(f"/{n}")).status)
        finally:
            client.close()
    assert statuses == [500, 500, 200, 200]
    assert http_upstream.paths == ["/2", "/3"]


async def test_share_answers_the_seeded_choice_on_the_wire(http_proxy, http_upstream):
    expected_choice = FaultChoice(0, 0.5, random.Random(11))
    expected = [expected_choice.decide() for _ in range(20)]
    assert 0 < sum(expected) < 20  # the seed gives a mix, so the test shows both outcomes
    http_proxy.add(make_toxic("meshconform_http_status", status=502, share=0.5, seed=11), "upstream")
    client = await HttpClient.connect(http_proxy.address)
    try:
        statuses = [(await client.get(f"/{n}")).status for n in range(20)]
    finally:
        client.close()
    assert statuses == [502 if faulted else 200 for faulted in expected]
    assert http_upstream.paths == [f"/{n}" for n, faulted in enumerate(expected) if not faulted]


async def test_a_body_in_several_chunks_is_dropped_whole_and_answered_once_complete(http_proxy, http_upstream):
    http_proxy.add(HttpStatus(first=1), "upstream")
    client = await HttpClient.connect(http_proxy.address)
    try:
        for path in ("/faulted", "/passes"):
            client.writer.write(HttpClient.head(path, "POST", body_length=12))
            for part in (b"part", b"-of-", b"body"):
                await asyncio.sleep(0.02)  # pacing so each part is likely its own chunk; not relied upon
                client.writer.write(part)
            response = await client.response()
            assert response.status == (503 if path == "/faulted" else 200)
    finally:
        client.close()
    assert http_upstream.requests and [(p, b) for p, b, _ in http_upstream.requests] == [("/passes", b"part-of-body")]


async def test_a_request_asking_to_close_is_answered_then_closed(http_proxy, http_upstream):
    http_proxy.add(HttpStatus(first=1), "upstream")
    client = await HttpClient.connect(http_proxy.address)
    try:
        response = await client.get("/bye", headers=["Connection: close"])
        assert _is_fault(response) and response.headers["connection"] == "close"
        assert await client.at_eof()
    finally:
        client.close()
    assert http_upstream.paths == []


async def test_pipelined_faulted_requests_are_answered_with_close(http_proxy, http_upstream):
    http_proxy.add(HttpStatus(first=2), "upstream")
    client = await HttpClient.connect(http_proxy.address)
    try:
        client.writer.write(HttpClient.head("/a") + HttpClient.head("/b"))  # two requests, one chunk
        response = await client.response()
        assert _is_fault(response) and response.headers["connection"] == "close" and not response.keep_alive
        assert await client.at_eof()  # one answer, then the connection closes
    finally:
        client.close()
    await wait_until(lambda: http_proxy.connection_count == 0, what="connection closed")
    assert http_upstream.paths == []


async def test_a_fault_pipelined_behind_a_passing_request_drops_the_chunk_and_closes(http_proxy, http_upstream):
    def first_two(seed):
        choice = FaultChoice(0, 0.5, random.Random(seed))
        return [choice.decide(), choice.decide()]

    seed = next(s for s in range(1000) if first_two(s) == [False, True])
    http_proxy.add(HttpStatus(share=0.5, seed=seed), "upstream")  # request 1 passes, request 2 is faulted
    client = await HttpClient.connect(http_proxy.address)
    try:
        client.writer.write(HttpClient.head("/passes") + HttpClient.head("/faulted"))  # one chunk
        response = await client.response()
        assert _is_fault(response) and response.headers["connection"] == "close"
        assert await client.at_eof()
    finally:
        client.close()
    assert http_upstream.paths == []  # a chunk is forwarded or dropped whole: neither reached it


async def test_bytes_that_are_not_http_pass_unchanged(proxy, upstream):
    """On the echo upstream: a TLS-looking stream, then bytes that would be a request, all pass."""
    proxy.add(HttpStatus(first=10), "upstream")
    reader, writer = await asyncio.open_connection(*proxy.address)
    payload = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1" + os.urandom(2000)
    writer.write(payload)
    await wait_until(lambda: len(upstream.received) == len(payload), what="TLS bytes at the upstream")
    writer.write(HttpClient.head("/not-faulted"))  # the connection is not HTTP: never faulted
    writer.write_eof()
    received, ending, _ = await read_until_end(reader)
    writer.close()
    assert received == payload + HttpClient.head("/not-faulted") == bytes(upstream.received)
    assert ending == "eof"


@pytest.mark.parametrize("first", range(6))
def test_fault_choice_first_is_exactly_the_first_requests(first):
    choice = FaultChoice(first, 0.0 if first == 0 else 0.7, random.Random(1))  # share ignored when first > 0
    assert [choice.decide() for _ in range(20)] == [n < first for n in range(20)]


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
def test_fault_choice_share_is_one_seeded_draw_per_request(share):
    choice = FaultChoice(0, share, random.Random(42))
    decisions = [choice.decide() for _ in range(10_000)]
    draws = random.Random(42)
    assert decisions == [draws.random() < share for _ in range(10_000)]  # exact, given the seed
    assert abs(sum(decisions) / 10_000 - share) < 0.02
    if share in (0.0, 1.0):
        assert set(decisions) == {bool(share)}
    again = FaultChoice(0, share, random.Random(42))
    assert [again.decide() for _ in range(10_000)] == decisions  # repeatable


def test_toxics_with_the_same_seed_choose_alike_and_keep_their_own_count():
    a, b = HttpStatus(share=0.3, seed=5), HttpStatus(share=0.3, seed=5)
    assert [a._choice.decide() for _ in range(50)] == [b._choice.decide() for _ in range(50)]
    assert HttpStatus(first=2)._choice.decided == 0


def _parse(data: bytes) -> dict:
    seen: dict = {"body": b"", "headers": {}}

    class Callbacks:
        def on_header(self, name, value):
            seen["headers"][name.lower()] = value

        def on_body(self, body):
            seen["body"] += body

        def on_message_complete(self):
            seen["complete"] = True

    parser = httptools.HttpResponseParser(Callbacks())
    parser.feed_data(data)
    seen["status"] = parser.get_status_code()
    return seen


def test_the_answer_is_valid_http_for_every_kind_of_status():
    for status, head in [(503, False), (429, False), (200, True), (204, False), (304, False)]:
        parsed = _parse(answer(status, head=head))
        assert parsed["status"] == status and parsed["headers"][b"x-meshconform-fault"] == b"http_status"
        if not head and status not in (204, 304):
            assert parsed.get("complete") and int(parsed["headers"][b"content-length"]) == len(parsed["body"]) > 0
    assert _parse(answer(503, close=True))["headers"][b"connection"] == b"close"


@pytest.mark.parametrize("field, value", [("status", 99), ("status", 600), ("first", -1), ("share", -0.1),
                                          ("share", 1.5), ("share", math.nan)])
def test_bad_parameters_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        HttpStatus(**{field: value})


def test_only_the_upstream_stream_makes_sense():
    assert HttpStatus.STREAMS == ("upstream",)
