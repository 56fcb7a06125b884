"""Bytes between two sidecars are TLS: a tap on that hop sees a handshake and never the plaintext."""

from __future__ import annotations

import uuid

from harness.adapters.base import HopInterposer, HttpRequest
from harness.checks import conformance
from harness.faults.hop import proxy_on_hop
from harness.features import Feature, Level, Profile

from ..conftest import require
from ._support import BACKEND, CLIENT, KEY_HEADER

REQUESTS = 20


@conformance(
    short_name="MeshWireIsEncrypted",
    description=f"With a tap on the client → backend hop, {REQUESTS} requests carrying a random "
                "plaintext marker in header and body all succeed through the tap; every connection on "
                "the hop starts with a TLS ClientHello, and the marker never appears in either direction.",
    features=[Feature.WIRE_ENCRYPTION], profile=Profile.SECURITY, level=Level.CORE)
def test_wire_is_tls(mesh, security_mesh, key, evidence):
    require(mesh, HopInterposer, "put a tap on the sidecar-to-sidecar hop")
    marker = f"meshconform-plaintext-{uuid.uuid4().hex}".encode()
    with proxy_on_hop(mesh, BACKEND) as proxy:
        tap = proxy.tap()
        statuses = [mesh.send(CLIENT, HttpRequest(method="POST", host="backend", body=marker,
                                                  headers={KEY_HEADER: key, "x-marker": marker.decode()})).status
                    for _ in range(REQUESTS)]
        streams = tap.streams()
        evidence["statuses"] = sorted(set(s or 0 for s in statuses))
        evidence.measure("tapped_connections", len(tap.streams("upstream")))
        evidence.measure("tapped_bytes", sum(len(s) for s in streams), unit="bytes")
        assert statuses.count(200) == REQUESTS, f"requests through the tapped hop failed: {statuses}"
        assert streams, "no bytes crossed the tap: the mesh did not route through the interposed hop"
        assert tap.all_tls(), "a connection on the sidecar-to-sidecar hop did not start with a TLS ClientHello"
        assert not tap.contains(marker), "the plaintext marker crossed the sidecar-to-sidecar hop in clear"
