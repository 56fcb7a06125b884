"""Sensitivity of the security checks: each fails against a reference mesh broken in its way.

One ``pytest suites/security --mesh=reference`` run per defect (see conftest), selecting only the
check(s) that defect must break. The security checks are deterministic (one plaintext answer, one
accepted bad certificate, one misissued SVID, one 403 is enough), so a broken mesh fails them every
time; none of these tests depends on chance.

``extra_trust`` points at the committed foreign CA (fixtures/foreign_ca/ca.pem), the CA that
MeshRejectsForeignCaCertificate signs its client SVID with: a mesh trusting that one extra CA lets the
check's certificate in.
"""

from __future__ import annotations


from fixtures.certs import FIXED_FOREIGN_CA_CERT
from tests.sensitivity.conftest import assert_fails, judge

SUITE = "security"

def _one(tmp_path, check: str, defects: dict) -> dict:
    return judge(tmp_path, SUITE, [check], defects)[check]


# -- mTLS modes ----------------------------------------------------------------------------------------

def test_strict_fails_when_the_inbound_accepts_plaintext(tmp_path):
    entry = _one(tmp_path, "MeshStrictRejectsPlaintext", {"inbound_accepts_plaintext": True})
    assert_fails(entry, "STRICT inbound", "answered plaintext")


def test_permissive_fails_when_the_inbound_acts_strict(tmp_path):
    entry = _one(tmp_path, "MeshPermissiveAcceptsPlaintextAndMtls", {"permissive_as_strict": True})
    assert_fails(entry, "PERMISSIVE inbound refused plaintext")


# -- client certificates at a STRICT inbound ---------------------------------------------------------

def test_no_certificate_check_fails_when_the_certificate_is_optional(tmp_path):
    entry = _one(tmp_path, "MeshRejectsClientWithoutCertificate", {"inbound_cert_optional": True})
    assert_fails(entry, "accepted a client with no certificate")


def test_foreign_ca_check_fails_when_the_mesh_trusts_that_ca(tmp_path):
    entry = _one(tmp_path, "MeshRejectsForeignCaCertificate", {"extra_trust": str(FIXED_FOREIGN_CA_CERT)})
    assert_fails(entry, "accepted a client with a certificate from a foreign CA")


def test_validity_checks_fail_when_the_mesh_ignores_certificate_time(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshRejectsExpiredCertificate", "MeshRejectsNotYetValidCertificate"],
                    {"ignore_cert_time": True})
    assert_fails(entries["MeshRejectsExpiredCertificate"], "accepted a client with an expired certificate")
    assert_fails(entries["MeshRejectsNotYetValidCertificate"],
                 "accepted a client with a not-yet-valid certificate")


def test_trust_domain_check_fails_when_the_mesh_skips_it(tmp_path):
    entry = _one(tmp_path, "MeshRejectsForeignTrustDomain", {"skip_trust_domain_check": True})
    assert_fails(entry, "accepted a client with a certificate of a foreign trust domain")


# -- the SVID the workload presents: one run per way the CA mis-issues ---------------------------------

def test_svid_check_fails_when_the_ca_writes_two_uri_sans(tmp_path):
    entry = _one(tmp_path, "MeshWorkloadPresentsValidSvid", {"ca_two_uri_sans": True})
    assert_fails(entry, "not a valid X.509-SVID", "2 URI SANs")


def test_svid_check_fails_when_the_leaf_is_a_ca(tmp_path):
    entry = _one(tmp_path, "MeshWorkloadPresentsValidSvid", {"ca_leaf_is_ca": True})
    assert_fails(entry, "not a valid X.509-SVID", "leaf is a CA")


def test_svid_check_fails_when_the_ca_issues_ten_times_the_ttl(tmp_path):
    # cert_ttl is 6 s in suites/security/scenario.yaml: the SVID lives 60 s (+ back-dating)
    entry = _one(tmp_path, "MeshWorkloadPresentsValidSvid", {"ca_ttl_multiplier": 10})
    assert_fails(entry, "not a valid X.509-SVID", "lifetime", "exceeds")


# -- identity, authorization ---------------------------------------------------------------------------

def test_identity_check_fails_when_the_inbound_passes_a_forged_xfcc(tmp_path):
    entry = _one(tmp_path, "MeshDestinationSeesCallerIdentity", {"spoof_xfcc": True})
    assert_fails(entry, "the destination saw", "sa/admin")


def test_deny_check_fails_when_authz_is_ignored(tmp_path):
    entry = _one(tmp_path, "MeshAuthzDeniesUnlistedPrincipal", {"ignore_authz": True})
    assert_fails(entry, "unlisted principal got 200", "want 403")


def test_allow_check_fails_when_authz_denies_everyone(tmp_path):
    entry = _one(tmp_path, "MeshAuthzAllowsListedPrincipal", {"authz_deny_all": True})
    assert_fails(entry, "allowed principal got 403")


# -- the wire, rotation --------------------------------------------------------------------------------

def test_wire_check_fails_when_sidecars_talk_plaintext(tmp_path):
    entry = _one(tmp_path, "MeshWireIsEncrypted", {"plaintext_between_sidecars": True})
    assert_fails(entry, "did not start with a TLS ClientHello")


def test_rotation_check_fails_when_sidecars_never_renew(tmp_path):
    entry = _one(tmp_path, "MeshCertRotationUnderLoad", {"no_rotation": True})
    # the check reads the backend's certificate every 0.25 s: once the 6 s SVID expires, that handshake
    # fails verification (and so do the requests)
    assert_fails(entry, "certificate has expired")
