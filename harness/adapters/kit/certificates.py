"""The certificate a workload presents, read from a real TLS handshake with a harness-issued SVID."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from harness.adapters.kit.timeouts import HARNESS_SPIFFE_PATH
from harness.probes import client_context

Issuer = Callable[..., tuple[bytes, bytes]]  # MeshCertificates.issue_certificate


def workload_certificate(inbound: str, *, bundle_path: str, trust_domain: str, issue: Issuer,
                         timeout_s: float = 5.0) -> bytes:
    """PEM of the leaf ``inbound`` ("IP:PORT") presents to a client holding a harness SVID from ``issue``."""
    now = dt.datetime.now(dt.timezone.utc)
    cert_pem, key_pem = issue(f"spiffe://{trust_domain}{HARNESS_SPIFFE_PATH}",
                              not_before=now - dt.timedelta(minutes=1), not_after=now + dt.timedelta(minutes=10))
    host, _, port = inbound.rpartition(":")
    # the handshake's own error (e.g. "certificate has expired") propagates: it is the finding
    with socket.create_connection((host, int(port)), timeout=timeout_s) as raw:
        with client_context(bundle_path, cert_pem, key_pem).wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    if not der:
        raise RuntimeError(f"{inbound} presented no certificate to a client holding a harness SVID")
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)
