"""The defects added for the sensitivity tests, each against real sidecars: permissive_as_strict,
authz_deny_all, plaintext_between_sidecars under authz, and no_route_status. Each test also shows the
correct sidecar's behaviour, so it fails if a defect leaks into a correct mesh or does nothing."""

import aiohttp

from sidecar_testkit import (GET, INBOUND_PORT, OUTBOUND_PORT, mesh_client_ctx, parse_response, raw_exchange,
                             spiffe, tls_exchange, two_service_scenario)


async def _backend(kit, mode="STRICT", allowed=None, **options):
    _, backend, app, _, bip = await kit.pair(two_service_scenario(mode, allowed), **options)
    return backend, app, bip


async def _get(ip, path="/", host="backend"):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{ip}:{OUTBOUND_PORT}{path}", headers={"Host": host}) as resp:
            return resp.status, resp.headers.get("x-meshproxy-no-route"), await resp.read()


async def test_permissive_as_strict_refuses_plaintext(kit):
    _, app, correct = await _backend(kit, "PERMISSIVE")
    assert parse_response(await raw_exchange(correct, INBOUND_PORT, GET)).status == 200
    _, _, broken = await _backend(kit, "PERMISSIVE", defects={"permissive_as_strict": True})
    assert parse_response(await raw_exchange(broken, INBOUND_PORT, GET)) is None
    # it is STRICT, not dead: mTLS still gets through
    answer = await tls_exchange(broken, INBOUND_PORT, GET, mesh_client_ctx(kit, spiffe("client")))
    assert parse_response(answer).status == 200


async def test_authz_deny_all_refuses_a_listed_caller(kit):
    listed = mesh_client_ctx(kit, spiffe("client"))
    _, _, correct = await _backend(kit, allowed=[spiffe("client")])
    assert parse_response(await tls_exchange(correct, INBOUND_PORT, GET, listed)).status == 200
    _, app, broken = await _backend(kit, allowed=[spiffe("client")], defects={"authz_deny_all": True})
    denied = parse_response(await tls_exchange(broken, INBOUND_PORT, GET, mesh_client_ctx(kit, spiffe("client"))))
    assert denied.status == 403 and denied.body == b"RBAC: access denied"
    assert app.arrivals == []


async def test_authz_deny_all_leaves_destinations_without_authz_open(kit):
    _, _, bip = await _backend(kit, defects={"authz_deny_all": True})
    answer = await tls_exchange(bip, INBOUND_PORT, GET, mesh_client_ctx(kit, spiffe("intruder")))
    assert parse_response(answer).status == 200


async def test_plaintext_between_sidecars_reaches_an_authz_protected_backend(kit):
    # correct mesh: a plaintext caller has no identity, so the allow-list refuses it
    _, _, correct = await _backend(kit, "PERMISSIVE", allowed=[spiffe("client")])
    assert parse_response(await raw_exchange(correct, INBOUND_PORT, GET)).status == 403
    # broken mesh: traffic flows in clear, so the wire check sees plaintext rather than 403s
    defect = {"plaintext_between_sidecars": True}
    scenario = two_service_scenario(allowed=[spiffe("client")])
    backend, app, bip = await _backend(kit, allowed=[spiffe("client")], defects=defect)
    cip = kit.ip()
    await kit.sidecar("client", cip, scenario, backend.config.current.endpoints, defects=defect)
    status, _, _ = await _get(cip)
    assert status == 200 and len(app.arrivals) == 1


async def test_no_route_status_replaces_404(kit):
    client, _, _, cip, _ = await kit.pair(two_service_scenario())
    assert await _get(cip, host="nowhere") == (404, "1", b"no route\n")
    broken = kit.ip()
    await kit.sidecar("client", broken, two_service_scenario(), client.config.current.endpoints,
                      defects={"no_route_status": 503})
    assert await _get(broken, host="nowhere") == (503, "1", b"no route\n")
    assert (await _get(broken))[0] == 200  # routed requests are untouched
