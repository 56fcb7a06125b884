"""decide_fault: independent delay and abort draws at Istio's percentages, and the percent defect."""

import random

import pytest

from meshscenario import FaultInjection
from meshproxy.defects import Defects
from meshproxy.policy.fault import NO_FAULT, FaultDecision, decide_fault
from policy_helpers import binomial_interval

N = 20_000


def _fault(delay=None, abort=None):
    return FaultInjection(delay=None if delay is None else {"percentage": delay, "fixed_delay": "50ms"},
                 abort=None if abort is None else {"percentage": abort, "http_status": 503})


def _counts(fault, defects=None, seed=1):
    rng = random.Random(seed)
    delayed = aborted = both = 0
    for _ in range(N):
        d = decide_fault(fault, rng, Defects(defects))
        delayed += d.delay_s is not None
        aborted += d.abort_status is not None
        both += d.delay_s is not None and d.abort_status is not None
    return delayed, aborted, both


def test_no_fault():
    assert decide_fault(None, random.Random(1)) is NO_FAULT
    assert not NO_FAULT.injects


def test_decision_carries_the_configured_values():
    d = decide_fault(_fault(delay=100, abort=100), random.Random(1))
    assert d == FaultDecision(delay_s=0.05, abort_status=503) and d.injects


@pytest.mark.parametrize("delay,abort", [(30.0, 10.0), (50.0, 50.0), (2.5, 97.5)])
def test_percentages_within_binomial_intervals_and_independent(delay, abort):
    delayed, aborted, both = _counts(_fault(delay, abort))
    for count, p in ((delayed, delay / 100), (aborted, abort / 100), (both, delay * abort / 1e4)):
        low, high = binomial_interval(N, p)
        assert low <= count <= high, (count, p)


def test_only_the_configured_fault_is_drawn():
    delayed, aborted, _ = _counts(_fault(delay=100))
    assert (delayed, aborted) == (N, 0)
    delayed, aborted, _ = _counts(_fault(abort=100))
    assert (delayed, aborted) == (0, N)


def test_zero_percent_never_fires():
    assert _counts(_fault(delay=0, abort=0)) == (0, 0, 0)


def test_defect_shifts_percentages():
    delayed, aborted, _ = _counts(_fault(delay=10, abort=20), {"fault_percent_delta": 15.0})
    assert binomial_interval(N, 0.25)[0] <= delayed <= binomial_interval(N, 0.25)[1]
    assert binomial_interval(N, 0.35)[0] <= aborted <= binomial_interval(N, 0.35)[1]


def test_defect_is_clamped_to_0_and_100():
    assert _counts(_fault(delay=95, abort=95), {"fault_percent_delta": 10.0}) == (N, N, N)
    assert _counts(_fault(delay=5, abort=5), {"fault_percent_delta": -10.0}) == (0, 0, 0)
