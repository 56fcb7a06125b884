"""The chaos checks' pure decisions (suites/chaos/_decisions.py) on made-up timelines, and their stated
error rates: the partition check's false-failure rate computed exactly and checked by seeded simulation
of the decision, the upstream-kill budget checked against a simulated round robin."""

from __future__ import annotations

import math
import random

import pytest

from suites.chaos._decisions import (Probe, Renewal, Shot, judge_control_plane_kill, judge_partition,
                                     judge_per_try_timeout, judge_renewal, judge_restart, judge_started_while_down, judge_route_timeout, judge_upstream_kill,
                                     kill_error_budget, outage, partition_false_fail_rate)
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


# -- ChaosControlPlaneKill ------------------------------------------------------------------------------
V1, V2 = "steady-v1-0", "steady-v2-0"


def cp_load(*, switch_ms: float, end_ms: float = 3000.0, period_ms: float = 50.0, fail_at: float | None = None):
    """v1 answers until switch_ms, v2 after; one failure at fail_at."""
    out, t = [], 0.0
    while t < end_ms:
        out.append(shot(t, ok=t != fail_at, endpoint=V1 if t < switch_ms else V2))
        t += period_ms
    return out


def cp_judge(shots, after, *, changed_ms: float | None = 2100.0):
    return judge_control_plane_kill(shots, after, kill_ns=500 * MS, back_begin_ns=1500 * MS, back_ns=2000 * MS,
                                    changed_ns=None if changed_ms is None else int(changed_ms * MS), old=V1, new=V2)


def test_control_plane_kill_passes_when_the_change_made_while_down_takes_effect_after_the_return():
    after = [shot(3100.0 + i, endpoint=V2) for i in range(5)]
    assert cp_judge(cp_load(switch_ms=2050.0), after) == []


def test_control_plane_kill_fails_on_a_failure_while_down_and_a_change_while_down():
    after = [shot(3100.0, endpoint=V2)]
    problems = cp_judge(cp_load(switch_ms=1000.0, fail_at=800.0), after)
    assert any("did not keep serving while the control plane was down" in p for p in problems)
    assert any("the last configuration was not kept" in p for p in problems)


def test_control_plane_kill_fails_when_the_change_never_takes_effect():
    stale = cp_load(switch_ms=10_000.0)
    problems = cp_judge(stale, [shot(3100.0, endpoint=V1)])
    assert sum("did not take effect once it returned" in p for p in problems) == 2  # the load and the after
    problems = cp_judge(stale, [shot(3100.0, endpoint=V1)], changed_ms=None)
    assert sum("did not take effect once it returned" in p for p in problems) == 1  # only the after requests


def renewal(**kw):
    values = dict(workload="client-v1-0", down_serial="ab", down_half_life_s=-8.0, down_expiry_s=30.0, renewed_s=2.5)
    values.update(kw)
    return Renewal(**values)


def test_renewal_passes_when_every_watched_certificate_changes_in_the_bound():
    assert judge_renewal([renewal(), renewal(workload="steady-v1-0", renewed_s=0.1)], bound_s=8.0, ttl_s=50.0) == []


def test_renewal_fails_when_it_does_not_resume_and_on_unmet_premises():
    [problem] = judge_renewal([renewal(renewed_s=None)], bound_s=8.0, ttl_s=50.0)
    assert "certificate renewal did not resume" in problem
    [problem] = judge_renewal([renewal(renewed_s=None, down_half_life_s=3.0)], bound_s=8.0, ttl_s=50.0)
    assert "was not due for renewal during the outage" in problem
    [problem] = judge_renewal([renewal(renewed_s=None, down_expiry_s=-1.0)], bound_s=8.0, ttl_s=50.0)
    assert "expired" in problem
    assert judge_renewal([], bound_s=8.0, ttl_s=50.0) == ["no workload's certificate was watched"]


def started_probes(*, ready: bool = False, served: bool = False, n: int = 5):
    return [Probe(int(t * 100 * MS), ready, shot(t * 100.0, ok=served, endpoint=V1 if served else None, status=None))
            for t in range(n)]


def started_judge(probes, arrivals=(), *, started_s: float | None = 0.5, after_ok: bool = True):
    return judge_started_while_down(probes, list(arrivals), workload="restart-v1-0", back_begin_ns=1500 * MS,
                                    started_s=started_s, bound_s=10.0,
                                    after=shot(3000.0, ok=after_ok, endpoint=V2 if after_ok else None))


def test_started_while_down_passes_when_not_ready_unserved_then_ready():
    assert started_judge(started_probes(), arrivals=[1600 * MS]) == []  # an arrival after the return is verified


def test_started_while_down_fails_when_ready_served_or_never_back():
    assert any("reported ready" in p for p in started_judge(started_probes(ready=True)))
    assert any("served unverified" in p for p in started_judge(started_probes(served=True)))
    assert any("served unverified" in p for p in started_judge(started_probes(), arrivals=[1000 * MS]))
    assert any("was not ready" in p for p in started_judge(started_probes(), started_s=None))
    assert any("did not serve once ready" in p for p in started_judge(started_probes(), after_ok=False))
    assert any("only 2 probes" in p for p in started_judge(started_probes(n=2)))
