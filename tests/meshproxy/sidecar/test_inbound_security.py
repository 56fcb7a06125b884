"""Inbound mTLS enforcement: modes, peer identity, trust domain, authorization, XFCC (SPEC §4 Security)."""

import datetime as dt

import pytest

from fixtures.certs import ForeignCA, client_ssl_context, expired_svid, self_signed_svid
from sidecar_testkit import (GET, INBOUND_PORT, mesh_client_ctx, parse_response, raw_exchange, spiffe, tls_exchange,
                             two_service_scenario)


async def _backend(kit, mode="STRICT", allowed=None, **options):
    _, backend, app, _, bip = await kit.pair(two_service_scenario(mode, allowed), **options)
    return backend, app, bip


async def test_strict_refuses_plaintext_and_app_sees_nothing(kit):
    backend, app, bip = await _backend(kit)
    raw = await raw_exchange(bip, INBOUND_PORT, GET)
    assert parse_response(raw) is None
    assert app.arrivals == []
    # and the listener still serves mTLS
    ok = parse_response(await tls_exchange(bip, INBOUND_PORT, GET, mesh_client_ctx(kit, spiffe("client"))))
    assert ok.status == 200


async def test_permissive_serves_plaintext_and_mtls(kit):
    backend, app, bip = await _backend(kit, "PERMISSIVE")
    plain = parse_response(await raw_exchange(bip, INBOUND_PORT, GET))
    assert plain.status == 200
    assert "x-forwarded-client-cert" not in json_body_of(plain)["headers"]
    tls = parse_response(await tls_exchange(bip, INBOUND_PORT, GET, mesh_client_ctx(kit, spiffe("client"))))
    assert tls.status == 200
    assert json_body_of(tls)["headers"]["x-forwarded-client-cert"].endswith(f"URI={spiffe('client')}")
    assert len(app.arrivals) == 2


async def test_disable_serves_plaintext_only(kit):
    backend, app, bip = await _backend(kit, "DISABLE")
    assert parse_response(await raw_exchange(bip, INBOUND_PORT, GET)).status == 200


def json_body_of(parsed):
    import json
    return json.loads(parsed.body)


@pytest.mark.parametrize("kind", ["foreign_ca", "self_signed", "expired", "not_yet_valid", "wrong_trust_domain",
                                  "no_certificate"])
async def test_bad_client_certificates_are_refused(kit, kind, tmp_path):
    backend, app, bip = await _backend(kit)
    now = dt.datetime.now(dt.timezone.utc)
    if kind == "foreign_ca":
        ctx = client_ssl_context(kit.bundle, *ForeignCA().issue_svid(spiffe("client")))
    elif kind == "self_signed":
        ctx = client_ssl_context(kit.bundle, *self_signed_svid(spiffe("client")))
    elif kind == "expired":
        ctx = client_ssl_context(kit.bundle, *expired_svid(kit.ca.cert, kit.ca.key, spiffe("client")))
    elif kind == "not_yet_valid":
        ctx = mesh_client_ctx(kit, spiffe("client"), not_before=now + dt.timedelta(hours=1),
                              not_after=now + dt.timedelta(hours=2))
    elif kind == "wrong_trust_domain":
        ctx = mesh_client_ctx(kit, spiffe("client", "evil.example"))
    else:
        ctx = client_ssl_context(kit.bundle)
    answer = await tls_exchange(bip, INBOUND_PORT, GET, ctx)
    assert answer is None or parse_response(answer) is None
    assert app.arrivals == []
    assert backend.metrics.tls_handshake_failures >= 1


async def test_authz_denies_unlisted_principal_with_nothing_forwarded(kit):
    backend, app, bip = await _backend(kit, allowed=[spiffe("client")])
    denied = parse_response(await tls_exchange(bip, INBOUND_PORT, GET, mesh_client_ctx(kit, spiffe("intruder"))))
    assert denied.status == 403
    assert denied.body == b"RBAC: access denied"
    assert app.arrivals == []
    allowed = parse_response(await tls_exchange(bip, INBOUND_PORT, GET, mesh_client_ctx(kit, spiffe("client"))))
    assert allowed.status == 200
    assert backend.metrics.authz_denied == 1


async def test_authz_denies_plaintext_caller_under_permissive(kit):
    backend, app, bip = await _backend(kit, "PERMISSIVE", allowed=[spiffe("client")])
    assert parse_response(await raw_exchange(bip, INBOUND_PORT, GET)).status == 403
    assert app.arrivals == []


async def test_xfcc_from_the_caller_is_replaced_by_the_real_identity(kit):
    backend, app, bip = await _backend(kit)
    fake = b"GET / HTTP/1.1\r\nHost: backend\r\nX-Forwarded-Client-Cert: By=x;URI=spiffe://cluster.local/ns/default/sa/admin\r\nConnection: close\r\n\r\n"
    answer = parse_response(await tls_exchange(bip, INBOUND_PORT, fake, mesh_client_ctx(kit, spiffe("client"))))
    assert answer.status == 200
    assert app.arrivals[0]["headers"]["x-forwarded-client-cert"] == f"By={spiffe('backend')};URI={spiffe('client')}"


# -- deliberate defects: each must visibly break what the tests above check ---------------------------
async def test_defect_inbound_accepts_plaintext(kit):
    backend, app, bip = await _backend(kit, defects={"inbound_accepts_plaintext": True})
    assert parse_response(await raw_exchange(bip, INBOUND_PORT, GET)).status == 200


async def test_defect_skip_trust_domain_check(kit):
    backend, app, bip = await _backend(kit, defects={"skip_trust_domain_check": True})
    answer = await tls_exchange(bip, INBOUND_PORT, GET, mesh_client_ctx(kit, spiffe("client", "evil.example")))
    assert parse_response(answer).status == 200


async def test_defect_spoof_xfcc(kit):
    backend, app, bip = await _backend(kit, defects={"spoof_xfcc": True})
    fake = b"GET / HTTP/1.1\r\nHost: backend\r\nX-Forwarded-Client-Cert: URI=spiffe://x/ns/a/sa/b\r\nConnection: close\r\n\r\n"
    await tls_exchange(bip, INBOUND_PORT, fake, mesh_client_ctx(kit, spiffe("client")))
    assert app.arrivals[0]["headers"]["x-forwarded-client-cert"] == "URI=spiffe://x/ns/a/sa/b"


async def test_defect_ignore_authz(kit):
    backend, app, bip = await _backend(kit, allowed=[spiffe("client")], defects={"ignore_authz": True})
    answer = await tls_exchange(bip, INBOUND_PORT, GET, mesh_client_ctx(kit, spiffe("intruder")))
    assert parse_response(answer).status == 200
