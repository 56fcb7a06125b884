"""False-fail rates and power of the balancing checks' pure decisions (issue 14), vectorised so the guard
tests (tests/harness/test_balancing_power.py) and bench/error_budgets.py can afford ≥ 100,000 runs.

- Least request (MeshLbLeastRequestAvoidsSlow): :func:`simulate_least_request` — the check's closed loop
  (``CONCURRENCY`` senders, the slow endpoint ``SLOW_DELAY_S`` slower) as events, one completion per run
  per step, vectorised over runs: the completion frees its endpoint, the sender's next pick is Envoy's
  P2C at that moment (two uniform draws with replacement, the second wins only when strictly less
  busy: ``meshproxy.policy.balancer.LeastRequest``), and every pick from the 25th send on is fed to the
  slow-share SPRT (``slow_share_test()``) in send order, as ``SlowShareJudge`` does. The draws can be
  kept (``history``) and replayed into the real ``LeastRequest`` and ``SlowShareJudge`` (the guard tests
  do, to prove it is the same decision).
- Ring remap (MeshLbRingHashMinimalRemap): :func:`ring_leaving_shares` builds the reference ring
  (``meshproxy.policy.balancer.RingHash``'s own ring, BLAKE2b points) on random endpoint addresses and returns the
  leaving endpoint's share of the hash space; given the share f, keys hash uniformly, so the moved count
  is Binomial(keys, f) and :func:`remap_fail_given_shares` is the *exact* conditional probability that
  it leaves the check's range. Averaging it over rings (Rao–Blackwell) estimates the count rule's rate
  with far less noise than counting failed runs.
"""

from __future__ import annotations

import random

import numpy as np
from scipy import stats as _st

from suites.balancing._decisions import (CONCURRENCY, LR_MAX_REQUESTS, REMAP_KEYS, SLOW_DELAY_S, VNODES,
                                         WARMUP_SENDS, moved_count_bounds, slow_share_test)

SEND_GAP_S = 0.0002  # the loop's own spacing: a sender sends its next request this long after an answer


def _pick(u1: np.ndarray, u2: np.ndarray, active: np.ndarray, load_blind: bool) -> np.ndarray:
    first = np.minimum((u1 * 3).astype(np.int64), 2)
    if load_blind:
        return first
    second = np.minimum((u2 * 3).astype(np.int64), 2)
    rows = np.arange(active.shape[0])
    return np.where(active[rows, second] < active[rows, first], second, first)


def simulate_least_request(runs: int, seed: int, *, fast_s: float = 0.002, slow_s: float = SLOW_DELAY_S,
                           load_blind: bool = False, history: int = 0, sprt_factory=slow_share_test):
    """``runs`` seeded runs of the least-request check's decision. An answer takes ``fast_s`` × (0.5 +
    Exponential(mean 0.5)) plus ``slow_s`` for endpoint 0. Returns (decision array "fail"/"pass"/
    "undecided", judged answers, slow share of the judged, and with ``history`` > 0 the draws
    (u1, u2, jitter) of every send of the first ``history`` runs, to replay)."""
    sprt = sprt_factory()
    win, loss, upper, lower = sprt._win, sprt._loss, sprt.upper, sprt.lower
    rng = np.random.default_rng(seed)
    c = CONCURRENCY
    finish = np.zeros((runs, c))
    slot_ep = np.zeros((runs, c), np.int64)
    active = np.zeros((runs, 3), np.int64)
    llr = np.zeros(runs)
    judged = np.zeros(runs, np.int64)
    slow = np.zeros(runs, np.int64)
    decision = np.full(runs, "", dtype=object)
    hist = [[] for _ in range(min(history, runs))]

    def draws(r: int):
        return rng.random(r), rng.random(r), rng.exponential(0.5, r)

    def record(idx: np.ndarray, u1, u2, jit):
        for j, run in enumerate(idx):
            if run < len(hist):
                hist[run].append((u1[j], u2[j], jit[j]))

    everyone = np.arange(runs)
    for i in range(c):  # the first sends, SEND_GAP_S apart, all before any answer
        u1, u2, jit = draws(runs)
        record(everyone, u1, u2, jit)
        ep = _pick(u1, u2, active, load_blind)
        active[everyone, ep] += 1
        slot_ep[:, i] = ep
        finish[:, i] = i * SEND_GAP_S + fast_s * (0.5 + jit) + np.where(ep == 0, slow_s, 0.0)
    live = everyone
    seq = c  # the send number of the next pick (the same in every live run)
    while live.size:
        slot = np.argmin(finish[live], axis=1)
        now = finish[live, slot]
        active[live, slot_ep[live, slot]] -= 1
        u1, u2, jit = draws(live.size)
        record(live, u1, u2, jit)
        ep = _pick(u1, u2, active[live], load_blind)
        active[live, ep] += 1
        slot_ep[live, slot] = ep
        finish[live, slot] = now + SEND_GAP_S + fast_s * (0.5 + jit) + np.where(ep == 0, slow_s, 0.0)
        if seq >= WARMUP_SENDS:
            is_slow = ep == 0
            llr[live] += np.where(is_slow, win, loss)
            judged[live] += 1
            slow[live] += is_slow
            fail = llr[live] >= upper
            ok = ~fail & (llr[live] <= lower)
            out = ~fail & ~ok & (judged[live] >= LR_MAX_REQUESTS)
            decision[live[fail]] = "fail"
            decision[live[ok]] = "pass"
            decision[live[out]] = "undecided"
            live = live[~(fail | ok | out)]
        seq += 1
    share = slow / np.maximum(judged, 1)
    return (decision, judged, share, hist) if history else (decision, judged, share)


class ReplayRng:
    """A stand-in for ``random.Random`` that hands out queued draws (the vectorised simulation's)."""

    def __init__(self) -> None:
        self.queue: list[float] = []

    def random(self) -> float:
        return self.queue.pop(0)


def replay_least_request(draws, *, fast_s: float = 0.002, slow_s: float = SLOW_DELAY_S, load_blind: bool = False):
    """One run of the real ``LeastRequest`` and ``SlowShareJudge`` (event by event, as the live check
    feeds them) on recorded draws; returns (decision, judged)."""
    import heapq

    from harness.stats import Decision
    from meshproxy.policy.balancer import LeastRequest
    from suites.balancing._decisions import ENDPOINTS, SlowShareJudge

    balancer, judge, rng = LeastRequest(load_blind=load_blind), SlowShareJudge(), ReplayRng()
    events: list[tuple[float, int, str]] = []
    it = iter(draws)
    seq = 0

    def send(at: float) -> None:
        nonlocal seq
        u1, u2, jit = next(it)
        rng.queue = [u1, u2]
        endpoint = balancer.pick(ENDPOINTS, rng)
        balancer.started(endpoint)
        heapq.heappush(events, (at + fast_s * (0.5 + jit) + (slow_s if endpoint == "0" else 0.0), seq, endpoint))
        seq += 1

    for i in range(CONCURRENCY):
        send(i * SEND_GAP_S)
    while judge.decision is Decision.CONTINUE:
        now, sent, endpoint = heapq.heappop(events)
        balancer.finished(endpoint)
        judge.add(sent, endpoint == "0")
        try:
            send(now + SEND_GAP_S)
        except StopIteration:  # the simulation stopped drawing once it had decided
            while judge.decision is Decision.CONTINUE and events:
                now, sent, endpoint = heapq.heappop(events)
                judge.add(sent, endpoint == "0")
            break
    return judge.decision, judge.judged


# -- ring remap ------------------------------------------------------------------------------------

def ring_leaving_shares(rings: int, seed: int, *, vnodes: int = VNODES, salted: bool = False) -> np.ndarray:
    """The share of the 64-bit hash space owned by the last of 3 endpoints (random addresses in a
    127.x.y block, as the reference deploys them) on ``rings`` reference rings."""
    from meshproxy.policy.balancer import RingHash

    rng = random.Random(seed)
    out = np.empty(rings)
    space = float(2 ** 64)
    for r in range(rings):
        block = f"127.{rng.randrange(256)}.{rng.randrange(256)}"
        endpoints = [f"{block}.{10 + i}:15006" for i in range(3)]
        ring = RingHash(vnodes, salted=salted)._ring(endpoints)  # the very ring its picks use
        points = np.array(ring.points, dtype=float)
        mine = np.array([o == endpoints[2] for o in ring.owners])
        # a key goes to the first point at or after its hash (wrapping): point i owns (p[i-1], p[i]]
        arcs = np.diff(np.concatenate([[points[-1] - space], points]))
        out[r] = arcs[mine].sum() / space
    return out


def remap_fail_given_shares(shares: np.ndarray, keys: int = REMAP_KEYS,
                            bounds: tuple[int, int] | None = None) -> np.ndarray:
    """Exact P(the moved count leaves ``bounds``) for each leaving-endpoint share (keys hash uniformly:
    the count is Binomial(keys, share))."""
    low, high = bounds or moved_count_bounds(keys)
    return _st.binom.cdf(low - 1, keys, shares) + _st.binom.sf(high, keys, shares)


def remap_fail_model(keys: int = REMAP_KEYS, bounds: tuple[int, int] | None = None, vnodes: int = VNODES) -> float:
    """Exact P(the moved count leaves ``bounds``) under the bound's own model, BetaBinomial(keys, v, 2v)."""
    low, high = bounds or moved_count_bounds(keys)
    dist = _st.betabinom(keys, vnodes, 2 * vnodes)
    return float(dist.cdf(low - 1) + dist.sf(high))
