"""The mesh CA issues X.509-SVIDs per SPEC §6, stores its key privately, and mis-issues only on request."""

import datetime as dt
import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from meshproxy.ca import (
    CertificateAuthority, cert_pem, load_cert, new_key_and_csr, parse_spiffe_id, workload_of,
)

TD = "cluster.local"
BACKEND = f"spiffe://{TD}/ns/default/sa/backend"


@pytest.fixture
def ca(tmp_path):
    return CertificateAuthority.load_or_create(tmp_path / "state", TD, defects={})


def issue(ca, ttl=600.0, **kwargs):
    key, _ = new_key_and_csr()
    return ca.issue_svid(BACKEND, key.public_key(), ttl=ttl, **kwargs)


def test_svid_has_the_fields_spec_6_requires(ca):
    before = dt.datetime.now(dt.timezone.utc)
    cert = issue(ca, ttl=600.0, workload="backend-v1-0")

    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [BACKEND]
    assert parse_spiffe_id(cert) == BACKEND
    assert workload_of(cert) == "backend-v1-0"

    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False

    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature and not usage.value.key_cert_sign and not usage.value.crl_sign

    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}

    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski.digest == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    assert aki.key_identifier == root_ski.digest

    # TTL: back-dated a little for clock skew, ends at now + ttl (within the test's own runtime)
    assert before - dt.timedelta(seconds=60) <= cert.not_valid_before_utc < before
    assert abs((cert.not_valid_after_utc - before).total_seconds() - 600.0) < 5

    # chains to the root: the root's public key verifies the leaf's signature
    assert cert.issuer == ca.cert.subject
    ca.cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    cert.verify_directly_issued_by(ca.cert)


def test_serials_are_random_and_distinct(ca):
    serials = {issue(ca).serial_number for _ in range(20)}
    assert len(serials) == 20
    assert all(s.bit_length() > 64 for s in serials)


def test_ttl_is_capped_by_the_root(ca):
    cert = issue(ca, ttl=100 * 365 * 86400.0)
    assert cert.not_valid_after_utc == ca.cert.not_valid_after_utc


def test_explicit_window_makes_expired_and_future_certs(ca):
    now = dt.datetime.now(dt.timezone.utc)
    expired = issue(ca, not_before=now - dt.timedelta(hours=2), not_after=now - dt.timedelta(hours=1))
    assert expired.not_valid_after_utc < now
    future = issue(ca, not_before=now + dt.timedelta(hours=1), not_after=now + dt.timedelta(hours=2))
    assert future.not_valid_before_utc > now


def test_extra_ip_sans_keep_a_single_uri_san(ca):
    cert = issue(ca, extra_ip_sans=["127.9.8.1"])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.9.8.1")]
    assert parse_spiffe_id(cert) == BACKEND


@pytest.mark.parametrize("bad", [
    "spiffe://other.domain/ns/default/sa/backend",   # foreign trust domain
    "spiffe://cluster.local/backend",                 # not ns/x/sa/y
    "spiffe://cluster.local/ns/default/sa/",          # empty service account
    "https://cluster.local/ns/default/sa/backend",    # not spiffe
    "",
])
def test_rejects_ids_outside_the_trust_domain_or_form(ca, bad):
    key, _ = new_key_and_csr()
    with pytest.raises(ValueError):
        ca.issue_svid(bad, key.public_key(), ttl=60)


def test_controlplane_identity_is_accepted(ca):
    key, _ = new_key_and_csr()
    cert = ca.issue_svid(f"spiffe://{TD}/ns/meshconform-system/sa/controlplane", key.public_key(), ttl=60)
    assert parse_spiffe_id(cert).endswith("/sa/controlplane")


def test_key_file_is_private_and_state_is_reloaded(tmp_path):
    state = tmp_path / "state"
    first = CertificateAuthority.load_or_create(state, TD, defects={})
    assert stat.S_IMODE((state / "ca-key.pem").stat().st_mode) == 0o600
    assert (state / "bundle.pem").read_bytes() == cert_pem(first.cert) == (state / "ca.pem").read_bytes()
    assert not [p for p in state.iterdir() if p.name.endswith(".tmp")]

    second = CertificateAuthority.load_or_create(state, TD, defects={})
    assert second.cert == first.cert
    issue(second).verify_directly_issued_by(first.cert)  # same key after reload


def test_state_of_another_trust_domain_is_refused(tmp_path):
    CertificateAuthority.load_or_create(tmp_path, TD, defects={})
    with pytest.raises(ValueError, match="trust domain"):
        CertificateAuthority.load_or_create(tmp_path, "other.domain", defects={})


def test_csr_helper_makes_a_self_signed_csr():
    key, csr_pem = new_key_and_csr(BACKEND)
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.is_signature_valid
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()


def test_parse_spiffe_id_needs_exactly_one_uri(tmp_path):
    two = CertificateAuthority.load_or_create(tmp_path, TD, defects={"ca_two_uri_sans": True})
    assert parse_spiffe_id(issue(two)) is None
    assert parse_spiffe_id(load_cert(cert_pem(issue(two)))) is None


# -- defects: each one changes the issued certificate -----------------------------------------------
def test_defect_two_uri_sans(tmp_path, ca):
    broken = CertificateAuthority.load_or_create(tmp_path / "b", TD, defects={"ca_two_uri_sans": True})
    uris = issue(broken).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert len(uris.get_values_for_type(x509.UniformResourceIdentifier)) == 2
    good = issue(ca).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert len(good.get_values_for_type(x509.UniformResourceIdentifier)) == 1


def test_defect_leaf_is_ca(tmp_path):
    broken = CertificateAuthority.load_or_create(tmp_path, TD, defects={"ca_leaf_is_ca": True})
    cert = issue(broken)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True


def test_defect_ttl_multiplier(tmp_path):
    broken = CertificateAuthority.load_or_create(tmp_path, TD, defects={"ca_ttl_multiplier": 10})
    cert = issue(broken, ttl=60.0)
    lifetime = (cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 590 < lifetime <= 600
