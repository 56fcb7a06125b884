"""The pure decisions of the balancing checks: no mesh, no I/O, so each can be simulated (seeded) in
tests/harness/test_balancing_power.py and replayed against a live mesh by bench/false_failures_balancing.py.

Every check here has a false-fail rate ≤ 0.1% (``FALSE_FAIL_RATE``) for all its rules together, and a
power ≥ 99% (``1 - MISS_RATE``) against the deviation it names; the derivations are in each docstring.
The budget is split explicitly (the shares add up to 0.1%, union bound):

- **Errors** (every check): non-echo answers with no status or a 5xx (a reset, a 502/503 of the mesh)
  are tolerated up to 0.1% of requests (:class:`harness.stats.ErrorBound`, Ville's inequality):
  ``ALPHA_ERRORS`` = 0.01% of every check's budget. Any other non-echo answer (a 200 of another
  service, a 404) fails at once: a correct mesh never gives one. Errored requests are left out of the
  shares and the ring's owners (their endpoint is unknown).
- MeshLbRoundRobinEven / MeshLbRandomUniform: SPRTs 0.045%, the capped fixed-n tests 0.045%.
- MeshLbLeastRequestAvoidsSlow: the slow-share SPRT 0.09%.
- MeshLbRingHashSticky: 0 violations (exact: 0 false-fail for a deterministic ring), errors 0.01%.
- MeshLbRingHashMinimalRemap: the moved-count range 0.09% (0.045% per tail, exact BetaBinomial), the
  zero-tolerance rules exact, errors 0.01%.

Measured rates and power: tests/harness/test_balancing_power.py (guards), bench/error_budgets.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Mapping, Sequence

from scipy import stats as _st

from harness.stats import Decision, ErrorBound, SequentialSplitTest, Sprt, binomial_test

FALSE_FAIL_RATE = 0.001
MISS_RATE = 0.01
ALPHA_ERRORS = 0.0001  # every check's share for its errors rule
ERRORS = ErrorBound(rate=0.001, alternative=0.01, alpha=ALPHA_ERRORS)
ENDPOINTS = ("0", "1", "2")  # the instances of each destination (echo answer's "instance")
N = len(ENDPOINTS)

# -- even spread (round robin, random) -----------------------------------------------------------

EVEN_DELTA = 0.05  # power 99% against any endpoint's share off 1/3 by ≥ 5 points
EVEN_BATCH = 32
EVEN_MAX_REQUESTS = 20_000
SEQUENTIAL_FALSE_FAIL = (FALSE_FAIL_RATE - ALPHA_ERRORS) / 2  # the SPRTs' share of the 0.1%: 0.045%
TRUNCATED_FALSE_FAIL = (FALSE_FAIL_RATE - ALPHA_ERRORS) / 2  # the fixed-n tests', when the cap stops the SPRTs
assert abs(SEQUENTIAL_FALSE_FAIL + TRUNCATED_FALSE_FAIL + ALPHA_ERRORS - FALSE_FAIL_RATE) < 1e-12


def even_split_test() -> SequentialSplitTest:
    """Equal weights over the 3 endpoints, judged by harness.stats.SequentialSplitTest: per endpoint two
    Wald SPRTs (1/3 against 1/3 ± 5 points; six SPRTs, union bound) at 0.045% in all, and power ≥ 99%
    against a 5-point imbalance. Another 0.045% belongs to :func:`even_truncated`, which decides when
    the check's time cap (or the request budget) ends the run before the SPRTs do, and 0.01% to the
    errors rule, so the false-fail rate is ≤ 0.1% with every rule included. Round robin is under-dispersed against the multinomial
    (its counts differ by at most 1), so for round robin the bound is conservative: the seeded
    simulation sees no false failure at all."""
    return SequentialSplitTest({e: 1 for e in ENDPOINTS}, alpha=SEQUENTIAL_FALSE_FAIL, beta=MISS_RATE,
                               delta=EVEN_DELTA, max_samples=EVEN_MAX_REQUESTS)


def even_truncated(counts: Mapping[str, int]) -> tuple[bool, str]:
    """The decision when the SPRTs have not decided by the cap: per endpoint the exact two-sided binomial
    test of 1/3 at 0.045%/3 (Bonferroni). The cap is a wall-clock time, so the n it stops at does not
    depend on which endpoints answered; at any fixed n this rule fails a correct (multinomial) spread
    with probability ≤ 0.045%. Its power depends on that n (reported); the 99% is the untruncated test's."""
    n = sum(counts.values())
    if n == 0:
        return False, "no answers before the time cap"
    level = TRUNCATED_FALSE_FAIL / N
    for e in ENDPOINTS:
        p = binomial_test(counts.get(e, 0), n, 1 / N)
        if p <= level:
            return False, (f"{e}: share {counts.get(e, 0) / n:.4f} after {n} requests (SPRTs undecided at the "
                           f"cap); exact binomial p = {p:.2g} ≤ {level:.2g}")
    return True, f"SPRTs undecided at the cap; the exact binomial tests at {n} requests pass"


# -- least request against a slow endpoint -------------------------------------------------------

SLOW_DELAY_S = 0.1  # the slow endpoint's echo holds every request 100 ms; the others answer at once
CONCURRENCY = 8  # closed loop: 8 senders, each sends its next request when its answer arrives
WARMUP_SENDS = 3 * CONCURRENCY  # the first picks are made before the slow endpoint is ever busy
LR_MAX_REQUESTS = 4_000
ALL_BUSIER_SHARE = 1 / N**2  # P2C: a host busier than every other one is picked only if both draws hit it
PASS_SHARE = 0.2  # H0 of the SPRT: a load-aware balancer's share of the slow endpoint is at most this
LOAD_BLIND_SHARE = 1 / N  # H1: a balancer that ignores load (random) gives the slow endpoint 1/3
LR_SPRT_FALSE_FAIL = FALSE_FAIL_RATE - ALPHA_ERRORS  # 0.09%


def p2c_share(active: Mapping[str, int], slow: str) -> float:
    """Envoy's P2C (choice_count 2, draws with replacement, ties to the first draw): the probability
    that one pick is ``slow`` given the active requests of each endpoint. Both draws slow: 1/N²; one
    draw slow and the other a fast endpoint f: slow wins as first draw when a_f ≥ a_slow, as second
    draw when a_f > a_slow. So 1/N² when the slow endpoint is busier than every other one, 1/N when all
    are tied (an idle mesh), in between otherwise."""
    a_s = active.get(slow, 0)
    others = [active.get(e, 0) for e in active if e != slow]
    return (1 + sum(a >= a_s for a in others) + sum(a > a_s for a in others)) / N**2


def slow_share_test() -> Sprt:
    """Wald SPRT on "this answer came from the slow endpoint": H0 share = 0.2 against H1 share = 1/3
    (load-blind). Errors: alpha_s = 0.0009·(1 − beta_s), beta_s = 0.005·(1 − alpha_s), so by Wald's
    inequalities P(fail | share ≤ 0.2) ≤ alpha_s/(1 − beta_s) = 0.09% (the errors rule has the other
    0.01% of the check's 0.1%) and P(pass | share ≥ 1/3) ≤
    beta_s/(1 − alpha_s) = 0.5% (monotone likelihood ratio: shares further out only help). The stated
    power is 99%; the design keeps half of the miss budget as margin (Wald's bounds are nearly tight
    here: the simulation at beta 1% caught 99.05%).

    Why 0.2 is above a correct mesh's share: under the check's load (8 senders in a closed loop, slow
    endpoint 100 ms, fast ones ~1-3 ms) the slow endpoint holds most of the 8 requests in flight, so it
    is busier than both fast endpoints at nearly every pick and P2C gives it 1/9 ≈ 0.111 (p2c_share);
    a share of 0.2 would need ties or a busier fast endpoint at 40% of the picks. The seeded
    event simulation of that loop (tests/harness/test_balancing_power.py) gives ≈ 0.10 (fast endpoints
    at ~2 ms) to ≈ 0.15 (at ~20 ms, a loaded machine).
    Against a load-blind balancer the picks are independent, so Wald's bounds hold as stated (the judge
    reads picks in send order, see SlowShareJudge). For P2C they are not (each pick depends on the
    requests in flight); its false-fail rate is therefore proven by that simulation."""
    beta_design = MISS_RATE / 2
    alpha_s = LR_SPRT_FALSE_FAIL * (1 - beta_design)
    beta_s = beta_design * (1 - alpha_s)
    return Sprt(PASS_SHARE, LOAD_BLIND_SHARE, alpha_s, beta_s)


@dataclass
class SlowShareJudge:
    """Feed each answer with the number of its send (``add(seq, from_slow)``, seq from 0 in send order).

    Answers are judged in *send* order, as far as every earlier send has been answered: so the judged
    sequence is a prefix of the balancer's picks. Judging in answer order instead would under-count the
    slow endpoint (its answers are the late ones), which biases against catching a load-blind balancer.
    The first ``WARMUP_SENDS`` sends are not judged (nothing is in flight yet: every pick is a tie).
    ``from_slow=None``: the send got an error (no echo answer, so its pick is unknown): it is skipped
    in the judged sequence and counted in ``errors`` for the errors rule."""

    sprt: Sprt = field(default_factory=slow_share_test)
    seen: int = 0
    judged: int = 0
    slow_answers: int = 0
    errors: int = 0
    _next: int = 0
    _waiting: dict = field(default_factory=dict)

    @property
    def decision(self) -> Decision:
        if self.sprt.decision is Decision.CONTINUE and self.judged >= LR_MAX_REQUESTS:
            return Decision.UNDECIDED
        return self.sprt.decision

    def add(self, seq: int, from_slow: bool | None) -> Decision:
        self.seen += 1
        self.errors += from_slow is None
        self._waiting[seq] = from_slow
        while self._next in self._waiting and self.decision is Decision.CONTINUE:
            slow = self._waiting.pop(self._next)
            self._next += 1
            if self._next > WARMUP_SENDS and slow is not None:
                self.judged += 1
                self.slow_answers += slow
                self.sprt.update(int(slow), 1)
        return self.decision

    @property
    def share(self) -> float:
        return self.slow_answers / self.judged if self.judged else math.nan

    @property
    def reason(self) -> str:
        d = self.decision
        share = f"slow endpoint's share {self.share:.3f} of {self.judged} answers"
        if d is Decision.ACCEPT_H0:
            return f"{share}: below the 0.2 a load-aware balancer stays under (P2C: 1/9 when it is busiest)"
        if d is Decision.ACCEPT_H1:
            return (f"{share}: consistent with a load-blind balancer (1/3), not below 0.2 - least request "
                    f"does not avoid the slow endpoint")
        if d is Decision.UNDECIDED:
            return f"{share}: undecided after {LR_MAX_REQUESTS} answers"
        return share


# -- ring hash -------------------------------------------------------------------------------------

STICKY_KEYS = 1_000
STICKY_ROUNDS = 2
REMAP_KEYS = 1_000
VNODES = 160  # the reference's points per endpoint (ketama); Envoy's default ring (1024) has more
REMAP_COUNT_FALSE_FAIL = FALSE_FAIL_RATE - ALPHA_ERRORS  # the moved-count range's share: 0.09%


def sticky_violations(answers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Keys answered by more than one endpoint: {key: sorted endpoints}. A ring on a header maps a key to
    one endpoint while the endpoint set does not change, so a correct mesh has none (0 tolerated)."""
    seen: dict[str, set[str]] = {}
    for key, endpoint in answers:
        seen.setdefault(key, set()).add(endpoint)
    return {k: sorted(v) for k, v in seen.items() if len(v) > 1}


@lru_cache(maxsize=None)
def moved_count_bounds(keys: int = REMAP_KEYS, endpoints: int = N, vnodes: int = VNODES,
                       alpha: float = REMAP_COUNT_FALSE_FAIL) -> tuple[int, int]:
    """The range of "keys that moved when one endpoint left" a correct ring stays in with ≥ 1 − alpha
    (alpha 0.09%: the errors rule has the other 0.01% of the check's 0.1%).

    The keys that move are those the leaving endpoint owned. On a ring of endpoints·vnodes points
    placed by a hash (uniform, independent), the arcs are Dirichlet(1, …, 1), so the leaving
    endpoint's share is Beta(vnodes, (endpoints − 1)·vnodes) (here Beta(160, 320): 1/3 ± 2.2 points),
    and with ``keys`` random keys the moved count is BetaBinomial(keys, 160, 320). Each tail gets
    alpha/2 (exact sums of the BetaBinomial pmf). A ring with more points per endpoint (Envoy's default) is tighter, so this bound is lenient
    for it; one with fewer (a coarser ring) may fail it - and its keys are then really unevenly spread.
    """
    dist = _st.betabinom(keys, vnodes, (endpoints - 1) * vnodes)
    low = int(dist.ppf(alpha / 2))  # P(M < low) ≤ alpha/2
    if dist.cdf(low - 1) > alpha / 2:
        low -= 1
    high = int(dist.isf(alpha / 2))  # P(M > high) ≤ alpha/2
    while dist.sf(high) > alpha / 2:
        high += 1
    return low, high


@dataclass(frozen=True)
class RemapVerdict:
    keys: int
    on_leaving: int  # keys the leaving endpoint answered before it left
    moved: int  # keys answered by another endpoint after it left (all of them, strays included)
    strays: tuple[str, ...]  # keys that were NOT on the leaving endpoint and moved anyway (0 tolerated)
    still_on_leaving: tuple[str, ...]  # keys the left endpoint still answered (0 tolerated)
    not_back: tuple[str, ...]  # after it came back, keys not on their first endpoint (0 tolerated)
    bounds: tuple[int, int]

    @property
    def moved_fraction(self) -> float:
        return self.moved / self.keys if self.keys else math.nan

    @property
    def problems(self) -> list[str]:
        out = []
        if self.strays:
            out.append(f"{len(self.strays)} of {self.keys - self.on_leaving} keys that were not on the leaving "
                       f"endpoint moved (0 allowed: the remaining endpoints' ring points do not change; "
                       f"the ring remaps keys it should keep), e.g. {self.strays[0]}")
        if self.still_on_leaving:
            out.append(f"{len(self.still_on_leaving)} keys still reached the endpoint after it left, "
                       f"e.g. {self.still_on_leaving[0]}")
        low, high = self.bounds
        if not low <= self.moved <= high:
            out.append(f"{self.moved} of {self.keys} keys moved ({self.moved_fraction:.3f}); a ring of "
                       f"{VNODES} points per endpoint moves {low}..{high} (about 1/{N}) with "
                       f"{1 - REMAP_COUNT_FALSE_FAIL:.2%}")
        if self.not_back:
            out.append(f"{len(self.not_back)} keys did not return to their endpoint once it was back "
                       f"(the same endpoint set must give the same ring), e.g. {self.not_back[0]}")
        return out


def judge_remap(before: Mapping[str, str], after: Mapping[str, str], back: Mapping[str, str] | None,
                leaving: str) -> RemapVerdict:
    """``before``/``after``/``back``: the endpoint that answered each key with all endpoints, after
    ``leaving`` left, and (for the keys in ``back``) after it came back (None: not measured). A key
    missing from ``before`` or ``after`` (its request got an error: the errors rule judges those) is
    left out; which keys err does not depend on the ring, so the moved count of the rest is still
    BetaBinomial(len(keys), ...)."""
    keys = sorted(k for k in before if k in after)
    on_leaving = [k for k in keys if before[k] == leaving]
    moved = [k for k in keys if after.get(k) != before[k]]
    strays = tuple(k for k in moved if before[k] != leaving)
    still = tuple(k for k in keys if after.get(k) == leaving)
    not_back = tuple(k for k in (back or {}) if k in before and back[k] != before[k])
    return RemapVerdict(keys=len(keys), on_leaving=len(on_leaving), moved=len(moved),
                        strays=strays, still_on_leaving=still, not_back=not_back,
                        bounds=moved_count_bounds(len(keys)))


def spread(owners: Sequence[str]) -> dict[str, int]:
    counts = {e: 0 for e in ENDPOINTS}
    for o in owners:
        counts[o] = counts.get(o, 0) + 1
    return counts
