"""Header and path-prefix matches route every request correctly; an unmatched request gets the
mesh's documented no-route answer and reaches no upstream.

Routing by match is deterministic, so these checks are not statistical: every one of ``N`` requests
must land on the expected version (one misroute fails the check).
"""

from __future__ import annotations

from collections import Counter

from harness.adapters.base import HttpRequest, MeshNoRouteMarker
from harness.checks import conformance
from harness.features import Feature, Level, Profile

from ._support import BACKEND_WORKLOADS, CLIENT, DESTINATION, KEY_HEADER, versions_answering

N = 100  # requests per case: a mesh that misroutes 5% of them fails with probability 1 − 0.95^100 > 99%


def _expect_all(mesh, sender, evidence, cases: dict[str, tuple[HttpRequest, str]]) -> None:
    """Send ``N`` copies of each case's request; every answer must come from the case's version."""
    wrong = []
    for label, (request, want) in cases.items():
        got = Counter(versions_answering(mesh, [request] * N, sender))
        evidence[f"answers_{label}"] = dict(got)
        if got != Counter({want: N}):
            wrong.append(f"{label} ({request.path}, headers {dict(request.headers)}): want {N}×{want}, "
                         f"got {dict(got)}")
    evidence.samples = N * len(cases)
    assert not wrong, "misrouted: " + "; ".join(wrong)


@conformance(
    short_name="MeshHeaderMatch",
    description=f"A route matching header x-canary: \"1\" sends to v2; the same path without the header, "
                f"or with x-canary: 0, goes to v1. Each of {N} requests per case must land right.",
    features=[Feature.HEADER_MATCH], profile=Profile.ROUTING, level=Level.CORE)
def test_header_match(mesh, routing_mesh, sender, evidence):
    path = "/match/header/x"
    _expect_all(mesh, sender, evidence, {
        "canary": (HttpRequest(host=DESTINATION, path=path, headers={"x-canary": "1"}), "v2"),
        "canary_upper_case_name": (HttpRequest(host=DESTINATION, path=path, headers={"X-Canary": "1"}), "v2"),
        "no_header": (HttpRequest(host=DESTINATION, path=path), "v1"),
        "other_value": (HttpRequest(host=DESTINATION, path=path, headers={"x-canary": "0"}), "v1"),
    })


@conformance(
    short_name="MeshPathPrefixMatch",
    description=f"Path prefix /api/v2 goes to v2 and /api to v1 (the longer prefix is listed first). "
                f"Each of {N} requests per case must land right.",
    features=[Feature.PATH_MATCH], profile=Profile.ROUTING, level=Level.CORE)
def test_path_prefix_match(mesh, routing_mesh, sender, evidence):
    _expect_all(mesh, sender, evidence, {
        "api_v2": (HttpRequest(host=DESTINATION, path="/api/v2"), "v2"),
        "api_v2_deeper": (HttpRequest(host=DESTINATION, path="/api/v2/users?id=7"), "v2"),
        "api_v1": (HttpRequest(host=DESTINATION, path="/api/v1/users"), "v1"),
        "api": (HttpRequest(host=DESTINATION, path="/api"), "v1"),
    })


@conformance(
    short_name="MeshNoRouteAnswer",
    description="A request to a known destination whose path matches no route, and one to an unknown "
                "host, get 404 (with the mesh's documented no-route marker, if its adapter declares one) and "
                "reach no upstream (no echo journal shows the request key).",
    features=[Feature.PATH_MATCH], profile=Profile.ROUTING, level=Level.CORE)
def test_no_route(mesh, routing_mesh, key, evidence):
    cases = {"unmatched_path": HttpRequest(host=DESTINATION, path="/nowhere", headers={KEY_HEADER: key}),
             "unknown_host": HttpRequest(host="no-such-service", path="/", headers={KEY_HEADER: key})}
    problems = []
    for label, request in cases.items():
        response = mesh.send(CLIENT, request)
        evidence[f"status_{label}"] = response.status
        evidence[f"no_route_header_{label}"] = response.header("x-meshproxy-no-route")
        if response.status != 404:
            problems.append(f"{label}: status {response.status} {response.error or ''}, want 404")
        elif isinstance(mesh, MeshNoRouteMarker) and response.header(mesh.no_route_marker[0]) != mesh.no_route_marker[1]:
            problems.append(f"{label}: 404 without the documented {mesh.no_route_marker[0]}: {mesh.no_route_marker[1]}")
    # The answers are in, so anything the mesh forwarded has arrived: read every upstream's journal.
    arrived = {w: len(routing_mesh.echo(w).journal_sync(key=key)) for w in BACKEND_WORKLOADS}
    evidence["arrivals_at_upstreams"] = arrived
    if any(arrived.values()):
        problems.append(f"unrouted requests reached upstreams: {arrived}")
    assert not problems, "; ".join(problems)
