"""The certificate a workload presents, read from a real TLS handshake with a harness-issued SVID."""

from __future__ import annotations

import datetime as dt
from typing import Callable

from cryptography.hazmat.primitives.serialization import Encoding

from harness.adapters.kit.timeouts import HARNESS_SPIFFE_PATH
from harness.probes import client_context, presented_certificate

Issuer = Callable[..., tuple[bytes, bytes]]  # MeshCertificates.issue_certificate


def workload_certificate(inbound: str, *, bundle_path: str, trust_domain: str, issue: Issuer,
                         timeout_s: float = 5.0) -> bytes:
    """PEM of the leaf ``inbound`` ("IP:PORT") presents to a client holding a harness SVID from ``issue``."""
    now = dt.datetime.now(dt.timezone.utc)
    cert_pem, key_pem = issue(f"spiffe://{trust_domain}{HARNESS_SPIFFE_PATH}",
                              not_before=now - dt.timedelta(minutes=1), not_after=now + dt.timedelta(minutes=10))
    leaf = presented_certificate(inbound, client_context(bundle_path, cert_pem, key_pem), timeout_s)
    if leaf is None:
        raise RuntimeError(f"{inbound} presented no certificate to a client holding a harness SVID")
    return leaf.public_bytes(Encoding.PEM)
