"""TLS contexts of the sidecar and the SPIFFE identity of a peer.

Contexts are built once per certificate (``certs.CertificateStore`` rebuilds them on rotation), never
per connection. The peer's SPIFFE ID is read from its DER certificate with ``cryptography`` once per
connection, and the result is cached by DER bytes: pooled peers present the same certificate for its
whole lifetime, so the parse (~40 µs) is paid once per peer certificate, not per handshake.

Deliberate defects honoured here: ``inbound_cert_optional``, ``extra_trust``, ``ignore_cert_time``.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from typing import Any

from cryptography import x509

from meshproxy import defects as _defects
from meshproxy.defects import NONE, Defects

X509_V_FLAG_NO_CHECK_TIME = 0x200000


def server_context(cert_file: str, key_file: str, bundle_file: str,
                   defects: Defects = NONE) -> ssl.SSLContext:
    """The inbound listener's context: TLS 1.2+, a client certificate chained to the bundle required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    ctx.load_verify_locations(bundle_file)
    if defects.active("extra_trust"):
        ctx.load_verify_locations(str(defects.param("extra_trust")))
    if defects.active("ignore_cert_time"):
        ctx.verify_flags |= X509_V_FLAG_NO_CHECK_TIME
    ctx.verify_mode = ssl.CERT_OPTIONAL if defects.active("inbound_cert_optional") else ssl.CERT_REQUIRED
    return ctx


def client_context(cert_file: str, key_file: str, bundle_file: str) -> ssl.SSLContext:
    """The outbound side's context: presents the SVID; the server's SPIFFE ID is checked after the
    handshake (``peer_spiffe_id``), so host name checking is off."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(cert_file, key_file)
    ctx.load_verify_locations(bundle_file)
    return ctx


@lru_cache(maxsize=4096)
def spiffe_id_of(der: bytes) -> str | None:
    """The SPIFFE ID of a certificate: its only URI SAN if that is a spiffe:// URI, else None."""
    try:
        cert = x509.load_der_x509_certificate(der)
        uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
            .get_values_for_type(x509.UniformResourceIdentifier)
    except (ValueError, x509.ExtensionNotFound):
        return None
    if len(uris) > 1 and _defects.current().active("ca_two_uri_sans"):
        uris = uris[:1]  # the broken mesh's verifiers agree with its broken CA, so it still comes up
    if len(uris) != 1 or not uris[0].startswith("spiffe://"):
        return None
    return uris[0]


def trust_domain_of(spiffe_id: str) -> str:
    return spiffe_id[len("spiffe://"):].split("/", 1)[0]


def peer_spiffe_id(transport: Any) -> str | None:
    """The SPIFFE ID of the peer on a TLS transport (None: plaintext, no certificate, or no ID)."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return spiffe_id_of(der) if der else None
