"""How the balancing checks drive a mesh: who calls whom, concurrent sending, and one judge per check.

Each ``judge_*`` function sends real requests through the mesh and feeds what it saw to the pure
decision of suites/balancing/_decisions.py; the checks, the sensitivity tests and
bench/false_failures_balancing.py all call these same functions. Which endpoint answered is the echo's
own word (its JSON ``service`` and ``instance``), never the mesh's.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

from fixtures.echo.answer import echo_identity
from harness.adapters.base import HttpRequest, HttpResponse
from harness.stats import Decision

from ._decisions import (CONCURRENCY, ERRORS, EVEN_BATCH, LR_MAX_REQUESTS, REMAP_KEYS, SLOW_DELAY_S,
                         STICKY_KEYS, STICKY_ROUNDS, RemapVerdict, SlowShareJudge, even_split_test,
                         even_truncated, judge_remap, sticky_violations)

CLIENT = "client-v1-0"
KEY_HEADER = "x-echo-key"
HASH_HEADER = "x-user"  # the ring's hash_header in scenario.yaml
THREADS = 8
RR, LR, RING, RANDOM = "rr", "lr", "ring", "rand"
SLOW_WORKLOAD = f"{LR}-v1-0"  # instance 0 of the least-request destination is the slow one
SLOW_ENDPOINT = "0"
LEAVING_WORKLOAD = f"{RING}-v1-2"  # the last instance: the one a scale-down by one removes
LEAVING_ENDPOINT = "2"
LR_DEADLINE_S = 12.0
EVEN_DEADLINE_S = 14.0


def endpoint_of(response: HttpResponse, service: str) -> str | None:
    """The instance of ``service`` whose echo answered, or None if no echo of it answered."""
    who = echo_identity(response.body) if response.status == 200 else None
    return who.instance if who is not None and who.service == service else None


def describe(response: HttpResponse) -> str:
    return f"{response.status} {response.error or response.body[:80]!r}"


def is_error(response: HttpResponse) -> bool:
    """A non-echo answer the errors rule counts: no HTTP answer (reset, EOF, timeout) or a 5xx. Any other
    non-echo answer (a 200 of another service, a 404) is wrong: a correct mesh never gives one."""
    return response.status is None or response.status >= 500


def errors_problem(errors: Sequence[str], requests: int) -> str | None:
    """The errors rule's finding (None: within it)."""
    if not ERRORS.exceeded(len(errors), requests):
        return None
    return (f"too many errors for a correct mesh ({ERRORS.describe()}): {ERRORS.verdict(len(errors), requests)}, "
            f"e.g. {errors[0]}")


def send_all(mesh, requests: Sequence[HttpRequest], pool: ThreadPoolExecutor) -> list[HttpResponse]:
    return list(pool.map(lambda r: mesh.send(CLIENT, r), requests))


# -- even spread: round robin and random ------------------------------------------------------------

@dataclass
class EvenResult:
    service: str
    decision: Decision
    reason: str
    counts: dict[str, int]
    requests: int
    seconds: float
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # non-echo answers the errors rule counts
    truncated: bool = False  # the time cap ended the SPRTs; the fixed-n exact tests decided
    wrong: list[str] = field(default_factory=list)  # other non-echo answers: a correct mesh gives none

    @property
    def errors_problem(self) -> str | None:
        return errors_problem(self.errors, self.requests)

    @property
    def passed(self) -> bool:
        return self.decision is Decision.ACCEPT_H0 and not self.wrong and not self.errors_problem


def judge_even(mesh, service: str, pool: ThreadPoolExecutor) -> EvenResult:
    """Batches of 32 requests to ``service`` until the equal-weights sequential test decides. Errors
    (:func:`is_error`) are left out of the counts and judged by the errors rule after every batch; any
    other non-echo answer stops the check."""
    test = even_split_test()
    request = HttpRequest(host=service, path="/balance")
    errors: list[str] = []
    wrong: list[str] = []
    began = time.monotonic()
    while test.decision is Decision.CONTINUE and time.monotonic() - began < EVEN_DEADLINE_S:
        answers = send_all(mesh, [request] * EVEN_BATCH, pool)
        endpoints = [endpoint_of(a, service) for a in answers]
        errors += [describe(a) for a, e in zip(answers, endpoints) if e is None and is_error(a)]
        wrong += [describe(a) for a, e in zip(answers, endpoints) if e is None and not is_error(a)]
        if wrong or ERRORS.exceeded(len(errors), test.n + len(errors) + sum(e is not None for e in endpoints)):
            break  # a wrong answer, or more errors than a correct mesh gives: no share is worth judging
        test.update(Counter(e for e in endpoints if e is not None))
    decision, reason = test.decision, test.reason
    stopped = bool(wrong) or ERRORS.exceeded(len(errors), test.n + len(errors))
    truncated = decision in (Decision.CONTINUE, Decision.UNDECIDED) and not stopped
    if truncated:
        passed, why = even_truncated(test.counts)
        decision = Decision.ACCEPT_H0 if passed else Decision.ACCEPT_H1
        reason = f"time cap {EVEN_DEADLINE_S:.0f} s or budget reached: {why}"
    return EvenResult(service, decision, reason, dict(test.counts), test.n + len(errors) + len(wrong),
                      time.monotonic() - began, test.intervals(0.999), errors, truncated, wrong)


# -- least request against a slow endpoint -------------------------------------------------------------

@dataclass
class SlowShareResult:
    decision: Decision
    reason: str
    share: float
    judged: int
    counts: dict[str, int]
    seconds: float
    errors: list[str] = field(default_factory=list)  # non-echo answers the errors rule counts
    wrong: list[str] = field(default_factory=list)  # other non-echo answers: a correct mesh gives none
    requests: int = 0  # answers seen (judged, warm-up, errors)

    @property
    def errors_problem(self) -> str | None:
        return errors_problem(self.errors, self.requests)

    @property
    def passed(self) -> bool:
        return self.decision is Decision.ACCEPT_H0 and not self.wrong and not self.errors_problem


def judge_least_request(mesh, deployment) -> SlowShareResult:
    """Make ``lr-v1-0`` slow (its echo holds this run's key 100 ms), then run ``CONCURRENCY`` senders
    in a closed loop (each sends again as soon as its answer arrives) and feed every answer to the
    slow-share SPRT until it decides, bounded by ``LR_MAX_REQUESTS`` judged answers and 12 s. Errors are
    skipped in the judged sequence and judged by the errors rule; any other non-echo answer stops it."""
    key = uuid.uuid4().hex
    deployment.echo(SLOW_WORKLOAD).program_sync(key, [], default={"delay_s": SLOW_DELAY_S})
    judge = SlowShareJudge()
    counts: Counter[str] = Counter()
    errors: list[str] = []
    wrong: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    began = time.monotonic()
    request = HttpRequest(host=LR, path="/balance", headers={KEY_HEADER: key})

    sent = iter(range(10 * LR_MAX_REQUESTS))  # send numbers, taken under the lock

    def sender() -> None:
        while not stop.is_set() and time.monotonic() - began < LR_DEADLINE_S:
            with lock:
                seq = next(sent)
            answer = mesh.send(CLIENT, request)
            endpoint = endpoint_of(answer, LR)
            with lock:
                if stop.is_set():
                    return
                if endpoint is None and not is_error(answer):
                    wrong.append(describe(answer))
                    stop.set()
                    return
                if endpoint is None:
                    errors.append(describe(answer))
                else:
                    counts[endpoint] += 1
                decided = judge.add(seq, None if endpoint is None else endpoint == SLOW_ENDPOINT)
                if decided is not Decision.CONTINUE or ERRORS.exceeded(len(errors), judge.seen):
                    stop.set()

    threads = [threading.Thread(target=sender, name=f"lr-{i}", daemon=True) for i in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(LR_DEADLINE_S + 15)  # bounded: each send has the client's own 10 s timeout
    stop.set()
    decision, reason = judge.decision, judge.reason
    if decision is Decision.CONTINUE:
        decision = Decision.UNDECIDED
        reason = f"{reason}: no decision within {LR_DEADLINE_S:.0f} s"
    return SlowShareResult(decision, reason, judge.share, judge.judged, dict(counts), time.monotonic() - began,
                           errors, wrong, judge.seen)


# -- ring hash ----------------------------------------------------------------------------------------

def _ring_request(key: str) -> HttpRequest:
    return HttpRequest(host=RING, path="/balance", headers={HASH_HEADER: key, KEY_HEADER: key})


def owners(mesh, keys: Sequence[str], pool: ThreadPoolExecutor) -> tuple[dict[str, str], list[str], list[str]]:
    """The endpoint that answered one request per key, the errors (:func:`is_error`) and the wrong
    answers (any other non-echo answer)."""
    answers = send_all(mesh, [_ring_request(k) for k in keys], pool)
    found, errors, wrong = {}, [], []
    for k, a in zip(keys, answers):
        e = endpoint_of(a, RING)
        if e is None:
            (errors if is_error(a) else wrong).append(f"{k}: {describe(a)}")
        else:
            found[k] = e
    return found, errors, wrong


@dataclass
class StickyResult:
    keys: int
    requests: int
    violations: dict[str, list[str]]
    spread: dict[str, int]
    seconds: float
    errors: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    @property
    def errors_problem(self) -> str | None:
        return errors_problem(self.errors, self.requests)

    @property
    def passed(self) -> bool:
        return not self.violations and not self.wrong and not self.errors_problem


def judge_sticky(mesh, pool: ThreadPoolExecutor, keys: int = STICKY_KEYS, rounds: int = STICKY_ROUNDS,
                 seed: int | None = None) -> StickyResult:
    """``keys`` fresh keys, each sent ``rounds`` times: every round sends all keys in a new random order
    (so a key's requests are interleaved with everybody else's). 0 violations tolerated."""
    rng = random.Random(seed)
    prefix = uuid.uuid4().hex[:12]
    names = [f"{prefix}-{i}" for i in range(keys)]
    seen: list[tuple[str, str]] = []
    errors: list[str] = []
    wrong: list[str] = []
    began = time.monotonic()
    first: dict[str, str] = {}
    for r in range(rounds):
        order = names[:]
        rng.shuffle(order)
        found, bad, odd = owners(mesh, order, pool)
        errors += bad
        wrong += odd
        seen += list(found.items())
        if r == 0:
            first = found
        if wrong or errors_problem(errors, len(seen) + len(errors)):
            break
    counts = Counter(first.values())
    return StickyResult(keys, len(seen) + len(errors) + len(wrong), sticky_violations(seen),
                        {e: counts.get(e, 0) for e in ("0", "1", "2")}, time.monotonic() - began, errors, wrong)


@dataclass
class RemapResult:
    verdict: RemapVerdict | None
    withdraw_seconds: float
    seconds: float
    arrivals_after_leaving: int
    errors: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    requests: int = 0

    @property
    def problems(self) -> list[str]:
        out = [f"{len(self.wrong)} answer(s) neither an echo answer nor an error, e.g. {self.wrong[0]}"] if self.wrong else []
        too_many = errors_problem(self.errors, self.requests)
        if too_many:
            out.append(too_many)
        if self.verdict is not None:
            out += self.verdict.problems
        if self.arrivals_after_leaving:
            out.append(f"the left endpoint's echo journal shows {self.arrivals_after_leaving} arrivals of this "
                       f"run's keys after it left (0 allowed)")
        return out

    @property
    def passed(self) -> bool:
        return self.verdict is not None and not self.problems


def judge_remap_on_leave(mesh, deployment, pool: ThreadPoolExecutor, keys: int = REMAP_KEYS) -> RemapResult:
    """Owners of ``keys`` fresh keys with all 3 endpoints; withdraw ``ring-v1-2`` through the mesh's
    EndpointMembership (every caller has the 2-endpoint set when it returns); owners again; put it back;
    owners a third time of the keys that moved and as many that did not (about 2/3 of the keys). The
    left endpoint's journal must show none of the keys while it was out."""
    prefix = uuid.uuid4().hex[:12]
    names = [f"{prefix}-{i}" for i in range(keys)]
    began = time.monotonic()
    before, errors, wrong = owners(mesh, names, pool)
    requests = len(names)
    if wrong or errors_problem(errors, requests):
        return RemapResult(None, 0.0, time.monotonic() - began, 0, errors, wrong, requests)
    echo = deployment.echo(LEAVING_WORKLOAD)
    lease = mesh.withdraw_endpoint(LEAVING_WORKLOAD)
    try:
        mark = echo.journal_page_sync(key=uuid.uuid4().hex)[1]
        after, bad, odd = owners(mesh, names, pool)
        wanted = set(names)
        late = sum(1 for a in echo.journal_sync(since=mark) if a["key"] in wanted)
    finally:
        lease.heal()
    errors, wrong, requests = errors + bad, wrong + odd, requests + len(names)
    if wrong or errors_problem(errors, requests):
        return RemapResult(None, lease.seconds, time.monotonic() - began, late, errors, wrong, requests)
    # back: the keys that moved, and as many that did not (those already kept their endpoint once);
    # keys with an error before or after are left out (errors rule)
    both = [k for k in names if k in before and k in after]
    moved = [k for k in both if after[k] != before[k]]
    kept = [k for k in both if after[k] == before[k]][:len(moved)]
    back, bad, odd = owners(mesh, moved + kept, pool)
    errors, wrong, requests = errors + bad, wrong + odd, requests + len(moved) + len(kept)
    verdict = judge_remap(before, after, back, LEAVING_ENDPOINT)
    return RemapResult(verdict, lease.seconds, time.monotonic() - began, late, errors, wrong, requests)
