"""Helpers of the routing suite: who calls whom, concurrent sending, and the weighted-split decision.

The split decision is split in two so it can be simulated without a mesh: :func:`split_test` builds the
sequential test of one declared split (pure), :func:`judge_split` drives it with real requests
through the mesh. The suite's checks, the sensitivity tests, the power simulation
(tests/harness/test_split_power.py) and bench/false_failures_routing.py all use these same two.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from fixtures.echo.answer import echo_identity
from harness.adapters.base import HttpRequest, HttpResponse
from harness.stats import Decision, ErrorBound, SequentialSplitTest

CLIENT = "client-v1-0"
DESTINATION = "backend"
VERSIONS = ("v1", "v2", "v3")
BACKEND_WORKLOADS = tuple(f"{DESTINATION}-{v}-0" for v in VERSIONS)
KEY_HEADER = "x-echo-key"

THREADS = 8  # concurrent requests: keeps wall time low without overloading one sidecar
BATCH = 32  # requests sent between two looks of the sequential test (Wald's bounds hold for batches)

FALSE_FAIL_RATE = 0.001  # alpha of every split check, all its rules together
SPRT_FALSE_FAIL = 0.0009  # the sequential share test's part of it
MISS_RATE = 0.01  # beta: power 99% against the stated deviation
# The errors rule's part: non-echo answers with no status or a 5xx (a reset, a 502/503 from the mesh) are
# tolerated up to 0.1% of requests (a correct mesh on a busy machine loses one now and then); the check
# fails when Wald's likelihood ratio of 1% against 0.1% reaches 10,000 (Ville: ≤ 0.01% for any error
# rate ≤ 0.1%, at every look). Other non-echo answers (a 200 from another service, a 404) fail at once:
# a correct mesh never gives one.
ERRORS = ErrorBound(rate=0.001, alternative=0.01, alpha=FALSE_FAIL_RATE - SPRT_FALSE_FAIL)


@dataclass(frozen=True)
class SplitSpec:
    """A declared split and the smallest deviation of any backend's share it must catch with 99%.

    ``delta`` is in share units (0.02 = 2 points). The budget ``max_requests`` (40,000) is 18 to 27
    times the median a correct mesh needs (1,472 to 2,240); the exact computation for the two-backend
    splits (tests/harness/test_split_power.py) puts "undecided" below 1e-9, and no run of 200,000
    simulated correct 80/10/10 runs reached it.
    """

    short_name: str
    path: str
    weights: dict[str, int]
    delta: float
    max_requests: int = 40_000

    @property
    def label(self) -> str:
        return "/".join(str(w) for w in self.weights.values())


# The routes of scenario.yaml. 95/5: 2 points on the 5% canary (SPEC §4). The others: a deviation of
# similar difficulty (the 76/24 of a broken 70/30 is 6 points, well beyond 4).
SPLITS: dict[str, SplitSpec] = {s.short_name: s for s in (
    SplitSpec("MeshWeightedSplit95x5", "/split/95-5", {"v1": 95, "v2": 5}, delta=0.02),
    SplitSpec("MeshWeightedSplit70x30", "/split/70-30", {"v1": 70, "v2": 30}, delta=0.04),
    SplitSpec("MeshWeightedSplit50x50", "/split/50-50", {"v1": 50, "v2": 50}, delta=0.04),
    SplitSpec("MeshWeightedSplit80x10x10", "/split/80-10-10", {"v1": 80, "v2": 10, "v3": 10}, delta=0.03),
)}


def split_test(spec: SplitSpec) -> SequentialSplitTest:
    """The sequential share test of ``spec``: false-fail ≤ 0.09%, power ≥ 99% against ``spec.delta``."""
    return SequentialSplitTest(spec.weights, alpha=SPRT_FALSE_FAIL, beta=MISS_RATE, delta=spec.delta,
                               max_samples=spec.max_requests)


# -- sending ---------------------------------------------------------------------------------------

def send_all(mesh, requests: Sequence[HttpRequest], pool: ThreadPoolExecutor) -> list[HttpResponse]:
    """Send ``requests`` from the client workload, ``THREADS`` at a time; answers in request order."""
    return list(pool.map(lambda r: mesh.send(CLIENT, r), requests))


def version_of(response: HttpResponse) -> str | None:
    """The version of the echo that answered, or None if the answer did not come from an echo."""
    who = echo_identity(response.body) if response.status == 200 else None
    return who.version if who is not None and who.service == DESTINATION else None


def describe(response: HttpResponse) -> str:
    return f"{response.status} {response.error or response.body[:80]!r}"


def is_error(response: HttpResponse) -> bool:
    """A non-echo answer the errors rule counts: no HTTP answer (reset, EOF, timeout) or a 5xx."""
    return response.status is None or response.status >= 500


@dataclass
class SplitResult:
    """What one run of a split check observed and decided."""

    spec: SplitSpec
    decision: Decision
    reason: str
    counts: dict[str, int]
    requests: int
    seconds: float
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # non-echo answers the errors rule counts
    wrong: list[str] = field(default_factory=list)  # other non-echo answers: a correct mesh gives none

    @property
    def errors_exceeded(self) -> bool:
        return ERRORS.exceeded(len(self.failures), self.requests)

    @property
    def passed(self) -> bool:
        return self.decision is Decision.ACCEPT_H0 and not self.wrong and not self.errors_exceeded


def judge_split(mesh, spec: SplitSpec, *, pool: ThreadPoolExecutor | None = None) -> SplitResult:
    """Send batches of ``BATCH`` requests to ``spec.path`` until the sequential test decides (or the
    budget is spent), counting which version answered each. Errors (:func:`is_error`) are left out of the
    shares and judged by :data:`ERRORS` after every batch; any other non-echo answer stops the check."""
    own_pool = pool is None
    pool = pool or ThreadPoolExecutor(THREADS, thread_name_prefix="split")
    test = split_test(spec)
    request = HttpRequest(host=DESTINATION, path=spec.path)
    failures: list[str] = []
    wrong: list[str] = []
    began = time.monotonic()
    try:
        while test.decision is Decision.CONTINUE:
            batch = min(BATCH, spec.max_requests - test.n)
            answers = send_all(mesh, [request] * batch, pool)
            versions = [version_of(a) for a in answers]
            failures += [describe(a) for a, v in zip(answers, versions) if v is None and is_error(a)]
            wrong += [describe(a) for a, v in zip(answers, versions) if v is None and not is_error(a)]
            if wrong or ERRORS.exceeded(len(failures), test.n + len(failures) + sum(v is not None for v in versions)):
                break  # a wrong answer, or more errors than a correct mesh gives: no share is worth judging
            test.update(Counter(v for v in versions if v is not None))
    finally:
        if own_pool:
            pool.shutdown(wait=True)
    return SplitResult(spec=spec, decision=test.decision, reason=test.reason, counts=dict(test.counts),
                       requests=test.n + len(failures), seconds=time.monotonic() - began,
                       intervals=test.intervals(1 - FALSE_FAIL_RATE), failures=failures, wrong=wrong)


def versions_answering(mesh, requests: Iterable[HttpRequest], pool: ThreadPoolExecutor) -> list[str]:
    """The version (or the failure, described) that answered each request, in order."""
    return [version_of(a) or f"not an echo answer: {describe(a)}" for a in send_all(mesh, list(requests), pool)]
