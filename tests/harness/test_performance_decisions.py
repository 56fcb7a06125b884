"""The performance checks' pure decisions: added latency per hop, the noise floor, the rate search."""

from __future__ import annotations

import pytest

from harness.load import hdr
from harness.load.spec import LoadResult
from harness.performance.overhead import RateRuns, judge_rate
from harness.performance.search import Found, Step, next_rate
from suites.performance.test_propagation import nearest_rank


def result(values_us, *, rate=1000.0, errors=0, achieved=None) -> LoadResult:
    h = hdr.new_histogram()
    for v in values_us:
        hdr.record_us(h, v)
    s = hdr.summary_us(h)
    return LoadResult(mode="open", target_rate=rate, sent=len(values_us) + errors, count=len(values_us),
                      errors=errors, elapsed_s=1.0, achieved_rate=rate if achieved is None else achieved,
                      throughput=rate, p50_us=s["p50"], p90_us=s["p90"], p99_us=s["p99"], p99_9_us=s["p99_9"],
                      max_us=s["max"], min_us=s["min"], mean_us=float(h.get_mean_value()),
                      histogram=hdr.encode(h))


def spread(base: int, n: int = 1000, tail: int = 0) -> list[int]:
    """n values: base..base+99 evenly, the last 2% raised by ``tail``."""
    out = [base + i % 100 for i in range(n)]
    for i in range(n - n // 50, n):
        out[i] += tail
    return out


def test_added_latency_is_the_mesh_minus_direct_per_hop():
    direct = [result(spread(200)) for _ in range(3)]
    mesh = [result(spread(600)) for _ in range(2)]
    verdict = judge_rate(RateRuns(1000, direct, mesh), hops=2, budget_p99_us=2000)
    assert verdict.passed, verdict.problems
    assert verdict.added_us["p50"] == pytest.approx(200, abs=2)
    assert verdict.added_us["p99"] == pytest.approx(200, abs=2)
    assert verdict.noise_us["p99"] == 0


def test_a_tail_over_the_budget_fails_and_names_the_numbers():
    direct = [result(spread(200), rate=2000) for _ in range(3)]
    mesh = [result(spread(600, tail=6000), rate=2000) for _ in range(2)]  # 2% of requests 6 ms later: p99 +3 ms per hop
    verdict = judge_rate(RateRuns(2000, direct, mesh), hops=2, budget_p99_us=2000)
    assert not verdict.passed
    assert "added p99 per hop at 2000 req/s is" in verdict.problems[0] and "over the budget" in verdict.problems[0]


def test_a_stall_that_comes_back_repeat_after_repeat_fails():
    """The median of 5 repeats: a stall in 3 of them (issue 13's was in 2 of 3) fails the check."""
    direct = [result(spread(200), rate=2000) for _ in range(6)]
    stalled = spread(600)[:900] + [40_000] * 100
    mesh = [result(spread(600), rate=2000) for _ in range(2)] + [result(stalled, rate=2000) for _ in range(3)]
    verdict = judge_rate(RateRuns(2000, direct, mesh), hops=2, budget_p99_us=2000)
    assert not verdict.passed and "median of 5 repeats" in verdict.problems[-1]


def test_one_repeat_hit_by_a_machine_pause_is_reported_not_decisive():
    direct = [result(spread(200), rate=2000) for _ in range(6)]
    mesh = [result(spread(600), rate=2000) for _ in range(4)] + [result(spread(600)[:900] + [40_000] * 100, rate=2000)]
    verdict = judge_rate(RateRuns(2000, direct, mesh), hops=2, budget_p99_us=2000)
    assert verdict.passed, verdict.problems
    assert verdict.spread_us["p99"][1] > 2000 and verdict.merged_us["p99"] > 2000  # and the report shows it


def test_a_noisy_machine_fails_saying_it_cannot_resolve_the_budget():
    direct = [result(spread(200)), result(spread(200, tail=20_000)), result(spread(200))]  # both pairs differ
    mesh = [result(spread(300)) for _ in range(2)]
    verdict = judge_rate(RateRuns(2000, direct, mesh), hops=2, budget_p99_us=2000)
    assert any("cannot resolve" in p for p in verdict.problems)


def test_failed_requests_and_a_meter_behind_schedule_fail():
    direct = [result(spread(200)) for _ in range(2)]
    verdict = judge_rate(RateRuns(2000, direct, [result(spread(300), errors=3, rate=2000)]), hops=2,
                         budget_p99_us=2000)
    assert any("3 of 1003 requests" in p for p in verdict.problems)
    slow = [result(spread(200), rate=2000), result(spread(200), rate=2000, achieved=1500)]
    verdict = judge_rate(RateRuns(2000, slow, [result(spread(300), rate=2000)]), hops=2, budget_p99_us=2000)
    assert any("could not hold 2000 req/s" in p for p in verdict.problems)


def test_runs_must_interleave():
    with pytest.raises(ValueError):
        RateRuns(1000, [result(spread(1))], [result(spread(1))])


def test_search_doubles_then_bisects_and_stops_at_the_ceiling():
    assert next_rate([], lowest=500, ceiling=8000) == 500
    steps = [Step(500, True)]
    assert next_rate(steps, lowest=500, ceiling=8000) == 1000
    steps += [Step(1000, True), Step(2000, True), Step(4000, False)]
    assert next_rate(steps, lowest=500, ceiling=8000) == 3000
    steps += [Step(3000, True)]
    assert next_rate(steps, lowest=500, ceiling=8000, max_steps=10) == 3500
    steps += [Step(3500, False)]
    assert next_rate(steps, lowest=500, ceiling=8000, max_steps=10) == 3250
    steps += [Step(3250, False)]  # within 15% of the best pass: converged
    assert next_rate(steps, lowest=500, ceiling=8000, max_steps=10) == Found(3000, "budget")
    assert next_rate([Step(500, True), Step(1000, True)], lowest=500, ceiling=1000) == Found(1000, "ceiling")
    assert next_rate([Step(500, False)], lowest=500, ceiling=1000) == Found(None, "budget")
    many = [Step(500 * 2 ** i, True) for i in range(6)]
    assert next_rate(many, lowest=500, ceiling=10 ** 6, max_steps=6) == Found(16000, "steps")


def test_nearest_rank_never_interpolates():
    values = [0.1 * i for i in range(1, 11)]
    assert nearest_rank(values, 0.99) == pytest.approx(1.0)
    assert nearest_rank(values, 0.50) == pytest.approx(0.5)
    assert nearest_rank([3.0], 0.99) == 3.0
