"""Circuit breaking on live traffic (SPEC §4 Resilience; Envoy semantics, SPEC §6).

Envoy's breakers are concurrency limits per destination. Over ``max_requests`` (outstanding requests)
or over ``max_connections`` + ``max_pending_requests`` (requests waiting for one of the connections) a
request is answered at once with 503 and ``x-envoy-overloaded: true``; under ``max_connections`` alone
the excess waits as pending; a retry over ``max_retries`` is not attempted and the upstream's answer is
returned.

Each breaker check sweeps the offered concurrency from 0.5x to 4x its limit (four steps of
``STEP_S``) against an echo that holds every request ``HOLD_MS``. Ground truth is the echo's journal
(the in-flight count it saw at each arrival) and the client's own answers and times.

Leeway: none. The echo counts a request in flight from its arrival until its answer is written; the
mesh counts it from admission until the answer is back at the sidecar, which is a longer interval that
contains the echo's. So a mesh that keeps its limit can never show the echo more than the limit in
flight, on any machine, and the check allows no excess (a proxy with per-worker limits shows the sum
of its workers' limits, which is the finding). Timing rules are stated in each description.
"""

from __future__ import annotations

import uuid

from harness.checks import conformance
from harness.features import Feature, Level, Profile

from ._support import (burst, judge_admission, judge_retry_bursts, levels_for, max_overlap, plot_sweep, sweep,
                       sweep_rows, workload)
from .conftest import SCENARIO

HOLD_MS = 200.0  # every request is held this long by the echo
STEP_S = 1.0  # per offered-concurrency step: five hold times
# "well under" the hold: the median overflow answer within half of it (the reference answers in about 2 ms;
# a mesh that queues the excess answers it after a hold or more). The median, not every answer: a busy
# machine (load 11 on 2 cores, measured) delays a tail of them past the hold
OVERLOAD_P50_MS = HOLD_MS / 2
RETRY_HOLD_MS = 300.0


def _limits(service: str):
    return next(p.circuit_breaker for p in SCENARIO.policies if p.service == service)


REQ = _limits("cb-requests")
PEND = _limits("cb-pending")
CONN = _limits("cb-connections")
RETRY = _limits("cb-retries")


def _run_sweep(breaking_mesh, mesh, service: str, limit: int):
    echo = breaking_mesh.echo(workload(service))
    key = uuid.uuid4().hex
    echo.program_sync(key, [], default={"delay_s": HOLD_MS / 1e3})
    mark = echo.journal_page_sync(key=uuid.uuid4().hex)[1]
    steps = sweep(mesh, service, key, levels_for(limit), step_s=STEP_S, period_s=HOLD_MS / 1e3)
    arrivals = [a for a in echo.journal_sync(since=mark) if a["key"] == key]
    return steps, arrivals


def _evidence(evidence, rows, limit: int, what: str) -> None:
    evidence["sweep"] = rows
    evidence.samples = sum(r["requests"] for r in rows)
    evidence.measure("peak_in_flight", max(r["echo_max_in_flight"] for r in rows))
    overflow = [r["overload_latency_p50_ms"] for r in rows if r["overloaded_503"]]
    if overflow:
        evidence.measure("overflow_p50", max(overflow), unit="ms")
    plot_sweep(evidence, rows, limit, what)


@conformance(
    short_name="MeshCircuitBreakerMaxRequests",
    description=f"max_requests={REQ.max_requests}: offered concurrency {levels_for(REQ.max_requests)} for "
                f"{STEP_S:g} s each against an echo holding every request {HOLD_MS:.0f} ms. The echo never sees "
                f"more than {REQ.max_requests} in flight (no leeway: the mesh's count spans the echo's) and sees "
                f"{REQ.max_requests} above the limit; at or below the limit nothing is rejected; above it the "
                f"excess gets 503 with x-envoy-overloaded: true, the median of those answers under {OVERLOAD_P50_MS:.0f} ms; "
                f"every answer is the echo's 200 or such a 503.",
    features=[Feature.CIRCUIT_BREAKING], profile=Profile.RESILIENCE, level=Level.CORE)
def test_max_requests(mesh, breaking_mesh, evidence):
    problems = measure_max_requests(mesh, breaking_mesh, evidence)
    assert not problems, "circuit breaker (max_requests) wrong: " + "; ".join(problems)


def measure_max_requests(mesh, breaking_mesh, evidence) -> list[str]:
    """The check's run and decision: its problems (none: it passed)."""
    limit = REQ.max_requests
    steps, arrivals = _run_sweep(breaking_mesh, mesh, "cb-requests", limit)
    rows = sweep_rows(steps, arrivals, HOLD_MS)
    _evidence(evidence, rows, limit, "max_requests")
    problems = judge_admission(rows, steps, cap=limit, cap_name="max_requests", reject_above=limit,
                               hold_ms=HOLD_MS, overload_p50_bound_ms=OVERLOAD_P50_MS)
    return problems


PENDING_TOTAL = PEND.max_connections + PEND.max_pending_requests
# a pending request waits for at most ceil(pending / connections) holds, then is held itself
PENDING_MAX_OK_MS = (1 + -(-PEND.max_pending_requests // PEND.max_connections)) * HOLD_MS + HOLD_MS / 2


@conformance(
    short_name="MeshCircuitBreakerMaxPendingRequests",
    description=f"max_connections={PEND.max_connections}, max_pending_requests={PEND.max_pending_requests}: offered "
                f"concurrency {levels_for(PENDING_TOTAL)} for {STEP_S:g} s each, echo holding {HOLD_MS:.0f} ms. The echo "
                f"never sees more than {PEND.max_connections} in flight (HTTP/1.1: one request per connection) and "
                f"sees {PEND.max_connections} above it; up to {PENDING_TOTAL} offered nothing is rejected (the excess "
                f"waits); above {PENDING_TOTAL} the excess gets 503 + x-envoy-overloaded: true (median under "
                f"{OVERLOAD_P50_MS:.0f} ms); no accepted request takes over {PENDING_MAX_OK_MS:.0f} ms (a request "
                f"waits at most {PEND.max_pending_requests // PEND.max_connections} hold(s) when at most "
                f"{PEND.max_pending_requests} wait, plus {HOLD_MS / 2:.0f} ms).",
    features=[Feature.CIRCUIT_BREAKING], profile=Profile.RESILIENCE, level=Level.CORE)
def test_max_pending_requests(mesh, breaking_mesh, evidence):
    problems = measure_max_pending_requests(mesh, breaking_mesh, evidence)
    assert not problems, "circuit breaker (max_pending_requests) wrong: " + "; ".join(problems)


def measure_max_pending_requests(mesh, breaking_mesh, evidence) -> list[str]:
    """The check's run and decision: its problems (none: it passed)."""
    steps, arrivals = _run_sweep(breaking_mesh, mesh, "cb-pending", PENDING_TOTAL)
    rows = sweep_rows(steps, arrivals, HOLD_MS)
    _evidence(evidence, rows, PEND.max_connections, "max_pending_requests")
    problems = judge_admission(rows, steps, cap=PEND.max_connections, cap_name="max_connections",
                               reject_above=PENDING_TOTAL, hold_ms=HOLD_MS, overload_p50_bound_ms=OVERLOAD_P50_MS,
                               max_ok_latency_ms=PENDING_MAX_OK_MS)
    return problems


@conformance(
    short_name="MeshCircuitBreakerMaxConnections",
    description=f"max_connections={CONN.max_connections} (max_pending_requests Envoy's 1024): offered concurrency "
                f"{levels_for(CONN.max_connections)} for {STEP_S:g} s each, echo holding {HOLD_MS:.0f} ms. The echo "
                f"never sees more than {CONN.max_connections} in flight and sees {CONN.max_connections} above it; no "
                f"request is rejected at any step (Envoy queues the excess as pending).",
    features=[Feature.CIRCUIT_BREAKING], profile=Profile.RESILIENCE, level=Level.CORE)
def test_max_connections(mesh, breaking_mesh, evidence):
    problems = measure_max_connections(mesh, breaking_mesh, evidence)
    assert not problems, "circuit breaker (max_connections) wrong: " + "; ".join(problems)


def measure_max_connections(mesh, breaking_mesh, evidence) -> list[str]:
    """The check's run and decision: its problems (none: it passed)."""
    limit = CONN.max_connections
    steps, arrivals = _run_sweep(breaking_mesh, mesh, "cb-connections", limit)
    rows = sweep_rows(steps, arrivals, HOLD_MS)
    _evidence(evidence, rows, limit, "max_connections")
    problems = judge_admission(rows, steps, cap=limit, cap_name="max_connections", reject_above=None,
                               hold_ms=HOLD_MS, overload_p50_bound_ms=OVERLOAD_P50_MS)
    return problems


RETRY_LEVELS = levels_for(RETRY.max_retries)


@conformance(
    short_name="MeshCircuitBreakerMaxRetries",
    description=f"max_retries={RETRY.max_retries} on a route with attempts=1, retry_on 5xx: bursts of "
                f"{RETRY_LEVELS} requests released together, each answered 503 on its first try and held "
                f"{RETRY_HOLD_MS:.0f} ms on its retry. No more than {RETRY.max_retries} retries reach the echo within "
                f"any {RETRY_HOLD_MS:.0f} ms (each is outstanding that long: exact, no leeway); bursts up to "
                f"{RETRY.max_retries} are all retried (200, two arrivals); a request not retried arrives once and gets "
                f"the upstream's 503; a larger burst retries at least one.",
    features=[Feature.CIRCUIT_BREAKING_RETRIES, Feature.RETRIES], profile=Profile.RESILIENCE, level=Level.CORE)
def test_max_retries(mesh, breaking_mesh, evidence):
    problems = measure_max_retries(mesh, breaking_mesh, evidence)
    assert not problems, "circuit breaker (max_retries) wrong: " + "; ".join(problems)


def measure_max_retries(mesh, breaking_mesh, evidence) -> list[str]:
    """The check's run and decision: its problems (none: it passed)."""
    echo = breaking_mesh.echo(workload("cb-retries"))
    mark = echo.journal_page_sync(key=uuid.uuid4().hex)[1]
    bursts, all_keys = {}, []
    for level in RETRY_LEVELS:
        keys = [uuid.uuid4().hex for _ in range(level)]
        for key in keys:
            echo.program_sync(key, [{"status": 503}], default={"delay_s": RETRY_HOLD_MS / 1e3})
        bursts[level] = burst(mesh, "cb-retries", keys, level)
        all_keys += keys
    wanted = set(all_keys)
    arrivals: dict[str, list[dict]] = {}
    for a in echo.journal_sync(since=mark):
        if a["key"] in wanted:
            arrivals.setdefault(a["key"], []).append(a)
    evidence["bursts"] = [{"burst": level, "statuses": [a.status for a in answers],
                           "arrivals": [len(arrivals.get(a.key, [])) for a in answers]}
                          for level, answers in bursts.items()]
    evidence.samples = len(all_keys)
    retry_times = [a[1]["t_ns"] for a in arrivals.values() if len(a) >= 2]
    evidence.measure("peak_retries_outstanding", max_overlap(retry_times, int(RETRY_HOLD_MS * 1e6)))
    problems = judge_retry_bursts(bursts, arrivals, max_retries=RETRY.max_retries, hold_ms=RETRY_HOLD_MS)
    return problems
