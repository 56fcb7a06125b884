"""Issue 15 on the control plane: authenticate before reading a body, bounded bodies and nesting, bad
input is a 4xx with a clear error (never 500), and a join token survives a failure on our side."""

import json

import pytest

from meshproxy import ca as _ca
from test_controlplane import ADMIN, SCENARIO, admin_headers, cp, http, join_token  # noqa: F401 (fixtures)

DEEP = b"[" * 30_000 + b"]" * 30_000  # 60 kB: under the size bound, far over any nesting bound


async def post(http, url, body: bytes, headers=None, content_type="application/json", method="POST"):
    async with http.request(method, url, data=body, headers={"Content-Type": content_type, **(headers or {})}) as resp:
        text = await resp.text()
        return resp.status, text


def _error(text: str) -> str:
    body = json.loads(text)
    return body.get("error") or "; ".join(e["message"] for e in body["errors"])


# -- authentication comes before the body ---------------------------------------------------------
@pytest.mark.parametrize("path", ["/v1/sign", "/v1/endpoints", "/v1/ack", "/v1/join-tokens"])
async def test_unauthenticated_bad_bodies_get_401_not_a_body_error(cp, http, path):
    for body in (DEEP, b"{not json", b"\xff\xfe"):
        status, text = await post(http, cp.url + path, body)
        assert status == 401, (path, status, text[:200])
    status, text = await post(http, cp.url + "/v1/sign", b"{}", content_type="application/json; charset=x-nosuch")
    assert status == 401, text


async def test_put_scenario_without_admin_is_refused_before_reading(cp, http):
    status, _ = await post(http, cp.url + "/v1/scenario", DEEP, method="PUT")
    assert status == 401


# -- bad bodies from authenticated callers are 4xx ---------------------------------------------------
async def test_deep_json_is_400_on_sign_and_the_token_survives(cp, http):
    token = await join_token(http, cp)
    bearer = {"Authorization": f"Bearer {token}"}
    status, text = await post(http, cp.url + "/v1/sign", DEEP, bearer)
    assert status == 400 and "nest" in _error(text), text[:300]
    status, text = await post(http, cp.url + "/v1/sign",
                              json.dumps({"csr": _ca.new_key_and_csr()[1].decode()}).encode(), bearer)
    assert status == 200, text


@pytest.mark.parametrize("path,method", [("/v1/join-tokens", "POST"), ("/v1/endpoints", "POST"),
                                         ("/v1/ack", "POST")])
async def test_deep_json_is_400_on_admin_calls(cp, http, path, method):
    status, text = await post(http, cp.url + path, DEEP, admin_headers(), method=method)
    assert status == 400 and "nest" in _error(text), text[:300]


async def test_deep_json_scenario_is_422_and_nothing_changes(cp, http):
    status, text = await post(http, cp.url + "/v1/scenario", DEEP, admin_headers(), method="PUT")
    assert status == 422 and "nest" in _error(text), text[:300]
    # nested within the bound but too deep for a scenario: still a clear 4xx
    status, text = await post(http, cp.url + "/v1/scenario", b'{"a":' * 40 + b"1" + b"}" * 40, admin_headers(),
                              method="PUT")
    assert status == 422, text
    assert cp.state.store.version == 0


@pytest.mark.parametrize("path,method", [("/v1/sign", "POST"), ("/v1/join-tokens", "POST"),
                                         ("/v1/endpoints", "POST"), ("/v1/scenario", "PUT")])
async def test_unknown_charset_is_415(cp, http, path, method):
    headers = admin_headers() if path != "/v1/sign" else {"Authorization": f"Bearer {await join_token(http, cp)}"}
    status, text = await post(http, cp.url + path, b"{}", headers, content_type="application/json; charset=x-nosuch",
                              method=method)
    assert status == 415 and "charset" in _error(text), text
    # UTF-8 spelled any way is fine
    status, _ = await post(http, cp.url + "/v1/join-tokens",
                           json.dumps({"workload": "backend-v1-0",
                                       "spiffe_id": "spiffe://cluster.local/ns/default/sa/backend"}).encode(),
                           admin_headers(), content_type="application/json; charset=UTF-8")
    assert status == 200


async def test_not_utf8_is_400(cp, http):
    status, text = await post(http, cp.url + "/v1/join-tokens", b'{"workload": "\xff"}', admin_headers())
    assert status == 400, text


async def test_bodies_are_bounded(cp, http):
    token = await join_token(http, cp)
    big = json.dumps({"csr": "x" * 200_000}).encode()
    status, text = await post(http, cp.url + "/v1/sign", big, {"Authorization": f"Bearer {token}"})
    assert status == 413, text
    status, text = await post(http, cp.url + "/v1/scenario", b" " * (2 * 1024 * 1024), admin_headers(), method="PUT")
    assert status == 413, text[:200]


@pytest.mark.parametrize("body", [{"csr": "x", "spiffe_id": ["a"]}, {"csr": "x", "spiffe_id": {"a": 1}},
                                  {"csr": ["x"]}, {"csr": 1}])
async def test_wrongly_typed_sign_fields_are_4xx(cp, http, body):
    token = await join_token(http, cp)
    body = dict(body)
    if body.get("csr") == "x":
        body["csr"] = _ca.new_key_and_csr()[1].decode()
    status, text = await post(http, cp.url + "/v1/sign", json.dumps(body).encode(), {"Authorization": f"Bearer {token}"})
    assert 400 <= status < 500, text


@pytest.mark.parametrize("query", ["wait=nan", "wait=inf", "after=nan", "wait=1e999"])
async def test_non_finite_query_numbers_are_400(cp, http, query):
    async with http.get(f"{cp.url}/v1/config?workload=backend-v1-0&{query}", headers=admin_headers()) as resp:
        assert resp.status == 400, await resp.text()
    async with http.get(f"{cp.url}/v1/wait?generation=1&timeout=nan", headers=admin_headers()) as resp:
        assert resp.status == 400, await resp.text()


async def test_nan_in_json_bodies_is_refused(cp, http):
    body = b'{"workload": "backend-v1-0", "spiffe_id": "spiffe://cluster.local/ns/default/sa/backend", "ttl_s": NaN}'
    status, text = await post(http, cp.url + "/v1/join-tokens", body, admin_headers())
    assert 400 <= status < 500, text


# -- 8. a failure on our side does not burn the caller's join token ---------------------------------------
async def test_join_token_survives_a_signing_failure(cp, http, monkeypatch):
    token = await join_token(http, cp)
    bearer = {"Authorization": f"Bearer {token}"}
    body = json.dumps({"csr": _ca.new_key_and_csr()[1].decode()}).encode()

    def broken(*args, **kwargs):
        raise RuntimeError("CA key unavailable")

    monkeypatch.setattr(cp.state.ca, "issue_svid", broken)
    status, text = await post(http, cp.url + "/v1/sign", body, bearer)
    assert status >= 500 and "sign" in _error(text), text
    monkeypatch.undo()
    status, text = await post(http, cp.url + "/v1/sign", body, bearer)
    assert status == 200, text
    status, text = await post(http, cp.url + "/v1/sign", body, bearer)
    assert status == 401 and "already used" in _error(text)  # and it is still one-time


# -- 6. a scenario with non-finite or absurd numbers is 422 naming the field, and nothing changes -----------
@pytest.mark.parametrize("raw,field", [
    (b'"cert_ttl": NaN', "cert_ttl"), (b'"cert_ttl": 1e999', "cert_ttl"), (b'"cert_ttl": "9999999999h"', "cert_ttl"),
    (b'"routes": [{"destination": "backend", "timeout": NaN}]', "routes.0.timeout"),
    (b'"routes": [{"destination": "backend", "timeout": Infinity}]', "routes.0.timeout"),
])
async def test_scenario_with_bad_numbers_is_422_and_the_stored_one_stays(cp, http, raw, field):
    good = json.dumps(SCENARIO).encode()
    status, text = await post(http, cp.url + "/v1/scenario", good, admin_headers(), method="PUT")
    assert status == 200, text
    version, generation = cp.state.store.version, cp.state.generation.value
    bad = {k: v for k, v in SCENARIO.items() if k not in ("cert_ttl", "routes")}
    body = json.dumps(bad).encode()[:-1] + b", " + raw + b"}"
    status, text = await post(http, cp.url + "/v1/scenario", body, admin_headers(), method="PUT")
    assert status == 422, text
    assert [e["field"] for e in json.loads(text)["errors"]] == [field]
    assert (cp.state.store.version, cp.state.generation.value) == (version, generation)
    assert cp.state.cert_ttl == 120.0  # the stored scenario's "2m" is still in effect
    token = await join_token(http, cp)
    status, text = await post(http, cp.url + "/v1/sign", json.dumps({"csr": _ca.new_key_and_csr()[1].decode()}).encode(),
                              {"Authorization": f"Bearer {token}"})
    assert status == 200, text


# -- 7. read timeouts and a connection cap on the control plane's listener -------------------------------
@pytest.fixture
async def tight_cp(tmp_path):
    from meshproxy.controlplane.server import Settings, start_controlplane
    from meshproxy.httpguard import ListenerLimits
    from test_controlplane import TD, random_ip

    running = await start_controlplane(Settings(random_ip(), 0, tmp_path / "state", TD, ADMIN, defects={},
                                                limits=ListenerLimits(0.4, 0.4, 3)))
    yield running
    await running.stop()


async def _tls_closed_after(cp, data: bytes, timeout: float = 5.0):
    import asyncio

    from meshproxy.cpclient import client_ssl_context

    loop = asyncio.get_running_loop()
    host = cp.url.split("//")[1].rsplit(":", 1)[0]
    reader, writer = await asyncio.open_connection(host, cp.port, ssl=client_ssl_context(cp.bundle_path),
                                                   server_hostname=host)
    started = loop.time()
    writer.write(data)
    chunks = []
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return loop.time() - started, b"".join(chunks)


async def test_controlplane_slow_headers_get_408(tight_cp):
    elapsed, raw = await _tls_closed_after(tight_cp, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    assert 0.3 <= elapsed < 2.0 and raw.startswith(b"HTTP/1.1 408"), (elapsed, raw)


async def test_controlplane_idle_declared_body_is_closed(tight_cp):
    elapsed, _ = await _tls_closed_after(
        tight_cp, b"POST /v1/join-tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ADMIN.encode()
        + b"\r\nContent-Length: 100\r\n\r\n{")
    assert 0.3 <= elapsed < 2.0, elapsed


async def test_controlplane_plain_tcp_that_never_handshakes_is_closed(tight_cp):
    import asyncio

    host = tight_cp.url.split("//")[1].rsplit(":", 1)[0]
    reader, writer = await asyncio.open_connection(host, tight_cp.port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(5):
            await reader.read()
    finally:
        writer.close()
    assert loop.time() - started < 2.0


async def test_controlplane_connections_are_capped(tight_cp):
    import asyncio

    from meshproxy.cpclient import client_ssl_context

    host = tight_cp.url.split("//")[1].rsplit(":", 1)[0]
    ctx = client_ssl_context(tight_cp.bundle_path)
    held = [await asyncio.open_connection(host, tight_cp.port, ssl=ctx, server_hostname=host) for _ in range(3)]
    try:
        elapsed, raw = await _tls_closed_after(tight_cp, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=2)
        assert raw == b"" and elapsed < 1.0
    finally:
        for _, writer in held:
            writer.close()
    for _ in range(100):
        elapsed, raw = await _tls_closed_after(tight_cp, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        if raw:
            break
        await asyncio.sleep(0.02)  # the server notices the closed connections
    assert raw.startswith(b"HTTP/1.1 200")
