"""Clients of the control plane API (docs/architecture.md): async for sidecars, sync for the runtime.

Both verify the control plane's certificate against the trust bundle file and check its name: the
control plane's certificate carries an IP SAN for its listen address, and Python's ssl matches an IP
literal in the URL against it.

- :class:`AsyncControlPlaneClient` (aiohttp) is what a sidecar uses: ``sign`` (join token first,
  then its SVID), ``register``, ``config`` (long-poll), ``ack``, ``deregister``. After a renewal,
  ``set_client_identity`` switches to the new certificate; requests already in flight finish on the old
  connection.
- :class:`ControlPlaneClient` (urllib, blocking) is what the runtime and adapters use for admin calls.

Errors: :class:`ControlPlaneError` (``status``, ``message``) and its kinds: :class:`ControlPlaneUnavailable`
(no answer: down, refused, TLS failure, timeout), :class:`RegisterFirst` (409: the control plane
restarted and forgot this workload; register again), :class:`ScenarioRejected` (422, ``errors`` name the
fields), :class:`NotInEffect` (504 from ``wait_generation``, ``lagging`` names the workloads).
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Mapping

import aiohttp


class ControlPlaneError(Exception):
    def __init__(self, status: int | None, message: str, body: Any = None):
        self.status, self.message, self.body = status, message, body
        super().__init__(f"control plane: {status or 'no answer'}: {message}")


class ControlPlaneUnavailable(ControlPlaneError):
    def __init__(self, message: str):
        super().__init__(None, message)


class RegisterFirst(ControlPlaneError):
    pass


class ScenarioRejected(ControlPlaneError):
    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__(422, "; ".join(f"{e.get('field')}: {e.get('message')}" for e in errors),
                         {"errors": errors})


class NotInEffect(ControlPlaneError, TimeoutError):
    def __init__(self, message: str, body: dict):
        self.lagging: list[str] = body.get("lagging", [])
        super().__init__(504, message, body)


def _error_for(status: int, body: Any) -> ControlPlaneError:
    if status == 422 and isinstance(body, dict) and "errors" in body:
        return ScenarioRejected(body["errors"])
    message = body.get("error", str(body)) if isinstance(body, dict) else str(body)
    if status == 409:
        return RegisterFirst(status, message, body)
    if status == 504 and isinstance(body, dict):
        return NotInEffect(message, body)
    return ControlPlaneError(status, message, body)


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw.decode(errors="replace")


def client_ssl_context(bundle_path: str | Path,
                       client_cert: tuple[bytes, bytes] | None = None) -> ssl.SSLContext:
    """TLS 1.2+ trusting only the bundle, hostname (IP) checked; optionally with a client SVID."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(bundle_path))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert is not None:
        cert_pem, key_pem = client_cert
        # ssl only loads certificates from files: a private directory, removed right after loading.
        with tempfile.TemporaryDirectory(prefix="meshproxy-svid-") as tmp:
            cert_path, key_path = Path(tmp, "svid.pem"), Path(tmp, "svid-key.pem")
            cert_path.write_bytes(cert_pem)
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key_pem)
            ctx.load_cert_chain(cert_path, key_path)
    return ctx


class _Session:
    """One aiohttp session per client identity, closed once retired and idle."""

    def __init__(self, ctx: ssl.SSLContext):
        self.ctx = ctx
        self.http: aiohttp.ClientSession | None = None
        self.in_flight = 0

    def open(self) -> aiohttp.ClientSession:
        if self.http is None:
            self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ctx, limit=16))
        return self.http

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
            self.http = None


class AsyncControlPlaneClient:
    """Sidecar-side client. ``client_cert`` is ``(cert_pem, key_pem)`` of the workload's SVID."""

    def __init__(self, url: str, bundle_path: str | Path, *, admin_token: str | None = None,
                 client_cert: tuple[bytes, bytes] | None = None, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.bundle_path = Path(bundle_path)
        self.admin_token = admin_token
        self.timeout = timeout
        self._session = _Session(client_ssl_context(self.bundle_path, client_cert))
        self._retired: list[_Session] = []

    def set_client_identity(self, cert_pem: bytes, key_pem: bytes) -> None:
        """Use this SVID for new requests; in-flight ones finish on their old connections."""
        self._retired.append(self._session)
        self._session = _Session(client_ssl_context(self.bundle_path, (cert_pem, key_pem)))

    async def close(self) -> None:
        for session in [*self._retired, self._session]:
            await session.close()
        self._retired.clear()

    async def __aenter__(self) -> "AsyncControlPlaneClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _request(self, method: str, path: str, *, body: Any = None, params: Mapping | None = None,
                       bearer: str | None = None, timeout: float | None = None) -> Any:
        for old in [s for s in self._retired if s.in_flight == 0]:
            self._retired.remove(old)
            await old.close()
        session = self._session
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        session.in_flight += 1
        try:
            async with session.open().request(
                    method, self.url + path, json=body, params=params, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout or self.timeout)) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            raise ControlPlaneUnavailable(f"{method} {path}: {exc!r}") from exc
        finally:
            session.in_flight -= 1
            if session is not self._session and session.in_flight == 0 and session in self._retired:
                self._retired.remove(session)
                await session.close()
        if status >= 400:
            raise _error_for(status, _decode(raw))
        return _decode(raw)

    # -- workload calls ----------------------------------------------------------------------------
    async def sign(self, csr_pem: bytes | str, join_token: str | None = None) -> dict:
        """``{"certificate", "chain", "bundle", "not_after", "serial"}``; the join token on first sign,
        the client SVID (``set_client_identity``) on renewal."""
        csr = csr_pem.decode() if isinstance(csr_pem, bytes) else csr_pem
        return await self._request("POST", "/v1/sign", body={"csr": csr}, bearer=join_token)

    async def register(self, workload: str, *, service: str, namespace: str, version: str, instance: int,
                       address: str) -> dict:
        return await self._request("POST", "/v1/endpoints", bearer=self.admin_token, body={
            "workload": workload, "service": service, "namespace": namespace, "version": version,
            "instance": instance, "address": address})

    async def config(self, workload: str, after: int = -1, wait: float = 0.0) -> dict:
        """Long-poll: returns when the generation differs from ``after``, or after ``wait`` s.
        Raises RegisterFirst when the control plane does not know the workload (it restarted)."""
        return await self._request("GET", "/v1/config", bearer=self.admin_token,
                                   params={"workload": workload, "after": str(after), "wait": str(wait)},
                                   timeout=wait + self.timeout)

    async def ack(self, workload: str, generation: int, version: int) -> None:
        await self._request("POST", "/v1/ack", bearer=self.admin_token,
                            body={"workload": workload, "generation": generation, "version": version})

    async def deregister(self, workload: str) -> None:
        await self._request("DELETE", f"/v1/endpoints/{urllib.parse.quote(workload)}", bearer=self.admin_token)

    async def get_scenario(self) -> dict:
        return await self._request("GET", "/v1/scenario", bearer=self.admin_token)

    async def bundle(self) -> bytes:
        text = await self._request("GET", "/v1/bundle")
        return text.encode() if isinstance(text, str) else text


class ControlPlaneClient:
    """Blocking admin client (runtime, adapters, CLI)."""

    def __init__(self, url: str, bundle_path: str | Path, *, admin_token: str | None = None,
                 timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.admin_token = admin_token
        self.timeout = timeout
        self._ctx = client_ssl_context(bundle_path)

    def _request(self, method: str, path: str, *, body: Any = None, params: Mapping | None = None,
                 timeout: float | None = None) -> Any:
        url = self.url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.admin_token:
            request.add_header("Authorization", f"Bearer {self.admin_token}")
        try:
            with urllib.request.urlopen(request, context=self._ctx, timeout=timeout or self.timeout) as resp:
                return _decode(resp.read())
        except urllib.error.HTTPError as exc:
            raise _error_for(exc.code, _decode(exc.read())) from None
        except (urllib.error.URLError, TimeoutError, ssl.SSLError, OSError) as exc:
            raise ControlPlaneUnavailable(f"{method} {path}: {exc!r}") from exc

    def healthz(self) -> bool:
        """True if the control plane answers ``/healthz``; False if it cannot be reached."""
        try:
            return self._request("GET", "/healthz", timeout=min(self.timeout, 2.0)).get("ok") is True
        except ControlPlaneError:
            return False

    def bundle(self) -> bytes:
        text = self._request("GET", "/v1/bundle")
        return text.encode() if isinstance(text, str) else text

    def create_join_token(self, workload: str, spiffe_id: str, ttl_s: float | None = None) -> str:
        body: dict[str, Any] = {"workload": workload, "spiffe_id": spiffe_id}
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        return self._request("POST", "/v1/join-tokens", body=body)["token"]

    def put_scenario(self, scenario: Mapping[str, Any]) -> int:
        """Store a scenario (a mapping, or a ``Scenario``); returns its version. Raises ScenarioRejected."""
        if hasattr(scenario, "model_dump"):
            from meshscenario import dump_scenario
            scenario = dump_scenario(scenario)  # type: ignore[arg-type]
        return self._request("PUT", "/v1/scenario", body=dict(scenario))["version"]

    def get_scenario(self) -> dict:
        return self._request("GET", "/v1/scenario")

    def status(self) -> dict:
        return self._request("GET", "/v1/status")

    def wait_generation(self, generation: int, timeout: float) -> dict:
        """Block until every registered workload acked ``generation``; returns the status.
        Raises NotInEffect (a TimeoutError) after ``timeout`` seconds."""
        return self._request("GET", "/v1/wait", params={"generation": generation, "timeout": timeout},
                             timeout=timeout + self.timeout)

    def override_endpoint(self, workload: str, address: str, *, service: str, namespace: str,
                          version: str, instance: int) -> dict:
        """Point traffic for ``workload`` at ``address`` (e.g. a fault proxy), whatever it registers."""
        return self._request("POST", "/v1/endpoints", body={
            "workload": workload, "service": service, "namespace": namespace, "version": version,
            "instance": instance, "address": address})

    def deregister(self, workload: str) -> dict:
        return self._request("DELETE", f"/v1/endpoints/{urllib.parse.quote(workload)}")
