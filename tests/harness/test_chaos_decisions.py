"""The chaos checks' pure decisions (suites/chaos/_decisions.py) on made-up timelines, and their stated
error rates: the partition check's false-failure rate computed exactly and checked by seeded simulation
of the decision, the upstream-kill budget checked against a simulated round robin."""

from __future__ import annotations

import math
import random

import pytest

from suites.chaos._decisions import (Shot, judge_partition, judge_per_try_timeout, judge_restart, judge_route_timeout,
                                     judge_upstream_kill, kill_error_budget, outage, partition_false_fail_rate)
from suites.chaos.test_partition import FALSE_FAIL, INSTANCES, REQUESTS_BOUND, RETRIES

MS = 1_000_000
S = 1_000_000_000
A, B, C = "kill-v1-0", "kill-v1-1", "kill-v1-2"


def shot(sent_ms: float, *, ok: bool = True, endpoint: str | None = None, took_ms: float = 2.0,
         status: int | None = None) -> Shot:
    sent = int(sent_ms * MS)
    return Shot(sent, sent, sent + int(took_ms * MS), status if status is not None else (200 if ok else 503),
                endpoint if ok else None)


def round_robin_load(*, kill_ms: float, removed_ms: float | None, end_ms: float, period_ms: float = 10.0,
                     endpoints=(A, B, C)) -> list[Shot]:
    """Sequential round-robin picks; the first endpoint dies at kill_ms and leaves the rotation at removed_ms."""
    shots, i, t = [], 0, 0.0
    while t < end_ms:
        live = [e for e in endpoints if removed_ms is None or t < removed_ms or e != A]
        pick = live[i % len(live)]
        i += 1
        dead = pick == A and t >= kill_ms
        shots.append(shot(t, ok=not dead, endpoint=pick))
        t += period_ms
    return shots


KILL = dict(kill_ns=1000 * MS, killed=A, survivors=[B, C], stop_bound_s=1.0, instances=3, mechanism="its health check")


def test_kill_passes_when_failures_stop_within_the_bound():
    shots = round_robin_load(kill_ms=1000, removed_ms=1300, end_ms=4000)
    assert judge_upstream_kill(shots, **KILL) == []


def test_kill_fails_when_failures_never_stop():
    shots = round_robin_load(kill_ms=1000, removed_ms=None, end_ms=4000)
    problems = judge_upstream_kill(shots, **KILL)
    assert any("errors did not stop" in p and "its health check did not take it out" in p for p in problems)
    assert any("more than the" in p for p in problems)


def test_kill_fails_on_failures_before_the_kill_and_a_missing_survivor():
    shots = [shot(500, ok=False)] + [shot(t, endpoint=B) for t in range(2100, 3000, 10)]
    problems = judge_upstream_kill(shots, **KILL)
    assert any("before the kill" in p for p in problems)
    assert any(f"surviving instance {C}" in p for p in problems)


def test_kill_fails_when_the_killed_instance_still_answers_and_when_the_load_ends_early():
    assert any("the kill did not take" in p for p in
               judge_upstream_kill(round_robin_load(kill_ms=10_000, removed_ms=None, end_ms=3000), **KILL))
    assert any("sent nothing later" in p for p in
               judge_upstream_kill(round_robin_load(kill_ms=1000, removed_ms=1100, end_ms=1500), **KILL))


def test_kill_budget_is_round_robins_exact_share():
    # removed exactly at the bound: the dead instance gets its share of the window's 101 picks, 33 or 34
    # by the rotation's phase, and the budget is the larger (ceil(101 / 3) = 34): a bound, and a tight one
    for phase in range(3):
        endpoints = [(A, B, C)[(j + phase) % 3] for j in range(3)]
        shots = round_robin_load(kill_ms=1000, removed_ms=2000.5, end_ms=4000, endpoints=endpoints)
        failed = sum(1 for s in shots if not s.ok)
        budget = kill_error_budget(shots, kill_ns=1000 * MS, stop_bound_s=1.0, instances=3)
        assert budget - 1 <= failed <= budget == 34
    rng = random.Random(11)
    for _ in range(200):  # any rotation phase and removal time within the bound stays within the budget
        kill = rng.uniform(500, 1500)
        removed = kill + rng.uniform(0, 1000)
        phase = rng.randrange(3)
        shots = round_robin_load(kill_ms=kill, removed_ms=removed, end_ms=4000, period_ms=rng.uniform(5, 20),
                                 endpoints=[(A, B, C)[(j + phase) % 3] for j in range(3)])
        budget = kill_error_budget(shots, kill_ns=int(kill * MS), stop_bound_s=1.0, instances=3)
        assert sum(1 for s in shots if not s.ok) <= budget


def test_kill_budget_counts_requests_in_flight_at_the_kill():
    shots = [shot(990, ok=False, took_ms=30), *[shot(t, endpoint=B) for t in range(1000, 1300, 10)]]
    assert kill_error_budget(shots, kill_ns=1000 * MS, stop_bound_s=1.0, instances=3) == 1 + math.ceil(30 / 3)


# -- partition ----------------------------------------------------------------------------------------

def partition_load(rng: random.Random, *, requests: int, attempts: int, instances: int) -> list[Shot]:
    """A correct mesh: each try picks an endpoint at random; the partitioned one (0) always refuses."""
    shots = []
    for i in range(requests):
        picks = [rng.randrange(instances) for _ in range(attempts + 1)]
        good = next((p for p in picks if p != 0), None)
        shots.append(shot(1000 + 10 * i, ok=good is not None, endpoint=f"part-v1-{good}"))
    return shots


def test_partition_false_fail_rate_is_exact_and_within_the_stated_budget():
    assert FALSE_FAIL == pytest.approx(1 - (1 - 3.0 ** -(RETRIES.attempts + 1)) ** REQUESTS_BOUND, rel=1e-9)
    assert FALSE_FAIL < 1e-3
    assert INSTANCES == 3


def test_partition_decision_fails_at_the_computed_rate_seeded():
    # the same decision with a small retry budget, so failures are frequent enough to count: the observed
    # false-failure share of 4,000 seeded runs lies within 4 standard errors of the exact rate
    rng = random.Random(2026)
    rate = partition_false_fail_rate(20, attempts=2, instances=3)
    runs = 4000
    fails = sum(bool(judge_partition(partition_load(rng, requests=20, attempts=2, instances=3), start_ns=1000 * MS,
                                     end_ns=10 * S, partitioned="part-v1-0", latency_bound_s=0.75))
                for _ in range(runs))
    assert abs(fails / runs - rate) <= 4 * math.sqrt(rate * (1 - rate) / runs)


def test_partition_fails_without_retries_and_on_slow_or_ghost_answers():
    rng = random.Random(5)
    problems = judge_partition(partition_load(rng, requests=300, attempts=0, instances=3), start_ns=1000 * MS,
                               end_ns=10 * S, partitioned="part-v1-0", latency_bound_s=0.75)
    assert any("did not keep answering" in p for p in problems)
    slow = [shot(1000 + i, endpoint="part-v1-1", took_ms=900 if i == 3 else 2) for i in range(10)]
    assert any("longer than 750 ms" in p for p in judge_partition(
        slow, start_ns=1000 * MS, end_ns=10 * S, partitioned="part-v1-0", latency_bound_s=0.75))
    ghost = [shot(1000 + i, endpoint="part-v1-0") for i in range(10)]
    assert any("not in place" in p for p in judge_partition(
        ghost, start_ns=1000 * MS, end_ns=10 * S, partitioned="part-v1-0", latency_bound_s=0.75))
    assert judge_partition([], start_ns=0, end_ns=S, partitioned="x", latency_bound_s=1.0)


# -- slow network -------------------------------------------------------------------------------------

def test_route_timeout_window():
    kw = dict(timeout_s=0.3, early_s=0.005, late_s=0.15, hop_latency_s=0.6)
    assert judge_route_timeout([0.296, 0.31, 0.449], [504, 504, 504], **kw) == []
    assert any("did not fire" in p for p in judge_route_timeout([0.61, 0.3], [200, 504], **kw))
    assert any("outside" in p for p in judge_route_timeout([0.29, 0.46], [504, 504], **kw))
    assert any("instead of the timeout's 504" in p for p in judge_route_timeout([0.3], [503], **kw))


def test_per_try_timeout_rules():
    kw = dict(per_try_s=0.15, tries=2, early_s=0.08, late_s=0.15)
    good = (504, 700 * MS, [100 * MS, 550 * MS])
    assert judge_per_try_timeout([good], **kw) == []
    assert any("did not fire" in p for p in judge_per_try_timeout([(200, 500 * MS, [100 * MS])], **kw))
    assert any("exactly 2" in p for p in judge_per_try_timeout([(504, 300 * MS, [100 * MS])], **kw))
    assert any("cut before" in p for p in judge_per_try_timeout([(504, 350 * MS, [100 * MS, 150 * MS])], **kw))
    assert any("last try ended" in p for p in judge_per_try_timeout([(504, 1000 * MS, [100 * MS, 550 * MS])], **kw))


# -- sidecar restart ----------------------------------------------------------------------------------

def test_restart_allows_failures_only_in_the_window():
    shots = ([shot(t, endpoint="r") for t in range(0, 1000, 20)] + [shot(t, ok=False) for t in range(1000, 1600, 20)]
             + [shot(t, endpoint="r") for t in range(1600, 4000, 20)])
    kw = dict(begin_ns=1000 * MS, ready_ns=1700 * MS, recovery_s=1.0)
    assert judge_restart(shots, **kw) == []
    assert outage(shots, 1000 * MS) == pytest.approx((0.0, 0.58))
    never = shots[:80] + [shot(t, ok=False) for t in range(1600, 4000, 20)]
    assert any("traffic did not recover" in p for p in judge_restart(never, **kw))
    assert any("before the restart began" in p for p in judge_restart([shot(500, ok=False)] + shots, **kw))
    assert any("sent nothing later" in p for p in judge_restart(shots[:60], **kw))
