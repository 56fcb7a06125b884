"""Helpers shared by the runtime tests: a small scenario and a request through a sidecar's outbound."""

import http.client
import json

from meshscenario import parse_scenario


def small_scenario(**extra):
    """client -> backend (one instance), STRICT mTLS: 2 workloads, so 5 processes."""
    return parse_scenario({"name": "small", "services": [{"name": "client"}, {"name": "backend"}],
                           "policies": [{"service": "backend", "mtls": {"mode": "STRICT"}}], **extra})


def get_through(outbound: str, host: str, path: str = "/", headers: dict | None = None, timeout: float = 5.0):
    """(status, headers, body) of a GET to a sidecar's outbound with Host = destination service."""
    ip, _, port = outbound.rpartition(":")
    conn = http.client.HTTPConnection(ip, int(port), timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def echo_json(body: bytes) -> dict:
    return json.loads(body)
