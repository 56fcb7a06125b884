"""Outbound decisions end to end: retries, per-try and route timeouts, breaker overflow, fault abort,
connect failure, identity mismatch, plaintext to DISABLE, and the defect that drops mTLS."""

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp

from harness.faults.proxy import FaultProxy
from sidecar_testkit import INBOUND_PORT, OUTBOUND_PORT, two_service_scenario


def _route(**route):
    return two_service_scenario(routes=[{"destination": "backend", **route}])


async def _get(cip, path, session=None):
    own = session is None
    session = session or aiohttp.ClientSession()
    try:
        async with session.get(f"http://{cip}:{OUTBOUND_PORT}{path}", headers={"Host": "backend"}) as resp:
            return resp.status, dict(resp.headers), await resp.read()
    finally:
        if own:
            await session.close()


async def test_retries_until_success_within_attempts(kit):
    _, _, app, cip, _ = await kit.pair(_route(retries={"attempts": 2, "retry_on": ["5xx"],
                                                       "backoff": {"base_interval": "1ms"}}))
    status, _, _ = await _get(cip, "/?key=a&fail=2")
    assert status == 200
    assert [a["headers"]["x-envoy-attempt-count"] for a in app.arrivals] == ["1", "2", "3"]


async def test_retries_exhausted_returns_the_failure(kit):
    client, _, app, cip, _ = await kit.pair(_route(retries={"attempts": 2, "backoff": {"base_interval": "1ms"}}))
    status, _, _ = await _get(cip, "/?key=b&fail=5")
    assert status == 503
    assert len(app.arrivals) == 3
    assert client.metrics.retries == 2


async def test_no_retry_policy_means_one_try(kit):
    _, _, app, cip, _ = await kit.pair(two_service_scenario())
    status, _, _ = await _get(cip, "/?key=c&fail=1")
    assert status == 503
    assert len(app.arrivals) == 1


async def test_per_try_timeout_cuts_a_hung_try_and_the_retry_succeeds(kit):
    _, _, app, cip, _ = await kit.pair(_route(retries={"attempts": 1, "per_try_timeout": "200ms",
                                                       "backoff": {"base_interval": "1ms"}}))
    started = time.monotonic()
    status, _, _ = await _get(cip, "/?key=d&delay=3&delay_once=1")
    assert status == 200
    assert time.monotonic() - started < 1.5
    assert len(app.arrivals) == 2


@dataclass(frozen=True)
class _SlowFirstFlight:
    """Delays the first chunk the server sends on each connection (its TLS ServerHello flight): a slow
    mTLS handshake, with every later byte on time."""

    delay_s: float
    seen: set = field(default_factory=set, compare=False)

    async def pipe(self, chunk, send, link) -> None:
        if link.connection_id not in self.seen:
            self.seen.add(link.connection_id)
            await asyncio.sleep(self.delay_s)  # the fault itself: hold the handshake's first answer
        await send(chunk)


async def test_per_try_timeout_starts_when_the_try_is_sent_not_while_connecting(kit):
    """Envoy arms the per-try timer at pool-ready (envoy#4903): a handshake slower than the per-try
    timeout does not fail the try; connecting is bounded by the connect timeout and the route deadline."""
    scenario = _route(retries={"attempts": 1, "per_try_timeout": "200ms", "retry_on": ["5xx"],
                               "backoff": {"base_interval": "1ms"}})
    cip, bip, hop_ip = kit.ip(), kit.ip(), kit.ip()
    app = await kit.app("backend", bip)
    backend_endpoints = {"backend-v1-0": {"service": "backend", "version": "v1", "instance": 0,
                                          "address": f"{bip}:{INBOUND_PORT}"}}
    await kit.sidecar("backend", bip, scenario, backend_endpoints)
    async with FaultProxy((hop_ip, 0), (bip, INBOUND_PORT)) as hop:
        hop.add(_SlowFirstFlight(0.35), "downstream")
        host, port = hop.address
        client = await kit.sidecar("client", cip, scenario, {"backend-v1-0": {
            "service": "backend", "version": "v1", "instance": 0, "address": f"{host}:{port}"}})
        started = time.monotonic()
        status, _, _ = await _get(cip, "/?key=slowtls")
        elapsed = time.monotonic() - started
    assert status == 200, f"a try failed while its connection was still being set up ({elapsed:.3f} s)"
    assert [a["headers"]["x-envoy-attempt-count"] for a in app.arrivals] == ["1"]
    assert elapsed >= 0.35
    assert client.metrics.retries == 0


async def test_route_timeout_answers_504_at_the_deadline(kit):
    client, _, app, cip, _ = await kit.pair(_route(timeout="300ms"))
    started = time.monotonic()
    status, _, body = await _get(cip, "/?key=e&delay=3")
    elapsed = time.monotonic() - started
    assert status == 504 and body == b"upstream request timeout\n"
    assert 0.28 <= elapsed < 1.0
    assert client.metrics.timeouts == 1


async def test_breaker_overflow_is_fast_503_with_overload_marker(kit):
    scenario = two_service_scenario()
    scenario["policies"][0]["circuit_breaker"] = {"max_connections": 1, "max_pending_requests": 1,
                                                  "max_requests": 2}
    client, _, app, cip, _ = await kit.pair(scenario)
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(*(_get(cip, f"/?key=f{i}&delay=0.5", session) for i in range(6)))
    statuses = sorted(r[0] for r in results)
    overloaded = [r for r in results if r[0] == 503]
    assert statuses.count(200) == 2  # one on the only connection, one pending for it
    assert len(overloaded) == 4 and all(r[1].get("x-envoy-overloaded") == "true" for r in overloaded)
    assert len(app.arrivals) == 2
    assert client.metrics.pending_overflow == 4


async def test_fault_abort_answers_itself(kit):
    client, _, app, cip, _ = await kit.pair(_route(fault={"abort": {"percentage": 100, "http_status": 418}}))
    status, headers, _ = await _get(cip, "/")
    assert status == 418 and headers["x-meshproxy-fault"] == "abort"
    assert app.arrivals == []
    assert client.metrics.faults["abort"] == 1


async def test_fault_delay_delays(kit):
    _, _, app, cip, _ = await kit.pair(_route(fault={"delay": {"percentage": 100, "fixed_delay": "300ms"}}))
    started = time.monotonic()
    status, _, _ = await _get(cip, "/")
    assert status == 200 and time.monotonic() - started >= 0.29


async def test_connect_failure_is_503(kit):
    scenario = two_service_scenario()
    cip, dead = kit.ip(), kit.ip()
    endpoints = {"backend-v1-0": {"service": "backend", "version": "v1", "instance": 0,
                                  "address": f"{dead}:{INBOUND_PORT}"}}
    await kit.sidecar("client", cip, scenario, endpoints)
    status, _, body = await _get(cip, "/")
    assert status == 503 and body.startswith(b"upstream connect error")


async def test_server_with_the_wrong_identity_is_refused(kit):
    """The endpoint of 'backend' is really the sidecar of 'other': the SAN check must stop it."""
    scenario = {"trust_domain": "cluster.local", "services": [{"name": "client"}, {"name": "backend"},
                                                              {"name": "other"}]}
    cip, oip = kit.ip(), kit.ip()
    endpoints = {"backend-v1-0": {"service": "backend", "version": "v1", "instance": 0,
                                  "address": f"{oip}:{INBOUND_PORT}"}}
    app = await kit.app("other", oip)
    await kit.sidecar("other", oip, scenario, endpoints)
    client = await kit.sidecar("client", cip, scenario, endpoints)
    status, _, _ = await _get(cip, "/")
    assert status == 503
    assert app.arrivals == []
    assert client.metrics.tls_handshake_failures == 1


async def test_no_endpoints_is_no_healthy_upstream(kit):
    cip = kit.ip()
    await kit.sidecar("client", cip, two_service_scenario(), {})
    status, _, body = await _get(cip, "/")
    assert status == 503 and body == b"no healthy upstream\n"


async def test_defect_plaintext_between_sidecars(kit):
    client, backend, app, cip, _ = await kit.pair(two_service_scenario(), defects={"plaintext_between_sidecars": True})
    await client.stop()  # restart the client with the defect too: both ends of the hop are broken
    kit.sidecars.remove(client)
    cip2 = kit.ip()
    endpoints = backend.config.current.endpoints
    await kit.sidecar("client", cip2, two_service_scenario(), endpoints, defects={"plaintext_between_sidecars": True})
    status, _, _ = await _get(cip2, "/")
    assert status == 200
    assert "x-forwarded-client-cert" not in app.arrivals[0]["headers"]  # no TLS, so no identity


async def test_a_burst_opens_at_most_2_connections_at_once_and_every_request_is_answered(kit):
    """60 requests at once on an empty pool: each waits for the first connection ready for the
    endpoint (released or newly opened) and at most Limits.max_connecting (2) opens are in flight at
    any moment (the pool's own ``open`` is observed, not replaced), so a burst cannot turn into 60
    concurrent mTLS handshakes competing for the CPU."""
    client, _, _, cip, _ = await kit.pair(two_service_scenario())
    pool, in_flight, peak = client.pool, [0], [0]
    real_open = pool.open

    async def observed_open(*args, **kwargs):
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        try:
            return await real_open(*args, **kwargs)
        finally:
            in_flight[0] -= 1

    pool.open = observed_open
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        answers = await asyncio.gather(*(_get(cip, f"/?key=burst{i}", session) for i in range(60)))
    assert [status for status, _, _ in answers] == [200] * 60
    assert 1 <= peak[0] <= 2, f"{peak[0]} connections were being opened at once"
    assert client.metrics.upstream_connections_opened <= 30


async def test_a_failed_open_fails_only_the_waiter_it_was_for(kit):
    """Waiters beyond a failed open are not failed with it while other opens are left for them."""
    scenario = two_service_scenario()
    cip = kit.ip()
    endpoints = {"backend-v1-0": {"service": "backend", "version": "v1", "instance": 0,
                                  "address": f"{kit.ip()}:{INBOUND_PORT}"}}  # nobody listens there
    await kit.sidecar("client", cip, scenario, endpoints)
    answers = await asyncio.gather(*(_get(cip, f"/?key=down{i}") for i in range(6)))
    assert [status for status, _, _ in answers] == [503] * 6  # each one a connect failure of its own
