"""mTLS modes at a workload's inbound listener: STRICT refuses plaintext, PERMISSIVE takes both."""

from __future__ import annotations

from harness.adapters.base import HttpRequest
from harness.checks import conformance
from harness.features import Feature, Level, Profile
from harness.probes import probe

from ._support import CLIENT, KEY_HEADER, OPEN, SECURE, arrivals, assert_never_arrived


@conformance(
    short_name="MeshStrictRejectsPlaintext",
    description="A plaintext HTTP request to a STRICT workload's inbound port gets no application "
                "response, and the echo journal shows no arrival (checked after a sentinel arrived).",
    features=[Feature.MTLS_STRICT], profile=Profile.SECURITY, level=Level.CORE)
def test_strict_rejects_plaintext(mesh, security_mesh, key, evidence):
    inbound = security_mesh.workloads[SECURE].inbound
    result = probe(inbound, headers={KEY_HEADER: key})
    evidence["probe"] = result.describe()
    assert b'"service"' not in result.body, (
        f"STRICT inbound {inbound} answered plaintext with the application's response: {result.describe()}")
    assert_never_arrived(mesh, security_mesh, SECURE, "secure", key, evidence)


@conformance(
    short_name="MeshPermissiveAcceptsPlaintextAndMtls",
    description="A PERMISSIVE workload answers a plaintext request at its inbound port and an mTLS "
                "request from a mesh workload; both arrive at the echo, the mTLS one with the caller's ID.",
    features=[Feature.MTLS_PERMISSIVE], profile=Profile.SECURITY, level=Level.CORE)
def test_permissive_accepts_both(mesh, security_mesh, key, evidence, scenario):
    inbound = security_mesh.workloads[OPEN].inbound
    plain = probe(inbound, headers={KEY_HEADER: key + "-plain"})
    evidence["plaintext_probe"] = plain.describe()
    assert plain.status == 200, f"PERMISSIVE inbound refused plaintext: {plain.describe()}"
    via_mesh = mesh.send(CLIENT, HttpRequest(host="open", headers={KEY_HEADER: key + "-mtls"}))
    evidence["mesh_request_status"] = via_mesh.status
    assert via_mesh.status == 200, f"mTLS request through the mesh failed: {via_mesh.status} {via_mesh.error}"
    echo = security_mesh.echo(OPEN)
    echo.wait_arrivals_sync(key + "-mtls", 1, timeout=5.0)
    assert len(arrivals(security_mesh, OPEN, key + "-plain")) == 1, "the plaintext request did not arrive once"
    (arrival,) = arrivals(security_mesh, OPEN, key + "-mtls")
    xfcc = arrival["headers"].get("x-forwarded-client-cert", "")
    evidence["xfcc_seen_by_destination"] = xfcc
    assert f"URI={scenario.spiffe_id('client')}" in xfcc, (
        f"the request through the mesh did not arrive over mTLS with the caller's identity (XFCC {xfcc!r})")
