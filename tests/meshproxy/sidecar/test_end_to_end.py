"""client app -> outbound sidecar -> mTLS -> inbound sidecar -> app, over real sockets and TLS."""

import aiohttp

from sidecar_testkit import OUTBOUND_PORT, spiffe, two_service_scenario


async def test_request_crosses_two_sidecars_over_mtls_with_true_identity(kit):
    client, backend, app, cip, _ = await kit.pair(two_service_scenario(allowed=[spiffe("client")]))
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://{cip}:{OUTBOUND_PORT}/hello?x=1", data=b"abc",
                                headers={"Host": "backend", "x-forwarded-client-cert": "By=fake;URI=spiffe://evil/ns/x/sa/y"}) as resp:
            assert resp.status == 200
            answer = await resp.json()
    assert answer["service"] == "backend"
    assert answer["body_bytes"] == 3
    assert answer["headers"]["x-forwarded-client-cert"] == f"By={spiffe('backend')};URI={spiffe('client')}"
    assert answer["headers"]["x-envoy-attempt-count"] == "1"
    assert answer["headers"]["x-request-id"]
    assert app.arrivals[0]["path"] == "/hello?x=1"
    assert client.metrics.requests["outbound", 200] == 1
    assert backend.metrics.requests["inbound", 200] == 1


async def test_keep_alive_reuses_one_connection_per_hop(kit):
    client, backend, app, cip, _ = await kit.pair(two_service_scenario())
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for i in range(50):
            async with session.get(f"http://{cip}:{OUTBOUND_PORT}/{i}", headers={"Host": "backend"}) as resp:
                assert resp.status == 200
                await resp.read()
    assert len(app.arrivals) == 50
    assert len(app.peers) == 1  # inbound sidecar -> app: one pooled connection
    assert client.metrics.upstream_connections_opened == 1  # outbound -> inbound: one mTLS connection
    assert backend.metrics.upstream_connections_opened == 1


async def test_unknown_host_gets_404_with_marker(kit):
    _, _, app, cip, _ = await kit.pair(two_service_scenario())
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{cip}:{OUTBOUND_PORT}/", headers={"Host": "nowhere"}) as resp:
            assert resp.status == 404
            assert resp.headers["x-meshproxy-no-route"] == "1"
    assert app.arrivals == []
