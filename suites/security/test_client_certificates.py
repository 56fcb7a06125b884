"""A STRICT inbound (of a service with no authz, so only mTLS can refuse) rejects every client certificate that is not a valid SVID of its trust domain.

Each check opens its own TLS connection to the `secure` workload's inbound port (as a network peer outside the
mesh), presents one kind of bad certificate, and sends a request. A rejection may show at the handshake
or, under TLS 1.3, at the first read (an alert, reset or EOF): both count. The check fails if an HTTP
answer from the application comes back, or if the echo journal shows the request arrived.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fixtures.certs import ForeignCA
from harness.adapters.base import MeshCertificates
from harness.checks import conformance
from harness.features import Feature, Level, Profile
from harness.probes import client_context, probe

from ..conftest import require
from ._support import KEY_HEADER, SECURE, assert_never_arrived


def _assert_rejected(mesh, deployment, key, evidence, cert_pem, key_pem, bundle, what):
    ctx = client_context(bundle, cert_pem, key_pem)
    result = probe(deployment.workloads[SECURE].inbound, tls=ctx, headers={KEY_HEADER: key})
    evidence["probe"] = result.describe()
    assert not result.answered or b'"service"' not in result.body, (
        f"STRICT inbound accepted a client with {what}: {result.describe()}")
    assert_never_arrived(mesh, deployment, SECURE, "secure", key, evidence)


def _mesh_issued(mesh, spiffe_id, not_before, not_after):
    ca = require(mesh, MeshCertificates, "issue test certificates from the mesh CA")
    return ca.issue_certificate(spiffe_id, not_before=not_before, not_after=not_after)


def _bundle(mesh):
    return require(mesh, MeshCertificates, "verify the workload against the mesh trust bundle").bundle_path


@conformance(
    short_name="MeshRejectsClientWithoutCertificate",
    description="A TLS client that presents no certificate gets no application response at a STRICT "
                "inbound, and nothing arrives at the echo.",
    features=[Feature.MTLS_STRICT], profile=Profile.SECURITY, level=Level.CORE)
def test_rejects_no_certificate(mesh, security_mesh, key, evidence):
    _assert_rejected(mesh, security_mesh, key, evidence, None, None, _bundle(mesh), "no certificate")


@conformance(
    short_name="MeshRejectsForeignCaCertificate",
    description="A client SVID with the right SPIFFE ID but signed by a CA outside the mesh bundle (the "
                "committed fixtures/foreign_ca, the same in every run) is rejected at a STRICT inbound; "
                "nothing arrives at the echo.",
    features=[Feature.MTLS_STRICT], profile=Profile.SECURITY, level=Level.CORE)
def test_rejects_foreign_ca(mesh, security_mesh, key, evidence, scenario):
    cert_pem, key_pem = ForeignCA.fixed().issue_svid(scenario.spiffe_id("client"))
    _assert_rejected(mesh, security_mesh, key, evidence, cert_pem, key_pem, _bundle(mesh),
                     "a certificate from a foreign CA")


@conformance(
    short_name="MeshRejectsExpiredCertificate",
    description="A client SVID from the mesh CA that expired an hour ago is rejected at a STRICT "
                "inbound; nothing arrives at the echo.",
    features=[Feature.MTLS_STRICT], profile=Profile.SECURITY, level=Level.CORE)
def test_rejects_expired(mesh, security_mesh, key, evidence, scenario):
    now = datetime.now(timezone.utc)
    cert_pem, key_pem = _mesh_issued(mesh, scenario.spiffe_id("client"), now - timedelta(hours=2),
                                     now - timedelta(hours=1))
    _assert_rejected(mesh, security_mesh, key, evidence, cert_pem, key_pem, _bundle(mesh),
                     "an expired certificate")


@conformance(
    short_name="MeshRejectsNotYetValidCertificate",
    description="A client SVID from the mesh CA valid only from an hour from now is rejected at a "
                "STRICT inbound; nothing arrives at the echo.",
    features=[Feature.MTLS_STRICT], profile=Profile.SECURITY, level=Level.CORE)
def test_rejects_not_yet_valid(mesh, security_mesh, key, evidence, scenario):
    now = datetime.now(timezone.utc)
    cert_pem, key_pem = _mesh_issued(mesh, scenario.spiffe_id("client"), now + timedelta(hours=1),
                                     now + timedelta(hours=2))
    _assert_rejected(mesh, security_mesh, key, evidence, cert_pem, key_pem, _bundle(mesh),
                     "a not-yet-valid certificate")


@conformance(
    short_name="MeshRejectsForeignTrustDomain",
    description="A client SVID signed by the mesh CA but naming another trust domain "
                "(spiffe://evil.example/...) is rejected at a STRICT inbound; nothing arrives.",
    features=[Feature.MTLS_STRICT], profile=Profile.SECURITY, level=Level.CORE)
def test_rejects_foreign_trust_domain(mesh, security_mesh, key, evidence):
    now = datetime.now(timezone.utc)
    cert_pem, key_pem = _mesh_issued(mesh, "spiffe://evil.example/ns/default/sa/client",
                                     now - timedelta(minutes=1), now + timedelta(hours=1))
    _assert_rejected(mesh, security_mesh, key, evidence, cert_pem, key_pem, _bundle(mesh),
                     "a certificate of a foreign trust domain")
