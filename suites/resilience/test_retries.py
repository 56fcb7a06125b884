"""Retries counted at the echo (SPEC §4 Resilience): how many tries arrive, and what the client gets.

Each request has its own key and echo program ("k × failure, then 200"), so the journal shows exactly
the tries of that request. N is the route's ``attempts`` (Envoy num_retries: N retries after the first
try, at most N + 1 tries). The keys of one check run concurrently; the checks are deterministic.
"""

from __future__ import annotations

import uuid

from harness.adapters.base import HopInterposer
from harness.checks import conformance
from harness.faults.hop import proxy_on_hop
from harness.faults.reset_peer import ResetPeer
from harness.features import Feature, Level, Profile
from suites.conftest import require

from ._support import (ATTEMPT_HEADER, BACKEND, FLAKY_DEAD, FLAKY_LIVE, arrivals_by_key, attempt_count_problem,
                       flush, journal_mark, program_all, request, send_all)
from .conftest import SCENARIO


def _route(name: str):
    return next(r for r in SCENARIO.routes if r.name == name)


N = _route("retries").retries.attempts


def _run_programs(mesh, deployment, path: str, programs: dict[str, list[dict]]):
    """Install ``programs``, send one request per key on ``path``, and return (answers, arrivals)."""
    echo = deployment.echo(BACKEND)
    program_all(echo, programs)
    mark = journal_mark(echo)
    keys = list(programs)
    answers = dict(zip(keys, send_all(mesh, [request(path, k) for k in keys], concurrency=len(keys))))
    flush(mesh, deployment)
    grouped = arrivals_by_key(echo, mark, keys)
    return answers, {k: grouped.get(k, []) for k in keys}


def _judge_counts(mesh, answers, arrivals, want_status: dict[str, int], want_arrivals: dict[str, int],
                  labels: dict[str, str], evidence) -> None:
    rows, problems = [], []
    for key, label in labels.items():
        resp, seen = answers[key], arrivals[key]
        rows.append({"case": label, "status": resp.status, "arrivals": len(seen),
                     "want_status": want_status[key], "want_arrivals": want_arrivals[key],
                     "attempt_counts": [a["headers"].get(ATTEMPT_HEADER) for a in seen]})
        if resp.status != want_status[key]:
            problems.append(f"{label}: client got {resp.status} {resp.error or ''}, want {want_status[key]}")
        if len(seen) != want_arrivals[key]:
            problems.append(f"{label}: the echo saw {len(seen)} arrivals, want exactly {want_arrivals[key]}")
        header_problem = attempt_count_problem(mesh, seen)
        if header_problem:
            problems.append(f"{label}: {header_problem}")
    evidence["cases"] = rows
    evidence.samples = len(rows)
    assert not problems, "retries wrong: " + "; ".join(problems)


@conformance(
    short_name="MeshRetriesSucceedWithinAttempts",
    description=f"With attempts={N} and retry_on 5xx, an upstream that answers 503 k times then 200 gives "
                f"the client 200 for every k in 0..{N}, and the echo journal shows exactly k+1 arrivals, "
                f"the i-th carrying x-envoy-attempt-count i (when the mesh sends that header).",
    features=[Feature.RETRIES], profile=Profile.RESILIENCE, level=Level.CORE)
def test_retries_succeed_within_attempts(mesh, resilience_mesh, evidence):
    labels = {uuid.uuid4().hex: f"k={k}" for k in range(N + 1)}
    programs = {key: [{"status": 503}] * int(label[2:]) for key, label in labels.items()}
    answers, arrivals = _run_programs(mesh, resilience_mesh, "/retries", programs)
    _judge_counts(mesh, answers, arrivals, {k: 200 for k in labels},
                  {k: int(label[2:]) + 1 for k, label in labels.items()}, labels, evidence)


@conformance(
    short_name="MeshRetriesStopAfterAttempts",
    description=f"With attempts={N}, an upstream that answers 503 k > {N} times (k = {N + 1}, {N + 2}) gives the "
                f"client 503 and the echo journal shows exactly {N + 1} arrivals: no retry beyond attempts.",
    features=[Feature.RETRIES], profile=Profile.RESILIENCE, level=Level.CORE)
def test_retries_stop_after_attempts(mesh, resilience_mesh, evidence):
    labels = {uuid.uuid4().hex: f"k={k}" for k in (N + 1, N + 2)}
    programs = {key: [{"status": 503}] * int(label[2:]) for key, label in labels.items()}
    answers, arrivals = _run_programs(mesh, resilience_mesh, "/retries", programs)
    _judge_counts(mesh, answers, arrivals, {k: 503 for k in labels}, {k: N + 1 for k in labels}, labels,
                  evidence)


@conformance(
    short_name="MeshRetriesSkipNonRetriableStatus",
    description="On a route retrying 5xx, an upstream answering 404 (or 400, 409) is not retried: the client "
                "gets that status and the echo journal shows exactly one arrival.",
    features=[Feature.RETRIES], profile=Profile.RESILIENCE, level=Level.CORE)
def test_non_retriable_status_arrives_once(mesh, resilience_mesh, evidence):
    statuses = {uuid.uuid4().hex: s for s in (404, 400, 409)}
    labels = {k: f"status {s}" for k, s in statuses.items()}
    answers, arrivals = _run_programs(mesh, resilience_mesh, "/not-retriable",
                                      {k: [{"status": s}] for k, s in statuses.items()})
    _judge_counts(mesh, answers, arrivals, statuses, {k: 1 for k in labels}, labels, evidence)


@conformance(
    short_name="MeshRetriesRetriableStatusCodes",
    description=f"retry_on retriable-status-codes [409] with attempts={N}: 409 k times then 200 gives 200 "
                f"with k+1 arrivals (k = 1, {N}), while a 503 (not listed) arrives once and is returned.",
    features=[Feature.RETRIES], profile=Profile.RESILIENCE, level=Level.EXTENDED)
def test_retriable_status_codes(mesh, resilience_mesh, evidence):
    cases = {uuid.uuid4().hex: (409, 1), uuid.uuid4().hex: (409, N), uuid.uuid4().hex: (503, 1)}
    labels = {k: f"{s} x{n}" for k, (s, n) in cases.items()}
    answers, arrivals = _run_programs(mesh, resilience_mesh, "/status-codes",
                                      {k: [{"status": s}] * n for k, (s, n) in cases.items()})
    want_status = {k: 200 if s == 409 else s for k, (s, n) in cases.items()}
    want_arrivals = {k: n + 1 if s == 409 else 1 for k, (s, n) in cases.items()}
    _judge_counts(mesh, answers, arrivals, want_status, want_arrivals, labels, evidence)


RESET_AFTER_S = 0.05  # the hop resets each connection this long after it opened
SLOW_S = 0.25  # a try the echo holds this long is always cut by that reset


RESET_REQUESTS = 2


@conformance(
    short_name="MeshRetriesOnReset",
    description=f"retry_on reset with attempts={N}: a fault proxy on the hop to the backend resets every "
                f"connection {RESET_AFTER_S * 1e3:.0f} ms after it opened and the echo holds every try "
                f"{SLOW_S * 1e3:.0f} ms, so every try is reset (and no connection is ever reused). Each of "
                f"{RESET_REQUESTS} sequential requests gets a 5xx (or no answer) and the echo sees exactly "
                f"{N + 1} arrivals, with x-envoy-attempt-count 1..{N + 1} when the mesh sends it.",
    features=[Feature.RETRIES], profile=Profile.RESILIENCE, level=Level.CORE)
def test_retries_on_reset(mesh, resilience_mesh, evidence):
    require(mesh, HopInterposer, "reset connections on the hop to the backend")
    keys = [uuid.uuid4().hex for _ in range(RESET_REQUESTS)]
    labels = {key: f"request {i + 1}" for i, key in enumerate(keys)}
    echo = resilience_mesh.echo(BACKEND)
    program_all(echo, {key: [{"delay_s": SLOW_S}] * (N + 3) for key in keys})
    mark = journal_mark(echo)
    with proxy_on_hop(mesh, BACKEND) as proxy:
        proxy.add(ResetPeer(after_s=RESET_AFTER_S))
        answers = dict(zip(keys, send_all(mesh, [request("/reset", key) for key in keys], concurrency=1)))
    grouped = arrivals_by_key(echo, mark, keys)
    arrivals = {key: grouped.get(key, []) for key in keys}
    # a spent reset is answered by the mesh's own 5xx (Envoy: 503); "no answer" is accepted alike
    want_status = {key: s if s is None or 500 <= s <= 599 else 503
                   for key, s in ((k, answers[k].status) for k in keys)}
    _judge_counts(mesh, answers, arrivals, want_status, {key: N + 1 for key in keys}, labels, evidence)


REQUESTS_CONNECT = 20
N_CONNECT = _route("connect").retries.attempts


@conformance(
    short_name="MeshRetriesOnConnectFailure",
    description=f"retry_on connect-failure with attempts={N_CONNECT}: with version v1 of a 50/50 split refusing "
                f"connections (a fault proxy on its hop, disabled), {REQUESTS_CONNECT} requests all get 200 from "
                f"v2, each arriving there once, and those whose first tries went to v1 arrive with "
                f"x-envoy-attempt-count > 1. False-fail rate ≤ {REQUESTS_CONNECT} × 2^-{N_CONNECT + 1} "
                f"(every try of a request drawn to v1) < 0.1%; without retries half the requests fail.",
    features=[Feature.RETRIES], profile=Profile.RESILIENCE, level=Level.CORE)
def test_retries_on_connect_failure(mesh, resilience_mesh, evidence):
    require(mesh, HopInterposer, "refuse connections on one endpoint's hop")
    live = resilience_mesh.echo(FLAKY_LIVE)
    keys = [uuid.uuid4().hex for _ in range(REQUESTS_CONNECT)]
    with proxy_on_hop(mesh, FLAKY_DEAD) as proxy:
        proxy.enabled = False  # refuse every new connection: the mesh sees a connect failure
        mark = journal_mark(live)
        answers = send_all(mesh, [request("/", k, host="flaky") for k in keys], concurrency=1)
    grouped = arrivals_by_key(live, mark, keys)
    statuses = [a.status for a in answers]
    counts = [len(grouped.get(k, [])) for k in keys]
    attempts = [grouped[k][0]["headers"].get(ATTEMPT_HEADER) if grouped.get(k) else None for k in keys]
    evidence.samples = len(keys)
    evidence["statuses"] = statuses
    evidence["arrivals_at_live_endpoint"] = counts
    evidence["attempt_counts_seen"] = attempts
    failed = [s for s in statuses if s != 200]
    assert not failed, (f"connect failures not retried: {len(failed)} of {len(keys)} requests failed "
                        f"(statuses {sorted(set(map(str, failed)))})")
    assert counts == [1] * len(keys), f"retries wrong: arrivals per request at the live endpoint were {counts}"
    retried = [a for a in attempts if a not in (None, "1")]
    if any(a is not None for a in attempts):
        assert retried, "no request shows a retry (x-envoy-attempt-count > 1): the refusing endpoint got no tries"
