"""The fault service's Toxiproxy API (harness/faults/service.py), spoken over real HTTP to a real
service on loopback, with its effect measured on real TCP connections through the proxies it makes."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import aiohttp
import pytest
from fault_helpers import round_trip_s

from harness.faults.service import OWNER_HEADER, serve
from meshruntime.processes import owner_token


@pytest.fixture
async def api(loopback_ip):
    stop, urls = asyncio.Event(), []
    task = asyncio.create_task(serve((loopback_ip, 0), ready=urls.append, stop=stop))
    deadline = time.monotonic() + 10
    while not urls:
        assert time.monotonic() < deadline and not task.done(), "the service did not start"
        await asyncio.sleep(0.01)  # polling pace of the ready callback
    async with aiohttp.ClientSession(urls[0]) as session:
        yield session
    stop.set()
    await asyncio.wait_for(task, 10)


async def call(session, method, path, body=None, raw=None, headers=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body))
    async with session.request(method, path, data=data, headers=headers) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text and resp.content_type == "application/json" else text)


def address(listen):
    host, _, port = listen.rpartition(":")
    return host, int(port)


async def test_version_and_the_extension_route(api):
    assert await call(api, "GET", "/version") == (200, {"version": "2.12.0-meshconform"})
    status, ext = await call(api, "GET", "/meshconform")
    assert status == 200 and "meshconform_http_status" in ext["extension_toxics"]
    assert "latency" in ext["toxics"] and "latency" not in ext["extension_toxics"]


async def test_create_show_list_delete_a_proxy_on_an_ephemeral_port(api, upstream, loopback_ip):
    status, made = await call(api, "POST", "/proxies", {"name": "echo", "listen": f"{loopback_ip}:0",
                                                        "upstream": "%s:%d" % upstream.address})
    assert status == 201 and made["enabled"] is True and made["toxics"] == []
    host, port = address(made["listen"])
    assert host == loopback_ip and port > 0
    reader, writer = await asyncio.open_connection(host, port)
    await round_trip_s(reader, writer)  # traffic passes
    writer.close()
    assert (await call(api, "GET", "/proxies/echo"))[1] == made
    assert (await call(api, "GET", "/proxies"))[1] == {"echo": made}
    assert (await call(api, "DELETE", "/proxies/echo"))[0] == 204
    assert await call(api, "GET", "/proxies/echo") == (404, {"error": "proxy not found", "status": 404})
    with pytest.raises(OSError):
        await asyncio.open_connection(host, port)


@pytest.mark.parametrize("body, status, error", [
    ({"upstream": "127.0.0.1:1"}, 400, "missing required field: name"),
    ({"name": "x"}, 400, "missing required field: upstream"),
    ({"name": "x", "upstream": "nowhere"}, 400, "bad request body: upstream 'nowhere' is not HOST:PORT"),
    ({"name": "x", "upstream": "127.0.0.1:1", "enabled": "yes"}, 400, "bad request body: enabled"),
    ([1, 2], 400, "bad request body: a proxy is a JSON object"),
])
async def test_bad_proxies_answer_400_and_change_nothing(api, body, status, error):
    got_status, got = await call(api, "POST", "/proxies", body)
    assert got_status == status and got["status"] == status and got["error"].startswith(error)
    assert (await call(api, "GET", "/proxies"))[1] == {}


async def test_non_json_is_a_bad_request_body(api):
    status, got = await call(api, "POST", "/proxies", raw="{not json")
    assert status == 400 and got["error"].startswith("bad request body: ")


async def test_duplicate_proxy_is_409_and_a_busy_listen_address_409(api, upstream, loopback_ip):
    body = {"name": "a", "listen": f"{loopback_ip}:0", "upstream": "%s:%d" % upstream.address}
    status, made = await call(api, "POST", "/proxies", body)
    assert status == 201
    assert await call(api, "POST", "/proxies", body) == (409, {"error": "proxy already exists", "status": 409})
    status, got = await call(api, "POST", "/proxies", {**body, "name": "b", "listen": made["listen"]})
    assert status == 409 and "in use" in got["error"]
    assert set((await call(api, "GET", "/proxies"))[1]) == {"a"}


async def test_browsers_are_refused(api):
    status, text = await call(api, "GET", "/proxies", headers={"User-Agent": "Mozilla/5.0"})
    assert status == 403 and "User agent not allowed" in text


async def test_toxic_lifecycle_and_its_effect_on_the_wire(api, upstream, loopback_ip):
    _, made = await call(api, "POST", "/proxies", {"name": "p", "listen": f"{loopback_ip}:0",
                                                   "upstream": "%s:%d" % upstream.address})
    reader, writer = await asyncio.open_connection(*address(made["listen"]))
    base = await round_trip_s(reader, writer)
    status, toxic = await call(api, "POST", "/proxies/p/toxics", {"type": "latency", "attributes": {"latency": 200}})
    assert status == 200  # Toxiproxy answers 200 here, not 201
    assert toxic == {"attributes": {"latency": 200, "jitter": 0}, "name": "latency_downstream",
                     "type": "latency", "stream": "downstream", "toxicity": 1.0}
    assert await round_trip_s(reader, writer) >= 0.2  # the open connection gets it too
    status, toxic = await call(api, "PATCH", "/proxies/p/toxics/latency_downstream", {"attributes": {"jitter": 5}})
    assert status == 200 and toxic["attributes"] == {"latency": 200, "jitter": 5}
    status, toxic = await call(api, "POST", "/proxies/p/toxics/latency_downstream", {"attributes": {"latency": 0}})
    assert status == 200 and toxic["attributes"] == {"latency": 0, "jitter": 5}
    assert (await call(api, "GET", "/proxies/p/toxics"))[1] == [toxic]
    assert (await call(api, "DELETE", "/proxies/p/toxics/latency_downstream"))[0] == 204
    assert await round_trip_s(reader, writer) < base + 0.15
    assert await call(api, "GET", "/proxies/p/toxics/latency_downstream") == \
        (404, {"error": "toxic not found", "status": 404})
    writer.close()


@pytest.mark.parametrize("body, error", [
    ({"type": "nope"}, "invalid toxic type"),
    ({"type": "latency", "stream": "sideways"}, "stream was invalid, can be either upstream or downstream"),
    ({"type": "latency", "attributes": {"latency": -1}}, "bad request body: latency attribute 'latency' must not be negative"),
    ({"type": "latency", "attributes": {"latency": 1.5}}, "bad request body: latency attribute 'latency' is a whole number"),
    ({"type": "latency", "attributes": {"latency": "1"}}, "bad request body: latency attribute 'latency' is a number"),
    ({"type": "latency", "toxicity": 2}, "bad request body: toxicity is a number in 0..1"),
    ({"type": "slicer", "attributes": {"average_size": 0}}, "bad request body: slicer: "),
])
async def test_bad_toxics_answer_400_and_change_nothing(api, upstream, body, error):
    await call(api, "POST", "/proxies", {"name": "p", "upstream": "%s:%d" % upstream.address})
    status, got = await call(api, "POST", "/proxies/p/toxics", body)
    assert status == 400 and got["error"].startswith(error), got
    assert (await call(api, "GET", "/proxies/p/toxics"))[1] == []


async def test_duplicate_toxic_409_unknown_proxy_404(api, upstream):
    await call(api, "POST", "/proxies", {"name": "p", "upstream": "%s:%d" % upstream.address})
    assert (await call(api, "POST", "/proxies/p/toxics", {"type": "timeout"}))[0] == 200
    assert await call(api, "POST", "/proxies/p/toxics", {"type": "timeout"}) == \
        (409, {"error": "toxic already exists", "status": 409})
    assert await call(api, "POST", "/proxies/q/toxics", {"type": "timeout"}) == \
        (404, {"error": "proxy not found", "status": 404})


async def test_disabled_is_down_and_reset_heals(api, upstream, loopback_ip):
    _, made = await call(api, "POST", "/proxies", {"name": "p", "listen": f"{loopback_ip}:0",
                                                   "upstream": "%s:%d" % upstream.address})
    where = address(made["listen"])
    await call(api, "POST", "/proxies/p/toxics", {"type": "latency", "attributes": {"latency": 300}})
    status, down = await call(api, "PATCH", "/proxies/p", {"enabled": False})
    assert status == 200 and down["enabled"] is False and down["listen"] == made["listen"]
    with pytest.raises(OSError):
        await asyncio.open_connection(*where)
    assert (await call(api, "POST", "/reset"))[0] == 204
    status, healed = await call(api, "GET", "/proxies/p")
    assert healed["enabled"] is True and healed["toxics"] == []
    reader, writer = await asyncio.open_connection(*where)
    assert await round_trip_s(reader, writer) < 0.3
    writer.close()


async def test_a_proxy_created_disabled_listens_once_enabled(api, upstream, loopback_ip):
    status, made = await call(api, "POST", "/proxies", {"name": "p", "listen": f"{loopback_ip}:0", "enabled": False,
                                                        "upstream": "%s:%d" % upstream.address})
    assert status == 201 and made["enabled"] is False
    status, up = await call(api, "POST", "/proxies/p", {"enabled": True})  # POST updates too (deprecated)
    assert status == 200 and up["enabled"] is True and address(up["listen"])[1] > 0
    reader, writer = await asyncio.open_connection(*address(up["listen"]))
    await round_trip_s(reader, writer)
    writer.close()


async def test_populate_creates_or_replaces_and_checks_everything_first(api, upstream, loopback_ip):
    up = "%s:%d" % upstream.address
    status, got = await call(api, "POST", "/populate", [{"name": "a", "upstream": up}, {"name": "b"}])
    assert status == 400 and got["error"] == "missing required field: upstream at proxy 2"
    assert (await call(api, "GET", "/proxies"))[1] == {}
    status, got = await call(api, "POST", "/populate", [{"name": "a", "upstream": up, "listen": f"{loopback_ip}:0"},
                                                        {"name": "b", "upstream": up, "enabled": False}])
    assert status == 201 and [p["name"] for p in got["proxies"]] == ["a", "b"]
    first = got["proxies"][0]
    status, again = await call(api, "POST", "/populate", [{"name": "a", "upstream": up, "listen": first["listen"]}])
    assert status == 201 and again["proxies"] == [first]  # the same proxy: not replaced
    status, other = await call(api, "POST", "/populate", [{"name": "a", "upstream": "127.0.0.1:9", "listen": f"{loopback_ip}:0"}])
    assert status == 201 and other["proxies"][0]["upstream"] == "127.0.0.1:9"


async def test_toxicity_draws_per_connection(api, upstream, loopback_ip):
    _, made = await call(api, "POST", "/proxies", {"name": "p", "listen": f"{loopback_ip}:0",
                                                   "upstream": "%s:%d" % upstream.address})
    await call(api, "POST", "/proxies/p/toxics", {"type": "latency", "toxicity": 0.0, "attributes": {"latency": 500}})
    for _ in range(5):  # toxicity 0: never acts
        reader, writer = await asyncio.open_connection(*address(made["listen"]))
        assert await round_trip_s(reader, writer) < 0.4
        writer.close()


async def test_extension_toxics_only_on_the_upstream_stream(api, upstream):
    await call(api, "POST", "/proxies", {"name": "p", "upstream": "%s:%d" % upstream.address})
    status, got = await call(api, "POST", "/proxies/p/toxics", {"type": "meshconform_http_status", "stream": "downstream"})
    assert status == 400 and got["error"].startswith("stream was invalid")
    status, got = await call(api, "POST", "/proxies/p/toxics", {"type": "meshconform_http_status",
                                                               "attributes": {"status": 502, "first": 2}})
    assert status == 200 and got["stream"] == "upstream" and got["name"] == "meshconform_http_status_upstream"
    assert got["attributes"]["status"] == 502 and got["attributes"]["first"] == 2


async def test_owner_leases_end_when_the_owner_dies(api, upstream):
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        owner = {OWNER_HEADER: owner_token(child.pid)}
        await call(api, "POST", "/proxies", {"name": "owned", "upstream": "%s:%d" % upstream.address}, headers=owner)
        await call(api, "POST", "/proxies", {"name": "mine", "upstream": "%s:%d" % upstream.address})
        await call(api, "POST", "/proxies/mine/toxics", {"type": "timeout"}, headers=owner)
        status, ext = await call(api, "GET", "/meshconform")
        assert sorted(ext["owners"][owner_token(child.pid)]) == ["mine/timeout_downstream", "owned"]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(5)
        killed = time.monotonic()
        while (await call(api, "GET", "/proxies"))[1].keys() != {"mine"} or \
                (await call(api, "GET", "/proxies/mine/toxics"))[1]:
            assert time.monotonic() - killed < 2.0, "leases of a dead owner still in place after 2 s"
            await asyncio.sleep(0.02)  # polling pace of the service's state
    finally:
        child.kill()
        child.wait(5)


async def test_an_owner_header_naming_no_live_process_is_refused(api, upstream):
    status, got = await call(api, "POST", "/proxies", {"name": "x", "upstream": "%s:%d" % upstream.address},
                             headers={OWNER_HEADER: "999999999/1"})
    assert status == 400 and "no live process" in got["error"]
    status, got = await call(api, "POST", "/proxies", {"name": "x", "upstream": "%s:%d" % upstream.address},
                             headers={OWNER_HEADER: "garbage"})
    assert status == 400 and OWNER_HEADER in got["error"]


def test_every_toxic_is_offered_through_the_api():
    from harness.faults import TOXICS
    from harness.faults.toxiproxy_json import SCHEMAS

    assert set(SCHEMAS) == set(TOXICS)


async def test_changing_the_upstream_keeps_the_listen_address_and_toxics(api, upstream, loopback_ip):
    from fault_helpers import EchoServer

    other = await EchoServer().start(loopback_ip)
    try:
        _, made = await call(api, "POST", "/proxies", {"name": "p", "listen": f"{loopback_ip}:0",
                                                       "upstream": "%s:%d" % upstream.address})
        await call(api, "POST", "/proxies/p/toxics", {"type": "latency", "attributes": {"latency": 1}})
        status, moved = await call(api, "POST", "/proxies/p", {"upstream": "%s:%d" % other.address})
        assert status == 200 and moved["listen"] == made["listen"] and moved["upstream"] == "%s:%d" % other.address
        assert [t["name"] for t in moved["toxics"]] == ["latency_downstream"]
        reader, writer = await asyncio.open_connection(*address(moved["listen"]))
        await round_trip_s(reader, writer, b"to the other")
        writer.close()
        assert bytes(other.received) == b"to the other" and not upstream.received
        _, busy = await call(api, "POST", "/proxies", {"name": "q", "listen": f"{loopback_ip}:0", "upstream": "127.0.0.1:9"})
        status, got = await call(api, "PATCH", "/proxies/p", {"listen": busy["listen"]})
        assert status == 409 and (await call(api, "GET", "/proxies/p"))[1] == moved  # refused: nothing changed
        reader, writer = await asyncio.open_connection(*address(moved["listen"]))
        await round_trip_s(reader, writer)
        writer.close()
    finally:
        await other.stop()
