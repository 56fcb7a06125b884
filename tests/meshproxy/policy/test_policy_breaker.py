"""CircuitBreaker: Envoy's four concurrency limits, their overflow counts and Envoy's defaults."""

import pytest

from meshscenario import CircuitBreakerLimits as Limits
from meshproxy.policy.breaker import CircuitBreaker


def test_defaults_are_envoys():
    breaker = CircuitBreaker(None)
    assert (breaker.max_connections, breaker.max_pending_requests, breaker.max_requests,
            breaker.max_retries) == (1024, 1024, 1024, 3)
    assert sum(breaker.try_start_request() for _ in range(2000)) == 1024
    assert sum(breaker.try_start_retry() for _ in range(10)) == 3


@pytest.mark.parametrize("limit", [1, 2, 7])
def test_requests_over_the_limit_are_refused_until_one_ends(limit):
    breaker = CircuitBreaker(Limits(max_requests=limit))
    assert all(breaker.try_start_request() for _ in range(limit))
    assert not breaker.try_start_request() and not breaker.try_start_request()
    assert breaker.rq_overflow == 2 and breaker.requests == limit
    breaker.end_request()
    assert breaker.try_start_request()
    assert breaker.requests == limit


def test_retries_have_their_own_budget():
    breaker = CircuitBreaker(Limits(max_retries=1, max_requests=5))
    assert breaker.try_start_retry() and not breaker.try_start_retry()
    assert breaker.rq_retry_overflow == 1
    assert breaker.try_start_request()  # a full retry budget does not block new requests
    breaker.end_retry()
    assert breaker.try_start_retry()


def test_zero_retries_allows_none():
    assert not CircuitBreaker(Limits(max_retries=0)).try_start_retry()


def test_pending_queue():
    breaker = CircuitBreaker(Limits(max_pending_requests=2))
    assert breaker.try_enqueue_pending() and breaker.try_enqueue_pending()
    assert not breaker.try_enqueue_pending() and breaker.rq_pending_overflow == 1
    breaker.dequeue_pending()
    assert breaker.try_enqueue_pending()


def test_connections():
    breaker = CircuitBreaker(Limits(max_connections=2))
    for _ in range(2):
        assert breaker.may_open_connection()
        breaker.connection_opened()
    assert not breaker.may_open_connection() and breaker.cx_overflow == 1
    breaker.connection_closed()
    assert breaker.may_open_connection()


@pytest.mark.parametrize("end", ["end_request", "end_retry", "dequeue_pending", "connection_closed"])
def test_ending_more_than_started_is_a_caller_bug(end):
    with pytest.raises(RuntimeError):
        getattr(CircuitBreaker(None), end)()


def test_stats_report_counts_and_overflows():
    breaker = CircuitBreaker(Limits(max_requests=1))
    breaker.try_start_request()
    breaker.try_start_request()
    stats = breaker.stats()
    assert stats["requests"] == 1 and stats["rq_overflow"] == 1 and stats["max_requests"] == 1


def test_pending_limit_delta_moves_only_the_pending_limit():
    from meshproxy.defects import Defects
    limits = Limits(max_connections=2, max_pending_requests=2, max_requests=9, max_retries=1)
    breaker = CircuitBreaker(limits, Defects({"pending_limit_delta": 1}))
    assert (breaker.max_connections, breaker.max_pending_requests, breaker.max_requests,
            breaker.max_retries) == (2, 3, 9, 1)
    assert CircuitBreaker(limits, Defects({"pending_limit_delta": -5})).max_pending_requests == 0
