"""False-fail rates and power of the breaking suite's checks, every rule (issue 14, third pass): seeded event
simulations (harness/error_budgets_breaking.py) of what each check measures, judged by the checks' own
decisions, under the quiet, loaded and stall models; the errors rule exact.

Guards allow at most 1.5 × the claim × runs failures (``guard_threshold``). A sweep costs about 0.6 ms to
simulate and judge, so a guard runs 10,000 sweeps of the pending check per model (5,000 of the other
sweeps, under the stall model; outlier ejection: 20,000 runs per model): a true rate at
the claimed 0.09% exceeds the threshold with the probability ``guard_errors`` prints (about 7% at 10,000
runs), and a true 0.18% stays under it with probability 14% (20,000 runs: 4% and 1.2%).
bench/error_budgets.py runs 100,000 per model (bench/results/error_budgets_breaking-2026-12-04.md).
Each guard is shown able to fail against the rule it replaced.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.error_budgets import BACKOFF_MODELS, DELAY_MODELS, errors_rule_crossing, guard_errors, guard_threshold
from harness.error_budgets_breaking import simulate_breaker, simulate_outlier, simulate_sweep
from suites.breaking import _support as bs
from suites.breaking import test_circuit_breaking as cb
from suites.breaking import test_outlier_detection as od

SEED = 20_261_204
RUNS = 10_000
OD_RUNS = 20_000
MODELS = ("quiet", "loaded", "stall")


def test_the_budgets_add_up():
    assert cb.ALPHA_TIMING + bs.ALPHA_ERRORS == pytest.approx(0.001)
    assert od.ALPHA_TIMING + bs.ALPHA_ERRORS == pytest.approx(0.001)


@pytest.mark.parametrize("model", MODELS)
def test_pending_check_false_fail_rate(model):
    spec = cb.SIMULATED["MeshCircuitBreakerMaxPendingRequests"]
    totals = simulate_breaker(BACKOFF_MODELS[model], RUNS, SEED, **spec)
    print(f"pending {model}: {totals}; guard errors {guard_errors(RUNS, cb.ALPHA_TIMING)}")
    assert totals["any"] <= guard_threshold(RUNS, cb.ALPHA_TIMING)


def _old_rule_fails(model, runs: int, seed: int) -> int:
    """The rule the pending check had before: no accepted request over 500 ms end to end."""
    spec = cb.SIMULATED["MeshCircuitBreakerMaxPendingRequests"]
    rng = np.random.default_rng(seed)
    failed = 0
    for _ in range(runs):
        steps, _ = simulate_sweep(model, rng, connections=spec["connections"], pending=spec["pending"],
                                  levels=spec["levels"])
        failed += any(a.status == 200 and a.latency_ms > 500.0 for s in steps for a in s.answers)
    return failed


def test_the_pending_guard_fails_the_old_rule():
    failed = _old_rule_fails(BACKOFF_MODELS["stall"], 2_000, SEED)
    assert failed > guard_threshold(2_000, cb.ALPHA_TIMING)  # about 2.5%: 25 times the claim


def test_the_wait_rule_catches_one_more_pending():
    spec = dict(cb.SIMULATED["MeshCircuitBreakerMaxPendingRequests"])
    spec["pending"] += 1
    for model in MODELS:
        totals = simulate_breaker(BACKOFF_MODELS[model], 300, SEED + 1, **spec)
        assert totals.get("pending_wait", 0) == 300, (model, totals)


@pytest.mark.parametrize("check", ["MeshCircuitBreakerMaxRequests", "MeshCircuitBreakerMaxConnections"])
def test_other_breaker_checks_false_fail_rate_under_stalls(check):
    totals = simulate_breaker(BACKOFF_MODELS["stall"], RUNS // 2, SEED + 2, **cb.SIMULATED[check])
    print(f"{check}: {totals}")
    assert totals["any"] <= guard_threshold(RUNS // 2, cb.ALPHA_TIMING)


def test_errors_rule_exact_within_each_checks_requests():
    # a sweep sends at most 5 requests per thread and step (one per hold); bursts one per request
    for spec in cb.SIMULATED.values():
        n = 5 * sum(spec["levels"]) + 2 * len(spec["levels"])
        assert errors_rule_crossing(bs.ERRORS, bs.ERRORS.rate, n, 1) <= bs.ALPHA_ERRORS
        assert bs.ERRORS.errors_allowed(n) >= 1  # one stray reset never fails a sweep
    n_od = int(3 * od.OD.base_ejection_time / od.PERIOD_S)
    assert errors_rule_crossing(bs.ERRORS, bs.ERRORS.rate, n_od, 1) <= bs.ALPHA_ERRORS
    assert errors_rule_crossing(bs.ERRORS, bs.ERRORS.rate, sum(cb.RETRY_LEVELS), 1) <= bs.ALPHA_ERRORS
    assert bs.ERRORS.errors_allowed(sum(cb.RETRY_LEVELS)) >= 1


@pytest.mark.parametrize("model", MODELS)
def test_outlier_ejection_false_fail_rate(model):
    totals = simulate_outlier(BACKOFF_MODELS[model], OD_RUNS, SEED + 3, tolerance_s=od.TOLERANCE_S)
    print(f"ejection {model}: {totals}; guard errors {guard_errors(OD_RUNS, od.ALPHA_TIMING)}")
    assert totals["any"] <= guard_threshold(OD_RUNS, od.ALPHA_TIMING)


def test_the_ejection_guard_fails_the_old_run_cut(monkeypatch):
    """Before, arrivals were cut into runs where two were more than min(base, interval) / 2 = 150 ms apart: a
    stall inside a run split it (about 0.6% under the stall model)."""
    monkeypatch.setattr(bs, "run_split_ns", lambda base_s: int(min(base_s, od.OD.interval) / 2 * 1e9))
    totals = simulate_outlier(BACKOFF_MODELS["stall"], OD_RUNS, SEED + 3, tolerance_s=od.TOLERANCE_S)
    assert totals["any"] > guard_threshold(OD_RUNS, od.ALPHA_TIMING)


def test_the_ejection_guard_fails_beyond_the_models():
    # 0.1% of legs stalled 195 ms + Exponential(50 ms): the upper bounds' 150 ms tolerance is spent (about 1.7%)
    totals = simulate_outlier(DELAY_MODELS["late0.1"], 5_000, SEED + 4, tolerance_s=od.TOLERANCE_S)
    assert totals["any"] > guard_threshold(5_000, od.ALPHA_TIMING)


def test_a_late_ejection_is_caught_in_every_simulated_run():
    for model in MODELS:
        totals = simulate_outlier(BACKOFF_MODELS[model], 1_000, SEED + 5, tolerance_s=od.TOLERANCE_S, eject_after=4)
        assert totals["any"] == 1_000 and totals.get("count", 0) == 1_000, (model, totals)
