"""What makes a certificate a valid X.509-SVID (SPIFFE X509-SVID spec, SPEC §6), as a list of problems.

An empty list means valid. Each problem is one sentence naming the defect, so a failing check's reason
says exactly what is wrong ("2 URI SANs, want exactly 1", "leaf is a CA", ...).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

# Issuers back-date not_before a little against clock skew; allow that much on top of the TTL.
TTL_SKEW = timedelta(seconds=60)


def uri_sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return ext.value.get_values_for_type(x509.UniformResourceIdentifier)


def svid_problems(cert: x509.Certificate, *, bundle: Sequence[x509.Certificate], expected_id: str | None,
                  max_ttl: timedelta | None) -> list[str]:
    problems: list[str] = []
    uris = uri_sans(cert)
    if len(uris) != 1:
        problems.append(f"{len(uris)} URI SANs ({', '.join(uris) or 'none'}), want exactly 1")
    elif not uris[0].startswith("spiffe://"):
        problems.append(f"URI SAN {uris[0]!r} is not a SPIFFE ID")
    elif expected_id is not None and uris[0] != expected_id:
        problems.append(f"URI SAN is {uris[0]!r}, want the workload's ID {expected_id!r}")

    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if bc.ca:
            problems.append("leaf is a CA (basicConstraints cA=true)")
    except x509.ExtensionNotFound:
        pass  # absent means cA=false

    try:
        ku_ext = cert.extensions.get_extension_for_class(x509.KeyUsage)
        ku = ku_ext.value
        if not ku.digital_signature:
            problems.append("keyUsage lacks digitalSignature")
        if ku.key_cert_sign or ku.crl_sign:
            problems.append("keyUsage has keyCertSign/cRLSign on a leaf")
        if not ku_ext.critical:
            problems.append("keyUsage is not critical")
    except x509.ExtensionNotFound:
        problems.append("no keyUsage extension")

    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        for oid, name in ((ExtendedKeyUsageOID.SERVER_AUTH, "serverAuth"),
                          (ExtendedKeyUsageOID.CLIENT_AUTH, "clientAuth")):
            if oid not in eku:
                problems.append(f"extendedKeyUsage lacks {name}")
    except x509.ExtensionNotFound:
        pass  # SPIFFE allows absence; then any use is allowed

    if max_ttl is not None:
        ttl = cert.not_valid_after_utc - cert.not_valid_before_utc
        if ttl > max_ttl + TTL_SKEW:
            problems.append(f"lifetime {ttl.total_seconds():.0f}s exceeds the configured "
                            f"{max_ttl.total_seconds():.0f}s (+{TTL_SKEW.total_seconds():.0f}s skew)")

    if not any(_signed_by(cert, issuer) for issuer in bundle):
        problems.append("does not chain to the mesh trust bundle")
    return problems


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    key = issuer.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                       cert.signature_hash_algorithm)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def load_bundle(path: str) -> list[x509.Certificate]:
    with open(path, "rb") as fh:
        return x509.load_pem_x509_certificates(fh.read())
