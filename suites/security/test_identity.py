"""Identity: what a workload presents is a valid X.509-SVID, and the destination sees the true caller."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from harness.adapters.base import HttpRequest, MeshCertificates
from harness.checks import conformance
from harness.features import Feature, Level, Profile
from harness.probes import client_context, presented_certificate
from harness.svid import load_bundle, svid_problems

from ..conftest import require
from ._support import BACKEND, CLIENT, KEY_HEADER, arrivals


@conformance(
    short_name="MeshWorkloadPresentsValidSvid",
    description="The certificate the backend's inbound presents in a TLS handshake is an X.509-SVID: "
                "exactly one URI SAN equal to the workload's SPIFFE ID, chains to the mesh bundle, leaf "
                "not a CA, keyUsage digitalSignature (critical) without keyCertSign, EKU serverAuth and "
                "clientAuth, lifetime at most the scenario's cert_ttl (+60 s back-dating allowance).",
    features=[Feature.SVID], profile=Profile.SECURITY, level=Level.CORE)
def test_presented_certificate_is_svid(mesh, security_mesh, scenario, evidence):
    ca = require(mesh, MeshCertificates, "present a valid client certificate and read the bundle")
    now = datetime.now(timezone.utc)
    cert_pem, key_pem = ca.issue_certificate(scenario.spiffe_id("client"), not_before=now - timedelta(minutes=1),
                                             not_after=now + timedelta(hours=1))
    cert = presented_certificate(security_mesh.workloads[BACKEND].inbound,
                                 client_context(ca.bundle_path, cert_pem, key_pem))
    assert cert is not None, "no TLS handshake with the backend's inbound listener"
    evidence["serial"] = format(cert.serial_number, "x")
    evidence["lifetime_s"] = (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()
    problems = svid_problems(cert, bundle=load_bundle(ca.bundle_path), expected_id=scenario.spiffe_id("backend"),
                             max_ttl=timedelta(seconds=scenario.cert_ttl))
    evidence["problems"] = problems
    assert not problems, "the presented certificate is not a valid X.509-SVID: " + "; ".join(problems)


@conformance(
    short_name="MeshDestinationSeesCallerIdentity",
    description="A request from client to backend arrives with the client's SPIFFE ID in "
                "x-forwarded-client-cert, and a forged XFCC header sent by the client application "
                "does not reach the destination.",
    features=[Feature.IDENTITY], profile=Profile.SECURITY, level=Level.CORE)
def test_destination_sees_true_identity(mesh, security_mesh, scenario, key, evidence):
    forged = "By=spiffe://cluster.local/ns/default/sa/backend;URI=spiffe://cluster.local/ns/default/sa/admin"
    resp = mesh.send(CLIENT, HttpRequest(host="backend", headers={KEY_HEADER: key,
                                                                  "x-forwarded-client-cert": forged}))
    assert resp.status == 200, f"client → backend failed: {resp.status} {resp.error}"
    security_mesh.echo(BACKEND).wait_arrivals_sync(key, 1, timeout=5.0)
    (arrival,) = arrivals(security_mesh, BACKEND, key)
    xfcc = arrival["headers"].get("x-forwarded-client-cert", "")
    evidence["xfcc_seen_by_destination"] = xfcc
    assert f"URI={scenario.spiffe_id('client')}" in xfcc, f"the destination saw {xfcc!r}, not the caller's ID"
    assert "sa/admin" not in xfcc, f"a forged XFCC from the caller reached the destination: {xfcc!r}"
