"""Helpers of the security suite: the workloads it uses, and proof that a request did NOT arrive."""

from __future__ import annotations

import uuid

from harness.adapters.base import HttpRequest

CLIENT = "client-v1-0"
INTRUDER = "intruder-v1-0"
BACKEND = "backend-v1-0"
OPEN = "open-v1-0"
SECURE = "secure-v1-0"  # STRICT with no authz: rejections there are mTLS's alone
KEY_HEADER = "x-echo-key"


def arrivals(deployment, workload: str, key: str) -> list[dict]:
    return deployment.echo(workload).journal_sync(key=key)


def assert_never_arrived(mesh, deployment, workload: str, service: str, key: str, evidence) -> None:
    """Prove the echo of ``workload`` never saw ``key`` without sleeping: send a sentinel request the
    mesh must deliver to the same echo, wait for the sentinel's arrival, and only then read the journal
    for ``key``. The journal is appended in arrival order, so anything sent before the sentinel that
    was going to arrive has arrived by then."""
    sentinel = uuid.uuid4().hex
    resp = mesh.send(CLIENT, HttpRequest(host=service, headers={KEY_HEADER: sentinel}))
    assert resp.status == 200, f"the sentinel request through the mesh failed: {resp.status} {resp.error}"
    deployment.echo(workload).wait_arrivals_sync(sentinel, 1, timeout=5.0)
    seen = arrivals(deployment, workload, key)
    evidence["arrivals_of_rejected_request"] = len(seen)
    assert not seen, f"the echo journal shows {len(seen)} arrival(s) of the rejected request"
