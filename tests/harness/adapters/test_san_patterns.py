"""The URI SAN patterns find exactly one SPIFFE ID in real certificates, in hex (HAProxy) and PEM (nginx)."""

from __future__ import annotations

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from fixtures.certs import ForeignCA
from harness.adapters.thirdparty.san_patterns import (der_hex, der_pem_text, hex_pattern, pem_pattern,
                                                      uri_prefix_bytes, uri_san_bytes)

CLIENT = "spiffe://cluster.local/ns/default/sa/client"


def _der(spiffe_id: str) -> bytes:
    cert_pem, _ = ForeignCA().issue_svid(spiffe_id)
    return x509.load_pem_x509_certificate(cert_pem).public_bytes(Encoding.DER)


@pytest.mark.parametrize("spiffe_id,want", [
    (CLIENT, True),
    (CLIENT + "2", False),  # a longer ID sharing the prefix
    (CLIENT[:-1], False),  # a shorter one
    ("spiffe://cluster.local/ns/other/sa/client", False),
    ("spiffe://evil.example/ns/default/sa/client", False),
])
def test_exact_id(spiffe_id, want):
    der = _der(spiffe_id)
    pattern = uri_san_bytes(CLIENT)
    assert bool(re.search(hex_pattern(pattern), der_hex(der))) is want
    assert bool(re.search(pem_pattern(pattern), der_pem_text(der))) is want


@pytest.mark.parametrize("spiffe_id,want", [
    (CLIENT, True), ("spiffe://cluster.local/ns/x/sa/y", True),
    ("spiffe://evil.example/ns/default/sa/client", False), ("spiffe://cluster.localx/ns/a/sa/b", False),
])
def test_trust_domain(spiffe_id, want):
    der = _der(spiffe_id)
    pattern = uri_prefix_bytes("spiffe://cluster.local/")
    assert bool(re.search(hex_pattern(pattern), der_hex(der))) is want
    assert bool(re.search(pem_pattern(pattern), der_pem_text(der))) is want


def test_pem_pattern_matches_at_every_alignment():
    """The same bytes at offsets 0, 1 and 2 mod 3 (three different base64 renderings) all match."""
    target = bytes(uri_san_bytes(CLIENT))
    for lead in range(6):
        data = b"\x30" * lead + target + b"\x00" * 5
        assert re.search(pem_pattern(list(target)), der_pem_text(data)), lead
        assert not re.search(pem_pattern(list(target)), der_pem_text(data.replace(b"client", b"clienT")))
