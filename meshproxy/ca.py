"""The mesh CA: one EC P-256 root per trust domain that issues X.509-SVIDs (SPEC §6).

An SVID here has exactly one URI SAN (the SPIFFE ID ``spiffe://<td>/ns/<ns>/sa/<sa>``), is not a CA
(BasicConstraints cA=false, critical), may only sign (KeyUsage digitalSignature, critical), serves and
authenticates (EKU serverAuth + clientAuth), carries subject and authority key identifiers and a random
serial, starts 30 s in the past to absorb clock skew and ends at ``now + ttl`` but never after the root.
The subject CN is the workload name when one is given, so a workload's certificate names the workload
it was issued to (the control plane relies on it after a restart).

On disk (``load_or_create``): ``ca-key.pem`` (mode 0600), ``ca.pem`` (the root) and ``bundle.pem``
(what peers trust: the root, one or more PEMs). The root lives 10 years.

Deliberate defects (``meshproxy.defects``) make the CA mis-issue on request: ``ca_two_uri_sans``,
``ca_leaf_is_ca``, ``ca_ttl_multiplier``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshproxy import defects as _defects
from meshproxy.files import write_file_atomically  # noqa: F401  (re-exported: callers import it from here)

CLOCK_SKEW = dt.timedelta(seconds=30)
ROOT_LIFETIME = dt.timedelta(days=3650)
CONTROLPLANE_PATH = "/ns/meshconform-system/sa/controlplane"

_SEGMENT = r"[A-Za-z0-9._-]+"
_SPIFFE_ID = re.compile(rf"^spiffe://([a-z0-9]([-a-z0-9.]*[a-z0-9])?)/ns/({_SEGMENT})/sa/({_SEGMENT})$")

PrivateKey = ec.EllipticCurvePrivateKey


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def validate_spiffe_id(spiffe_id: str, trust_domain: str) -> None:
    """Raise ValueError unless ``spiffe_id`` is ``spiffe://<trust_domain>/ns/<ns>/sa/<sa>``."""
    match = _SPIFFE_ID.match(spiffe_id or "")
    if not match:
        raise ValueError(f"{spiffe_id!r} is not a SPIFFE ID of the form spiffe://<td>/ns/<ns>/sa/<sa>")
    if match.group(1) != trust_domain:
        raise ValueError(f"{spiffe_id!r} is not in trust domain {trust_domain!r}")


def controlplane_spiffe_id(trust_domain: str) -> str:
    return f"spiffe://{trust_domain}{CONTROLPLANE_PATH}"


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: Any) -> bytes:
    """Unencrypted PKCS#8 PEM of a private key."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_cert(pem_or_der: bytes) -> x509.Certificate:
    if pem_or_der.lstrip().startswith(b"-----"):
        return x509.load_pem_x509_certificate(pem_or_der)
    return x509.load_der_x509_certificate(pem_or_der)


def uri_sans(cert: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def parse_spiffe_id(cert: x509.Certificate) -> str | None:
    """The certificate's SPIFFE ID: its single URI SAN, or None unless there is exactly one."""
    uris = uri_sans(cert)
    if len(uris) > 1 and _defects.current().active("ca_two_uri_sans"):
        uris = uris[:1]  # the broken mesh's verifiers agree with its broken CA, so it still comes up
    return uris[0] if len(uris) == 1 and uris[0].startswith("spiffe://") else None


def workload_of(cert: x509.Certificate) -> str | None:
    """The workload name an SVID was issued to (its subject CN), if any."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def new_key_and_csr(spiffe_id: str | None = None) -> tuple[PrivateKey, bytes]:
    """A fresh P-256 key and a PEM CSR signed by it (what a sidecar sends to ``/v1/sign``).

    The CSR may name the SPIFFE ID it hopes for; the CA ignores the CSR's names for identity (it comes
    from the join token or the client certificate) but the control plane refuses a CSR asking for a
    different identity than the caller has.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshconform")]))
    if spiffe_id:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.PEM)


class CertificateAuthority:
    """Issues X.509-SVIDs for one trust domain. Build with :meth:`load_or_create` or :meth:`create`."""

    def __init__(self, key: PrivateKey, cert: x509.Certificate, trust_domain: str,
                 *, defects: Mapping[str, Any] | None = None):
        self.key = key
        self.cert = cert
        self.trust_domain = trust_domain
        self._defects = defects

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def create(cls, trust_domain: str, *, defects: Mapping[str, Any] | None = None) -> "CertificateAuthority":
        """A new root in memory (10 years, P-256, URI SAN ``spiffe://<trust_domain>``)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshconform"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"meshconform CA {trust_domain}"[:64]),
        ])
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + ROOT_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            # SPIFFE allows a trust domain URI on signing certificates; it lets load_or_create
            # notice a state directory that belongs to another trust domain.
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert, trust_domain, defects=defects)

    @classmethod
    def load_or_create(cls, state_dir: Path, trust_domain: str,
                       *, defects: Mapping[str, Any] | None = None) -> "CertificateAuthority":
        """Load ``state_dir/ca-key.pem`` + ``ca.pem``, or create and store them; (re)write bundle.pem.

        Raises ValueError if the stored root belongs to another trust domain.
        """
        state_dir = Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        key_path, cert_path = state_dir / "ca-key.pem", state_dir / "ca.pem"
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            stored_td = [u.removeprefix("spiffe://") for u in uri_sans(cert)]
            if stored_td and trust_domain not in stored_td:
                raise ValueError(f"the CA in {state_dir} is for trust domain {stored_td[0]!r}, "
                                 f"not {trust_domain!r}")
            ca = cls(key, cert, trust_domain, defects=defects)
        else:
            ca = cls.create(trust_domain, defects=defects)
            write_file_atomically(key_path, key_pem(ca.key), 0o600)
            write_file_atomically(cert_path, cert_pem(ca.cert), 0o644)
        write_file_atomically(state_dir / "bundle.pem", ca.bundle_pem(), 0o644)
        return ca

    # -- issuing ---------------------------------------------------------------------------------
    @property
    def defects(self) -> Mapping[str, Any]:
        return _defects.Defects.of(self._defects) if self._defects is not None else _defects.current()

    def bundle_pem(self) -> bytes:
        """The trust bundle: every root a peer should trust (one here)."""
        return cert_pem(self.cert)

    def issue_svid(self, spiffe_id: str, public_key: Any, *, ttl: float,
                   not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
                   extra_ip_sans: Iterable[str | ipaddress.IPv4Address | ipaddress.IPv6Address] = (),
                   workload: str | None = None) -> x509.Certificate:
        """An X.509-SVID for ``spiffe_id`` over ``public_key``, valid ``ttl`` seconds (capped by the root).

        ``not_before`` / ``not_after`` override the validity window exactly (tests make expired and
        not-yet-valid SVIDs with them). ``extra_ip_sans`` adds IP SANs (the control plane's serving
        certificate). ``workload`` becomes the subject CN. Raises ValueError for a SPIFFE ID outside
        this trust domain or not of the form ``spiffe://<td>/ns/<ns>/sa/<sa>``, or ``ttl <= 0``.
        """
        validate_spiffe_id(spiffe_id, self.trust_domain)
        defects = self.defects
        ttl = float(ttl) * float(defects.param("ca_ttl_multiplier", 1) or 1)
        if ttl <= 0 and not_after is None:
            raise ValueError("ttl must be positive")
        now = _now()
        start = not_before or now - CLOCK_SKEW
        end = not_after or min(now + dt.timedelta(seconds=ttl), self.cert.not_valid_after_utc)
        if end <= start:
            raise ValueError("not_after must be later than not_before")

        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(spiffe_id)]
        if defects.active("ca_two_uri_sans"):
            sans.append(x509.UniformResourceIdentifier(
                f"spiffe://{self.trust_domain}/ns/meshconform-system/sa/second-identity"))
        sans += [x509.IPAddress(ipaddress.ip_address(str(ip))) for ip in extra_ip_sans]

        is_ca = bool(defects.active("ca_leaf_is_ca"))
        subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshconform")]
        if workload:
            subject.append(x509.NameAttribute(NameOID.COMMON_NAME, workload[:64]))
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=is_ca, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
