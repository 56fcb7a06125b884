"""Shared helpers of the policy tests: a fake monotonic clock and exact binomial acceptance intervals."""

from __future__ import annotations

from scipy.stats import binom

from meshscenario import Scenario, parse_scenario

FALSE_FAIL_RATE = 0.001  # every statistical assertion below is a 99.9% interval


class FakeClock:
    """A monotonic clock that moves only when a test advances it."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def binomial_interval(n: int, p: float) -> tuple[int, int]:
    """Counts out of n that a correct picker with probability p lands in with probability 99.9%."""
    low, high = binom.interval(1 - FALSE_FAIL_RATE, n, p)
    return int(low), int(high)


def scenario(**extra) -> Scenario:
    base = {"services": [{"name": "client"},
                         {"name": "backend", "versions": [{"name": "v1"}, {"name": "v2"}, {"name": "v3"}]}]}
    base.update(extra)
    return parse_scenario(base)
