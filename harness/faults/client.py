"""The harness's client of a fault service (``meshconform faults serve`` or Toxiproxy itself): leases.

    service = FaultServiceClient("http://127.0.0.1:8474")
    with service.proxy("backend", upstream="127.0.1.5:15006") as hop:     # removed when the block ends
        with service.toxic("backend", "latency", {"latency": 100}):        # and this one too
            ...   # traffic through hop.listen

Every proxy and toxic it creates carries ``X-Meshconform-Owner`` (this process's owner token), so the
service removes it if this process dies before the block ends (kill -9 included); a plain Toxiproxy
ignores the header and the blocks still remove what they made. Errors are :class:`FaultServiceError`
with Toxiproxy's status and message.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import urllib3

from harness.faults.service import OWNER_HEADER
from meshruntime.processes import owner_token


class FaultServiceError(Exception):
    def __init__(self, status: int, message: str, method: str, path: str):
        super().__init__(f"{method} {path}: {status} {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Hop:
    name: str
    listen: str  # "IP:PORT" where clients connect
    upstream: str


class FaultServiceClient:
    def __init__(self, url: str, *, timeout_s: float = 10.0, owner: str | None = None):
        self.url = url.rstrip("/")
        self._http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout_s), retries=False)
        self.owner = owner or owner_token()

    def request(self, method: str, path: str, body: Any = None, *, owned: bool = False) -> Any:
        headers = {"Content-Type": "application/json", "User-Agent": "meshconform"}
        if owned:
            headers[OWNER_HEADER] = self.owner
        response = self._http.request(method, self.url + path, headers=headers,
                                      body=None if body is None else json.dumps(body).encode())
        data = response.data
        if response.status >= 300:
            try:
                message = json.loads(data)["error"]
            except (ValueError, KeyError, TypeError):
                message = data.decode(errors="replace").strip()
            raise FaultServiceError(response.status, message, method, path)
        return json.loads(data) if data else None

    # -- Toxiproxy's API -----------------------------------------------------------------------------------
    def version(self) -> str:
        return self.request("GET", "/version")["version"]

    def proxies(self) -> dict[str, Any]:
        return self.request("GET", "/proxies")

    def create_proxy(self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True) -> Hop:
        made = self.request("POST", "/proxies", {"name": name, "upstream": upstream, "listen": listen,
                                                 "enabled": enabled}, owned=True)
        return Hop(made["name"], made["listen"], made["upstream"])

    def set_enabled(self, name: str, enabled: bool) -> None:
        self.request("PATCH", f"/proxies/{name}", {"enabled": enabled})

    def delete_proxy(self, name: str) -> None:
        self.request("DELETE", f"/proxies/{name}")

    def add_toxic(self, proxy: str, kind: str, attributes: Mapping[str, float] | None = None, *,
                  stream: str | None = None, toxicity: float = 1.0, name: str | None = None) -> str:
        body: dict[str, Any] = {"type": kind, "attributes": dict(attributes or {}), "toxicity": toxicity}
        if stream is not None:
            body["stream"] = stream
        if name is not None:
            body["name"] = name
        return self.request("POST", f"/proxies/{proxy}/toxics", body, owned=True)["name"]

    def remove_toxic(self, proxy: str, name: str) -> None:
        self.request("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def reset(self) -> None:
        self.request("POST", "/reset")

    # -- leases ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def proxy(self, name: str, upstream: str, listen: str = "127.0.0.1:0") -> Iterator[Hop]:
        """A proxy for the block: deleted on any exit (a proxy already gone is not an error)."""
        hop = self.create_proxy(name, upstream, listen)
        try:
            yield hop
        finally:
            self._gone_ok(self.delete_proxy, name)

    @contextlib.contextmanager
    def toxic(self, proxy: str, kind: str, attributes: Mapping[str, float] | None = None,
              **options: Any) -> Iterator[str]:
        """A toxic for the block: removed on any exit."""
        name = self.add_toxic(proxy, kind, attributes, **options)
        try:
            yield name
        finally:
            self._gone_ok(self.remove_toxic, proxy, name)

    @staticmethod
    def _gone_ok(remove: Any, *args: str) -> None:
        try:
            remove(*args)
        except FaultServiceError as exc:
            if exc.status != 404:
                raise

    def close(self) -> None:
        self._http.clear()
