"""RetryPolicy: Envoy's retry_on table, num_retries counting, full-jitter backoff and the defects."""

import math
import random

import pytest

from meshscenario import Retries
from meshproxy.defects import Defects
from meshproxy.policy.retry import Outcome, RetryPolicy, backoff_interval

OK = Outcome(200)
NOT_FOUND = Outcome(404)
RESET = Outcome(kind="reset")
CONNECT_FAILURE = Outcome(kind="connect-failure")
PER_TRY_TIMEOUT = Outcome(kind="per-try-timeout")


def _policy(defects=None, **fields):
    return RetryPolicy(Retries(**fields), random.Random(1), Defects(defects))


# outcome -> retried? for each retry_on condition (Envoy retry_state_impl.cc and router docs)
TABLE = {
    "5xx": {500: True, 502: True, 503: True, 504: True, 599: True, 404: False, 200: False,
            "reset": True, "connect-failure": True, "per-try-timeout": True},
    "gateway-error": {500: False, 502: True, 503: True, 504: True, 599: False, 404: False, 200: False,
                      "reset": True, "connect-failure": True, "per-try-timeout": True},
    "reset": {500: False, 503: False, 404: False, 200: False,
              "reset": True, "connect-failure": True, "per-try-timeout": True},
    "connect-failure": {500: False, 503: False, 200: False,
                        "reset": False, "connect-failure": True, "per-try-timeout": False},
}


@pytest.mark.parametrize("condition,outcome,retried", [
    (cond, key, retried) for cond, row in TABLE.items() for key, retried in row.items()
])
def test_retry_on_table(condition, outcome, retried):
    result = Outcome(outcome) if isinstance(outcome, int) else Outcome(kind=outcome)
    assert _policy(attempts=3, retry_on=[condition]).should_retry(result) is retried


def test_retriable_status_codes_retry_only_the_listed_codes():
    policy = _policy(attempts=5, retry_on=["retriable-status-codes"], retriable_status_codes=[404, 409])
    assert policy.retriable(NOT_FOUND) and policy.retriable(Outcome(409))
    assert not policy.retriable(Outcome(503)) and not policy.retriable(RESET)


def test_conditions_combine():
    policy = _policy(retry_on=["connect-failure", "retriable-status-codes"], retriable_status_codes=[503])
    assert policy.retriable(CONNECT_FAILURE) and policy.retriable(Outcome(503))
    assert not policy.retriable(RESET) and not policy.retriable(Outcome(502))


def test_a_response_without_status_is_not_retried():
    assert not _policy().retriable(Outcome())


@pytest.mark.parametrize("attempts", [0, 1, 2, 5])
def test_attempts_are_retries_after_the_first_try(attempts):
    policy = _policy(attempts=attempts)
    tries = 1
    while policy.should_retry(Outcome(503)):
        tries += 1
        assert tries <= 100
    assert tries == attempts + 1
    assert policy.attempts_made == attempts + 1 and policy.retries_made == attempts


def test_failing_k_times_then_succeeding_takes_k_plus_one_tries():
    policy = _policy(attempts=3)
    outcomes = iter([Outcome(503), RESET, Outcome(200)])
    tries = 1
    while policy.should_retry(next(outcomes)):
        tries += 1
    assert tries == 3


def test_no_retry_policy_never_retries():
    policy = RetryPolicy(None, random.Random(1))
    assert not policy.should_retry(Outcome(503))
    assert not policy.retriable(RESET)


@pytest.mark.parametrize("delta,expected", [(2, 4), (-1, 1), (-10, 0)])
def test_defect_retries_delta(delta, expected):
    policy = _policy({"retries_delta": delta}, attempts=2)
    assert policy.max_retries == expected


@pytest.mark.parametrize("base,cap", [(0.025, 0.25), (0.01, 0.05), (1.0, 3.0)])
def test_backoff_samples_stay_in_bounds_and_their_mean_is_uniform(base, cap):
    rng = random.Random(42)
    samples_per_retry = 20_000
    for n in range(1, 7):
        upper = min((2 ** n - 1) * base, cap)
        samples = [backoff_interval(n, base, cap, rng) for _ in range(samples_per_retry)]
        assert all(0 <= s < upper for s in samples)
        # uniform [0, U): mean U/2, sd U/sqrt(12); 4.5 standard errors is a 1-in-150,000 false fail
        tolerance = 4.5 * upper / math.sqrt(12 * samples_per_retry)
        assert abs(sum(samples) / samples_per_retry - upper / 2) < tolerance
        assert max(samples) > 0.99 * upper  # the whole range is used, not a narrower one


def test_envoy_default_backoff_bounds():
    """Envoy's documented example: 25 ms base gives retry 1 in [0, 25), 2 in [0, 75), 3 in [0, 175)."""
    policy = _policy({"backoff": "no_jitter"}, attempts=5)
    bounds = []
    for _ in range(5):
        assert policy.should_retry(Outcome(503))
        bounds.append(round(policy.backoff() * 1000, 6))
    assert bounds == [25.0, 75.0, 175.0, 250.0, 250.0]  # max_interval defaults to 10 x base


def test_backoff_uses_the_declared_max_interval():
    policy = _policy({"backoff": "no_jitter"}, attempts=3, backoff={"base_interval": "10ms", "max_interval": "20ms"})
    policy.should_retry(Outcome(503))
    assert policy.backoff() == pytest.approx(0.010)
    policy.should_retry(Outcome(503))
    assert policy.backoff() == pytest.approx(0.020)


def test_backoff_of_a_policy_follows_its_retry_number():
    policy = _policy(attempts=10)
    rng = random.Random(1)
    for n in range(1, 11):
        policy.should_retry(Outcome(503))
        expected = backoff_interval(n, 0.025, 0.25, rng)  # same seed, same draw sequence
        assert policy.backoff() == expected


def test_backoff_for_huge_retry_numbers_is_capped():
    assert 0 <= backoff_interval(1000, 0.025, 0.25, random.Random(1)) < 0.25


def test_defect_constant_backoff():
    policy = _policy({"backoff": "constant"}, attempts=4)
    gaps = []
    while policy.should_retry(Outcome(503)):
        gaps.append(policy.backoff())
    assert gaps == [0.025] * 4


def test_unknown_backoff_defect_is_refused():
    with pytest.raises(ValueError):
        _policy({"backoff": "linear"})


def test_policies_of_one_route_share_rules_but_not_counts():
    retries = Retries(attempts=1)
    a, b = RetryPolicy(retries, random.Random(1)), RetryPolicy(retries, random.Random(2))
    assert a.should_retry(Outcome(503)) and not a.should_retry(Outcome(503))
    assert b.should_retry(Outcome(503))


def test_shared_outcomes_equal_fresh_ones():
    from meshproxy.policy.retry import (CONNECT_FAILURE_OUTCOME, PER_TRY_TIMEOUT_OUTCOME, RESET_OUTCOME,
                                        response_outcome)
    assert response_outcome(503) == Outcome(503) and response_outcome(503) is response_outcome(503)
    assert response_outcome(999) == Outcome(999)
    assert (RESET_OUTCOME, CONNECT_FAILURE_OUTCOME, PER_TRY_TIMEOUT_OUTCOME) == (RESET, CONNECT_FAILURE,
                                                                                PER_TRY_TIMEOUT)


def test_retry_any_status_defect_retries_a_404():
    import random

    from meshscenario import Retries
    from meshproxy.policy.retry import RetryPolicy, response_outcome

    retries = Retries(attempts=2, retry_on=["5xx"])
    correct = RetryPolicy(retries, random.Random(1))
    broken = RetryPolicy(retries, random.Random(1), Defects({"retry_any_status": True}))
    assert not correct.should_retry(response_outcome(404))
    assert broken.should_retry(response_outcome(404))
    assert broken.should_retry(response_outcome(404))
    assert not broken.should_retry(response_outcome(404))  # the attempts still bound it
