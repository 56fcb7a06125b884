"""False-fail rate and power of the resilience suite's statistical decisions, by seeded simulation.

The simulated gaps copy what the echo measures on the reference mesh: the backoff drawn by the policy,
rounded to the event loop's 1 ms timer granularity, plus an overhead drawn from one of two noise models
(a quiet machine: ~1 ms with 0.3 ms jitter; a loaded one: 1 ms plus an exponential tail of mean 4 ms);
the check sees 150 × 2 control gaps drawn from the same model, as its interleaved control route gives.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import stats
from suites.resilience._decisions import (ALPHA, fault_sample_size, full_jitter_bound, judge_backoff,
                                          judge_share)

BASE, CAP = 0.025, 0.25
GAPS_PER_RETRY = 150
RUNS = 1000


def _quiet(rng: np.random.Generator, n: int) -> np.ndarray:
    return 0.001 + rng.gamma(4.0, 0.3e-3 / 2, n)


def _loaded(rng: np.random.Generator, n: int) -> np.ndarray:
    return 0.001 + rng.exponential(0.004, n)


def _simulate(rng: np.random.Generator, mode: str, noise=_quiet) -> bool:
    gaps = {}
    for n in (1, 2):
        bound = full_jitter_bound(n, BASE, CAP)
        wait = {"jitter": rng.uniform(0, bound, GAPS_PER_RETRY), "constant": np.full(GAPS_PER_RETRY, BASE),
                "no_jitter": np.full(GAPS_PER_RETRY, bound),
                "half_range": rng.uniform(0, bound / 2, GAPS_PER_RETRY)}[mode]
        gaps[n] = list(np.round(wait * 1e3) / 1e3 + noise(rng, GAPS_PER_RETRY))
    return judge_backoff(gaps, list(noise(rng, 300)), base=BASE, cap=CAP).passed


@pytest.mark.parametrize("noise", [_quiet, _loaded], ids=["quiet", "loaded"])
def test_backoff_decision_false_fail_rate_is_small_on_correct_backoff(noise):
    rng = np.random.default_rng(7)
    failures = sum(not _simulate(rng, "jitter", noise) for _ in range(RUNS))
    # alpha = 0.001: expect ~1 in 1000; 5 or more has probability < 0.004 if the rate is ≤ 0.1%
    assert failures < 5, f"{failures} false fails in {RUNS}"


@pytest.mark.parametrize("noise", [_quiet, _loaded], ids=["quiet", "loaded"])
@pytest.mark.parametrize("mode", ["constant", "no_jitter", "half_range"])
def test_backoff_decision_power_against_wrong_backoff(mode, noise):
    rng = np.random.default_rng(11)
    detected = sum(not _simulate(rng, mode, noise) for _ in range(200))
    assert detected >= 198, f"power against {mode}: {detected}/200"


@pytest.mark.parametrize("p0", [0.2, 0.3])
def test_fault_sample_size_gives_the_stated_power_and_size(p0):
    n = fault_sample_size(p0)
    assert n == {0.2: 2194, 0.3: 2765}[p0]
    assert stats.binomial_size(n, p0, ALPHA) <= ALPHA
    for p1 in (p0 - 0.05, p0 + 0.05):
        assert stats.binomial_power(n, p0, p1, ALPHA) >= 0.99


@pytest.mark.parametrize("p0", [0.2, 0.3])
def test_fault_share_decision_by_simulation(p0):
    rng = np.random.default_rng(3)
    n = fault_sample_size(p0)
    wrong = sum(not judge_share(int(rng.binomial(n, p0)), n, p0, what="x", with_power=False).passed
                for _ in range(RUNS))
    # exact size ≤ 0.001 (test above); 6 or more in 1000 has probability < 0.0006 at that rate
    assert wrong < 6, f"{wrong} false fails in {RUNS}"
    for p1 in (p0 - 0.05, p0 + 0.05):
        caught = sum(not judge_share(int(rng.binomial(n, p1)), n, p0, what="x", with_power=False).passed
                     for _ in range(300))
        assert caught >= 291, f"power against {p1}: {caught}/300"  # exact power ≥ 0.99; MC slack
