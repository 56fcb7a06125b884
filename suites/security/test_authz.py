"""Authorization by source principal: listed callers pass, others get 403 and never reach the app."""

from __future__ import annotations

from harness.adapters.base import HttpRequest
from harness.checks import conformance
from harness.features import Feature, Level, Profile

from ._support import BACKEND, CLIENT, INTRUDER, KEY_HEADER, arrivals, assert_never_arrived


@conformance(
    short_name="MeshAuthzAllowsListedPrincipal",
    description="The backend allows spiffe://cluster.local/ns/default/sa/client: its request gets 200 "
                "and arrives at the echo exactly once.",
    features=[Feature.AUTHZ], profile=Profile.SECURITY, level=Level.CORE)
def test_authz_allows_listed(mesh, security_mesh, key, evidence):
    resp = mesh.send(CLIENT, HttpRequest(host="backend", headers={KEY_HEADER: key}))
    evidence["status"] = resp.status
    assert resp.status == 200, f"an allowed principal got {resp.status} {resp.error}"
    security_mesh.echo(BACKEND).wait_arrivals_sync(key, 1, timeout=5.0)
    assert len(arrivals(security_mesh, BACKEND, key)) == 1


@conformance(
    short_name="MeshAuthzDeniesUnlistedPrincipal",
    description="A caller with a valid mesh identity that the backend does not list (intruder) gets 403 "
                "and the echo journal shows no arrival.",
    features=[Feature.AUTHZ], profile=Profile.SECURITY, level=Level.CORE)
def test_authz_denies_unlisted(mesh, security_mesh, key, evidence):
    resp = mesh.send(INTRUDER, HttpRequest(host="backend", headers={KEY_HEADER: key}))
    evidence["status"] = resp.status
    assert resp.status == 403, f"an unlisted principal got {resp.status}, want 403"
    assert_never_arrived(mesh, security_mesh, BACKEND, "backend", key, evidence)
