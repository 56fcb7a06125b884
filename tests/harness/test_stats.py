"""Statistics with numbers: error rates are checked by seeded simulation, exact results against scipy."""

import math

import numpy as np
import pytest
from scipy import stats as st

from harness.stats import (
    Decision, SequentialSplitTest, Sprt, binomial_power, binomial_size, binomial_test, chi_square_split,
    clopper_pearson, full_jitter_components, ks_uniform, ks_uniform_mixture, rejection_region,
    sample_size_for_power,
)


def binomial_upper(n, p, tail=1e-4):
    """A count that Bin(n, p) exceeds with probability < tail: the 'binomial noise' allowance."""
    return int(st.binom.isf(tail, n, p))


def simulate_split(true_shares, weights, runs, seed, batch=100, **kwargs):
    rng = np.random.default_rng(seed)
    names = list(weights)
    p = np.asarray(true_shares, float) / sum(true_shares)
    decisions, samples = [], []
    for _ in range(runs):
        test = SequentialSplitTest(weights, **kwargs)
        while (d := test.update(dict(zip(names, rng.multinomial(batch, p).tolist())))) is Decision.CONTINUE:
            pass
        decisions.append(d)
        samples.append(test.n)
    return decisions, samples


def test_sequential_split_false_fail_rate_is_within_alpha():
    decisions, samples = simulate_split([95, 5], {"v1": 95, "v2": 5}, runs=2000, seed=1, alpha=0.001)
    false_fails = decisions.count(Decision.ACCEPT_H1)
    assert decisions.count(Decision.UNDECIDED) == 0
    assert false_fails <= binomial_upper(2000, 0.001)  # 2 of 2000 observed with this seed
    assert np.mean(samples) < 4419  # fewer than the fixed-sample test needs (sample_size_for_power)


@pytest.mark.parametrize("canary", [0.03, 0.07])
def test_sequential_split_power_against_a_two_point_deviation_on_a_five_percent_canary(canary):
    decisions, _ = simulate_split([1 - canary, canary], {"v1": 95, "v2": 5}, runs=500, seed=int(canary * 100))
    misses = decisions.count(Decision.ACCEPT_H0)
    assert misses <= binomial_upper(500, 0.01)  # power ≥ 99% within binomial noise
    assert decisions.count(Decision.ACCEPT_H1) >= 0.97 * 500


def test_sequential_split_error_rate_scales_with_alpha():
    decisions, _ = simulate_split([95, 5], {"v1": 95, "v2": 5}, runs=2000, seed=6, alpha=0.05)
    rate = decisions.count(Decision.ACCEPT_H1) / 2000
    assert 0.005 < rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 2000)  # sensitive, and within alpha


def test_three_way_split_passes_and_a_starved_backend_fails():
    decisions, _ = simulate_split([80, 10, 10], {"a": 80, "b": 10, "c": 10}, runs=200, seed=5)
    assert decisions.count(Decision.ACCEPT_H1) <= binomial_upper(200, 0.001)
    decisions, _ = simulate_split([90, 10, 0], {"a": 80, "b": 10, "c": 10}, runs=50, seed=7)
    assert decisions.count(Decision.ACCEPT_H1) == 50


def test_traffic_to_a_zero_weight_backend_fails_at_once():
    test = SequentialSplitTest({"v1": 100, "v2": 0})
    assert test.update({"v1": 99, "v2": 1}) is Decision.ACCEPT_H1
    assert "v2" in test.reason


def test_split_states_its_error_rates_and_reports_intervals():
    test = SequentialSplitTest({"v1": 70, "v2": 30}, alpha=0.001, beta=0.01)
    assert (test.false_fail_rate, test.power) == (0.001, 0.99)
    test.update({"v1": 70, "v2": 30})
    low, high = test.intervals(0.999)["v2"]
    assert low < 0.3 < high


def test_split_gives_up_undecided_at_the_budget():
    test = SequentialSplitTest({"v1": 50, "v2": 50}, max_samples=200)
    assert test.update({"v1": 51, "v2": 49}) is Decision.CONTINUE
    assert test.update({"v1": 51, "v2": 49}) is Decision.UNDECIDED


def test_sprt_decides_and_sticks():
    sprt = Sprt(0.05, 0.07, alpha=0.01, beta=0.01)
    assert sprt.update(5, 100) is Decision.CONTINUE
    while sprt.update(7, 100) is Decision.CONTINUE:
        assert sprt.n < 100_000
    assert sprt.decision is Decision.ACCEPT_H1
    assert sprt.update(0, 1000) is Decision.ACCEPT_H1
    assert sprt.false_accept_h1_bound == pytest.approx(0.01 / 0.99)


def test_sprt_error_rate_under_h0_is_within_walds_bound():
    rng = np.random.default_rng(11)
    runs, wrong = 2000, 0
    for _ in range(runs):
        sprt = Sprt(0.5, 0.6, alpha=0.05, beta=0.05)
        while sprt.update(int(rng.binomial(10, 0.5)), 10) is Decision.CONTINUE:
            pass
        wrong += sprt.decision is Decision.ACCEPT_H1
    assert wrong <= binomial_upper(runs, 0.05 / 0.95)


def test_clopper_pearson_matches_scipy_and_covers():
    ci = st.binomtest(7, 100).proportion_ci(0.95, method="exact")
    assert clopper_pearson(7, 100, 0.95) == pytest.approx((ci.low, ci.high))
    assert clopper_pearson(0, 50)[0] == 0.0 and clopper_pearson(50, 50)[1] == 1.0
    rng = np.random.default_rng(3)
    hits = sum(lo <= 0.05 <= hi for lo, hi in (clopper_pearson(int(k), 200) for k in rng.binomial(200, 0.05, 2000)))
    assert hits / 2000 >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / 2000)


@pytest.mark.parametrize("n,p", [(100, 0.05), (250, 0.3), (40, 0.5)])
def test_rejection_region_agrees_with_the_exact_test_for_every_k(n, p):
    region = rejection_region(n, p, 0.01)
    assert [binomial_test(k, n, p) <= 0.01 for k in range(n + 1)] == region.tolist()


def test_power_and_size_are_exact_sums():
    assert binomial_size(4000, 0.05, 0.001) <= 0.001
    # 4419 is where the two-sided exact test at alpha 0.1% first detects 3% and 7% with ≥ 99%
    n = sample_size_for_power(0.05, 0.02, alpha=0.001, power=0.99)
    assert min(binomial_power(n, 0.05, 0.03, 0.001), binomial_power(n, 0.05, 0.07, 0.001)) >= 0.99
    assert min(binomial_power(n // 2, 0.05, 0.03, 0.001), binomial_power(n // 2, 0.05, 0.07, 0.001)) < 0.99
    # cross-check one power value by simulation
    rng = np.random.default_rng(4)
    region = rejection_region(1000, 0.05, 0.01)
    simulated = region[rng.binomial(1000, 0.08, 20000)].mean()
    assert simulated == pytest.approx(binomial_power(1000, 0.05, 0.08, 0.01), abs=0.015)


def test_chi_square_split():
    good = chi_square_split([7012, 2988], [70, 30])
    assert good.p_value > 0.01 and good.reliable and good.dof == 1
    assert chi_square_split([7600, 2400], [70, 30]).p_value < 1e-9
    assert chi_square_split([10, 0, 1], [1, 1, 0]).p_value == 0.0
    assert not chi_square_split([3, 1], [3, 1]).reliable


def test_ks_uniform_accepts_uniform_and_rejects_constant_backoff():
    rng = np.random.default_rng(8)
    assert ks_uniform(rng.uniform(0, 0.025, 500), 0, 0.025).p_value > 0.001
    assert ks_uniform(np.full(500, 0.025) + rng.normal(0, 1e-4, 500), 0, 0.025).p_value < 1e-6


def test_ks_mixture_of_full_jitter_gaps():
    rng = np.random.default_rng(9)
    base, cap = 0.025, 0.25
    gaps = np.concatenate([rng.uniform(0, base, 400), rng.uniform(0, 3 * base, 400), rng.uniform(0, 7 * base, 400)])
    components = full_jitter_components({1: 400, 2: 400, 3: 400}, base, cap)
    assert np.allclose(components, [(400, 0.0, 0.025), (400, 0.0, 0.075), (400, 0.0, 0.175)])
    assert ks_uniform_mixture(gaps, components).p_value > 0.001
    no_jitter = np.concatenate([np.full(400, base), np.full(400, 3 * base), np.full(400, 7 * base)])
    assert ks_uniform_mixture(no_jitter, components).p_value < 1e-6


def test_ks_false_reject_rate_is_alpha():
    rng = np.random.default_rng(10)
    rejections = sum(ks_uniform(rng.uniform(0, 1, 100), 0, 1).p_value <= 0.05 for _ in range(1000))
    assert rejections <= binomial_upper(1000, 0.05)
    assert rejections >= 20  # the test is not vacuous: about 50 expected
