"""The control plane over real HTTPS on a random 127.A.B.1: signing, refusals, scenario store, long-polls.

The server runs in the test's event loop (``start_controlplane``); the command line is tested in
test_cpclient.py. Workload calls go through ``AsyncControlPlaneClient`` with real client certificates.
"""

import asyncio
import datetime as dt
import json
import random
import ssl
import time

import aiohttp
import pytest
import trustme
from cryptography import x509

from meshproxy import ca as _ca
from meshproxy.controlplane.server import Settings, start_controlplane
from meshproxy.controlplane.tokens import JoinTokens, TokenRefused
from meshproxy.cpclient import (
    AsyncControlPlaneClient, ControlPlaneError, ControlPlaneUnavailable, RegisterFirst, client_ssl_context,
)

TD = "cluster.local"
ADMIN = "admin-secret-for-tests"
BACKEND_ID = f"spiffe://{TD}/ns/default/sa/backend"
CLIENT_ID = f"spiffe://{TD}/ns/default/sa/client"

SCENARIO = {
    "apiVersion": "meshconform/v1", "name": "t", "trust_domain": TD, "cert_ttl": "2m",
    "services": [{"name": "client"}, {"name": "backend", "versions": [{"name": "v1"}, {"name": "v2"}]}],
    "routes": [{"destination": "backend", "backends": [{"version": "v1", "weight": 90},
                                                        {"version": "v2", "weight": 10}]}],
}


def random_ip() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.1"


@pytest.fixture
async def cp(tmp_path):
    running = await start_controlplane(Settings(random_ip(), 0, tmp_path / "state", TD, ADMIN, defects={}))
    yield running
    await running.stop()


@pytest.fixture
async def http(cp):
    """A plain aiohttp session trusting the bundle (no client certificate)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl_context(cp.bundle_path))) as s:
        yield s


def admin_headers(token=ADMIN):
    return {"Authorization": f"Bearer {token}"}


async def join_token(http, cp, workload="backend-v1-0", spiffe_id=BACKEND_ID):
    async with http.post(f"{cp.url}/v1/join-tokens", json={"workload": workload, "spiffe_id": spiffe_id},
                         headers=admin_headers()) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["token"]


async def joined_client(http, cp, workload="backend-v1-0", spiffe_id=BACKEND_ID):
    """A workload client that joined with a token and now uses its SVID; returns (client, sign answer)."""
    client = AsyncControlPlaneClient(cp.url, cp.bundle_path)
    key, csr = _ca.new_key_and_csr()
    answer = await client.sign(csr, join_token=await join_token(http, cp, workload, spiffe_id))
    client.set_client_identity(answer["certificate"].encode(), _ca.key_pem(key))
    return client, answer


async def register(client, workload="backend-v1-0", service="backend", version="v1", address=None):
    return await client.register(workload, service=service, namespace="default", version=version, instance=0,
                                 address=address or "127.0.0.1:15006")


# -- TLS and identity -------------------------------------------------------------------------------
async def test_serves_https_with_its_own_svid_and_ip_san(cp, http):
    async with http.get(f"{cp.url}/healthz") as resp:
        assert resp.status == 200 and await resp.json() == {"ok": True}
    host = cp.url.split("//")[1].rsplit(":", 1)[0]
    # a raw handshake that checks the IP against the certificate (check_hostname on an IP literal)
    reader, writer = await asyncio.open_connection(host, cp.port, ssl=client_ssl_context(cp.bundle_path),
                                                   server_hostname=host)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    served = x509.load_der_x509_certificate(der)
    assert _ca.parse_spiffe_id(served) == f"spiffe://{TD}/ns/meshconform-system/sa/controlplane"
    ips = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.IPAddress)
    assert [str(ip) for ip in ips] == [host]
    async with http.get(f"{cp.url}/v1/bundle") as resp:
        assert (await resp.read()) == cp.bundle_path.read_bytes()


async def test_sign_with_join_token_gives_the_token_identity(cp, http):
    client, answer = await joined_client(http, cp)
    try:
        cert = x509.load_pem_x509_certificate(answer["certificate"].encode())
        assert _ca.parse_spiffe_id(cert) == BACKEND_ID
        assert _ca.workload_of(cert) == "backend-v1-0"
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(answer["bundle"].encode()))
        assert answer["serial"] == f"{cert.serial_number:x}"
        assert answer["chain"] == []
        lifetime = (cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)).total_seconds()
        assert 3590 < lifetime <= 3600  # --cert-ttl default while no scenario is stored
    finally:
        await client.close()


async def test_renewal_with_client_cert_keeps_the_identity(cp, http):
    client, first = await joined_client(http, cp)
    try:
        key, csr = _ca.new_key_and_csr()
        second = await client.sign(csr)  # no token: the SVID is the credential
        old = x509.load_pem_x509_certificate(first["certificate"].encode())
        new = x509.load_pem_x509_certificate(second["certificate"].encode())
        assert _ca.parse_spiffe_id(new) == _ca.parse_spiffe_id(old) == BACKEND_ID
        assert _ca.workload_of(new) == "backend-v1-0"
        assert new.serial_number != old.serial_number
        assert new.public_key().public_numbers() == key.public_key().public_numbers()
        # rotate to the new certificate and renew again with it
        client.set_client_identity(second["certificate"].encode(), _ca.key_pem(key))
        third = await client.sign(_ca.new_key_and_csr()[1])
        assert _ca.parse_spiffe_id(_ca.load_cert(third["certificate"].encode())) == BACKEND_ID
    finally:
        await client.close()


# -- refusals ---------------------------------------------------------------------------------------
async def sign_raw(http, cp, csr_pem, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(f"{cp.url}/v1/sign", json={"csr": csr_pem}, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_sign_without_token_or_cert_is_refused(cp, http, caplog):
    status, body = await sign_raw(http, cp, _ca.new_key_and_csr()[1].decode())
    assert status == 401 and "join token" in body["error"]
    assert any("refused POST /v1/sign" in r.getMessage() for r in caplog.records)


async def test_join_token_works_once(cp, http):
    token = await join_token(http, cp)
    assert (await sign_raw(http, cp, _ca.new_key_and_csr()[1].decode(), token))[0] == 200
    status, body = await sign_raw(http, cp, _ca.new_key_and_csr()[1].decode(), token)
    assert status == 401 and "already used" in body["error"]
    status, body = await sign_raw(http, cp, _ca.new_key_and_csr()[1].decode(), "made-up-token")
    assert status == 401 and "unknown" in body["error"]


async def test_token_for_another_identity_is_refused_and_not_spent(cp, http):
    token = await join_token(http, cp, "client-v1-0", CLIENT_ID)
    status, body = await sign_raw(http, cp, _ca.new_key_and_csr(BACKEND_ID)[1].decode(), token)
    assert status == 403 and CLIENT_ID in body["error"] and BACKEND_ID in body["error"]
    status, body = await sign_raw(http, cp, _ca.new_key_and_csr(CLIENT_ID)[1].decode(), token)
    assert status == 200
    assert _ca.parse_spiffe_id(_ca.load_cert(body["certificate"].encode())) == CLIENT_ID


async def test_invalid_csr_is_refused(cp, http):
    token = await join_token(http, cp)
    status, body = await sign_raw(http, cp, "not a csr", token)
    assert status == 400 and "csr" in body["error"]
    # a CSR whose signature does not verify: flip one bit inside the signature
    csr = x509.load_pem_x509_csr(_ca.new_key_and_csr()[1])
    der = bytearray(csr.public_bytes(_ca.serialization.Encoding.DER))
    der[-5] ^= 0x01
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(_ca.serialization.Encoding.PEM).decode()
    status, body = await sign_raw(http, cp, tampered, token)
    assert status == 403 and "signature" in body["error"]
    assert (await sign_raw(http, cp, _ca.new_key_and_csr()[1].decode(), token))[0] == 200  # token survived


async def test_foreign_ca_client_cert_fails_the_handshake(cp, tmp_path):
    foreign = trustme.CA()
    leaf = foreign.issue_cert("127.0.0.1")
    client = AsyncControlPlaneClient(cp.url, cp.bundle_path,
                                     client_cert=(leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes()))
    try:
        with pytest.raises(ControlPlaneUnavailable):
            await client.sign(_ca.new_key_and_csr()[1])
    finally:
        await client.close()


async def test_admin_calls_need_the_admin_token(cp, http):
    body = {"workload": "backend-v1-0", "spiffe_id": BACKEND_ID}
    async with http.post(f"{cp.url}/v1/join-tokens", json=body) as resp:
        assert resp.status == 401
    async with http.post(f"{cp.url}/v1/join-tokens", json=body, headers=admin_headers("wrong")) as resp:
        assert resp.status == 403
    async with http.get(f"{cp.url}/v1/status") as resp:
        assert resp.status == 401
    async with http.post(f"{cp.url}/v1/join-tokens", json={"workload": "x", "spiffe_id": "spiffe://evil/ns/a/sa/b"},
                         headers=admin_headers()) as resp:
        assert resp.status == 422
        assert [e["field"] for e in (await resp.json())["errors"]] == ["spiffe_id"]


async def test_workload_cannot_act_for_another_workload(cp, http):
    client, _ = await joined_client(http, cp, "client-v1-0", CLIENT_ID)
    try:
        with pytest.raises(ControlPlaneError) as err:
            await register(client, "backend-v1-0")
        assert err.value.status == 403
        # right workload name but a service whose identity is not the caller's (scenario known)
        await put(http, cp, SCENARIO)
        with pytest.raises(ControlPlaneError) as err:
            await register(client, "client-v1-0", service="backend")
        assert err.value.status == 403 and BACKEND_ID in err.value.message
    finally:
        await client.close()


def test_join_tokens_expire_and_are_one_time():
    now = [100.0]
    tokens = JoinTokens(clock=lambda: now[0])
    token = tokens.create("w", BACKEND_ID, ttl_s=10)
    assert tokens.check(token).spiffe_id == BACKEND_ID
    now[0] += 10.0
    with pytest.raises(TokenRefused, match="expired"):
        tokens.spend(token)
    fresh = tokens.create("w", BACKEND_ID, ttl_s=10)
    assert tokens.spend(fresh).workload == "w"
    with pytest.raises(TokenRefused, match="already used"):
        tokens.spend(fresh)


# -- scenario store -----------------------------------------------------------------------------------
async def put(http, cp, scenario, raw=None):
    data = raw if raw is not None else json.dumps(scenario)
    async with http.put(f"{cp.url}/v1/scenario", data=data, headers=admin_headers()) as resp:
        return resp.status, await resp.json()


async def test_scenario_errors_name_the_field(cp, http):
    bad = dict(SCENARIO, routes=[{"destination": "nosuch", "backends": [{"version": "v1"}]}],
               policies=[{"service": "backend", "mtls": {"mode": "SOMETIMES"}}])
    status, body = await put(http, cp, bad)
    assert status == 422
    fields = {e["field"] for e in body["errors"]}
    assert "policies.0.mtls.mode" in fields

    status, body = await put(http, cp, dict(SCENARIO, routes=[{"destination": "nosuch"}]))
    assert status == 422 and [e["field"] for e in body["errors"]] == ["routes.0.destination"]

    status, body = await put(http, cp, dict(SCENARIO, trust_domain="other.domain"))
    assert status == 422 and body["errors"][0]["field"] == "trust_domain"

    status, body = await put(http, cp, None, raw="{not json")
    assert status == 422 and body["errors"][0]["field"] == "(body)"
    assert cp.state.store.version == 0  # nothing stored


async def test_scenario_survives_a_restart(tmp_path):
    ip, state = random_ip(), tmp_path / "state"
    first = await start_controlplane(Settings(ip, 0, state, TD, ADMIN, defects={}))
    try:
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=client_ssl_context(first.bundle_path))) as http:
            assert await put(http, first, SCENARIO) == (200, {"version": 1, "generation": 2})
            assert (await put(http, first, SCENARIO))[1]["version"] == 2
        generation_before = first.state.generation.value
        bundle_before = first.bundle_path.read_bytes()
    finally:
        await first.stop()

    second = await start_controlplane(Settings(ip, 0, state, TD, ADMIN, defects={}))
    try:
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=client_ssl_context(second.bundle_path))) as http:
            async with http.get(f"{second.url}/v1/scenario", headers=admin_headers()) as resp:
                body = await resp.json()
            assert body["version"] == 2 and body["scenario"]["name"] == "t"
            assert body["scenario"]["cert_ttl"] == 120.0
            async with http.get(f"{second.url}/v1/status", headers=admin_headers()) as resp:
                assert (await resp.json())["generation"] > generation_before
            # the CA survived too, and the scenario's cert_ttl (2m) now sets workload lifetimes
            assert second.bundle_path.read_bytes() == bundle_before
            client, answer = await joined_client(http, second)
            await client.close()
            lifetime = (dt.datetime.fromisoformat(answer["not_after"]) - dt.datetime.now(dt.timezone.utc))
            assert 110 < lifetime.total_seconds() <= 120
    finally:
        await second.stop()


# -- config push --------------------------------------------------------------------------------------
async def test_config_needs_registration(cp, http):
    client, _ = await joined_client(http, cp)
    try:
        with pytest.raises(RegisterFirst):
            await client.config("backend-v1-0")
        await register(client)
        config = await client.config("backend-v1-0")
        assert config["endpoints"]["backend-v1-0"]["address"] == "127.0.0.1:15006"
        assert config["scenario"] is None and config["version"] == 0
    finally:
        await client.close()


async def test_long_poll_wakes_within_a_second_of_a_put(cp, http):
    client, _ = await joined_client(http, cp)
    try:
        await register(client)
        current = (await client.config("backend-v1-0"))["generation"]
        poll = asyncio.create_task(client.config("backend-v1-0", after=current, wait=30))
        done, _ = await asyncio.wait({poll}, timeout=0.3)
        assert not done, "long-poll answered before anything changed"
        put_at = time.monotonic()
        assert (await put(http, cp, SCENARIO))[0] == 200
        config = await asyncio.wait_for(poll, timeout=5)
        elapsed = time.monotonic() - put_at
        assert elapsed < 1.0, elapsed
        assert config["generation"] > current and config["version"] == 1
        assert config["scenario"]["name"] == "t"
    finally:
        await client.close()


async def test_long_poll_times_out_with_the_current_generation(cp, http):
    client, _ = await joined_client(http, cp)
    try:
        await register(client)
        current = (await client.config("backend-v1-0"))["generation"]
        started = time.monotonic()
        config = await client.config("backend-v1-0", after=current, wait=0.4)
        assert 0.35 < time.monotonic() - started < 3
        assert config["generation"] == current
    finally:
        await client.close()


async def test_wait_answers_when_every_workload_acked(cp, http):
    client, _ = await joined_client(http, cp)
    try:
        await register(client)
        _, stored = await put(http, cp, SCENARIO)
        target = stored["generation"]
        async with http.get(f"{cp.url}/v1/wait", params={"generation": target, "timeout": 0.3},
                            headers=admin_headers()) as resp:
            assert resp.status == 504 and (await resp.json())["lagging"] == ["backend-v1-0"]

        async def wait_for_effect():
            async with http.get(f"{cp.url}/v1/wait", params={"generation": target, "timeout": 30},
                                headers=admin_headers()) as resp:
                return resp.status, await resp.json(), time.monotonic()

        waiter = asyncio.create_task(wait_for_effect())
        done, _ = await asyncio.wait({waiter}, timeout=0.3)
        assert not done
        await client.ack("backend-v1-0", target, 1)
        acked_at = time.monotonic()
        status, body, answered_at = await asyncio.wait_for(waiter, 5)
        assert status == 200 and body["in_effect"] and answered_at - acked_at < 1.0
        assert body["workloads"]["backend-v1-0"]["generation"] == target
        assert body["workloads"]["backend-v1-0"]["acked_at"]
    finally:
        await client.close()


async def test_admin_override_wins_and_deregister_bumps_generation(cp, http):
    client, _ = await joined_client(http, cp)
    try:
        await register(client, address="127.0.0.1:15006")
        async with http.post(f"{cp.url}/v1/endpoints", headers=admin_headers(), json={
                "workload": "backend-v1-0", "service": "backend", "namespace": "default", "version": "v1",
                "instance": 0, "address": "127.0.0.1:7000"}) as resp:
            assert resp.status == 200
        await register(client, address="127.0.0.1:15006")  # e.g. the sidecar re-registers
        config = await client.config("backend-v1-0")
        assert config["endpoints"]["backend-v1-0"]["address"] == "127.0.0.1:7000"

        with pytest.raises(ControlPlaneError) as err:
            await register(client, address="not-an-address")
        assert err.value.status == 422

        await client.deregister("backend-v1-0")
        with pytest.raises(RegisterFirst):
            await client.config("backend-v1-0")
        async with http.get(f"{cp.url}/v1/status", headers=admin_headers()) as resp:
            assert (await resp.json())["generation"] > config["generation"]
    finally:
        await client.close()


async def test_shutdown_does_not_wait_out_long_polls(tmp_path):
    running = await start_controlplane(Settings(random_ip(), 0, tmp_path, TD, ADMIN, defects={}))
    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=client_ssl_context(running.bundle_path))) as http:
        client, _ = await joined_client(http, running)
        try:
            await register(client)
            poll = asyncio.create_task(client.config("backend-v1-0", after=10**9 + 1, wait=0))
            await poll  # generation differs from `after`: immediate
            poll = asyncio.create_task(client.config("backend-v1-0", after=(await poll)["generation"], wait=60))
            done, _ = await asyncio.wait({poll}, timeout=0.2)
            assert not done
            started = time.monotonic()
            await running.stop()
            await asyncio.wait({poll}, timeout=5)
            assert poll.done() and time.monotonic() - started < 4
        finally:
            await client.close()


async def test_clients_check_the_ip_in_the_certificate(cp):
    host = cp.url.split("//")[1].rsplit(":", 1)[0]
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection(host, cp.port, ssl=client_ssl_context(cp.bundle_path),
                                      server_hostname="127.0.0.2")
