"""Retry decisions and backoff, with Envoy's semantics.

- ``attempts`` is Envoy's ``num_retries``: retries after the first try, so at most ``attempts + 1``
  tries. A route without a retry policy is never retried (Envoy: no ``retry_policy``, no retries).
- ``retry_on`` (Envoy router ``x-envoy-retry-on``; retry_state_impl.cc ``wouldRetryFromHeaders`` and
  ``wouldRetryFromReset``):

  ================= ========================== ===== =============== ===============
  condition         responses                  reset connect-failure per-try-timeout
  ================= ========================== ===== =============== ===============
  5xx               any 500..599               yes   yes             yes
  gateway-error     502, 503, 504              yes   yes             yes
  reset             -                          yes   yes             yes
  connect-failure   -                          -     yes             -
  retriable-status  the listed codes           -     -               -
  ================= ========================== ===== =============== ===============

  Envoy counts a reset as a 5xx "since it will result in one" for both 5xx and gateway-error; a
  per-try timeout is a local reset and is retried ("disconnect/reset/read timeout"); a connect failure
  is a reset with reason ConnectionFailure. A 4xx such as 404 is retried only when listed.
- Backoff: Envoy's documented full jitter: retry n (1-based) waits a uniform time in
  ``[0, min((2**n - 1) * base, max_interval))``; ``max_interval`` defaults to 10 × base. With Envoy's
  defaults (25 ms, 250 ms): retry 1 in [0, 25 ms), 2 in [0, 75 ms), 3 in [0, 175 ms), then [0, 250 ms).

Defects: ``retries_delta`` adds to ``attempts`` (floor 0); ``backoff: "constant"`` always waits base,
``backoff: "no_jitter"`` always waits the upper bound; ``connect_failure_not_retried``: a connect failure
is never retried, whatever ``retry_on`` says.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from meshscenario import Retries, RetryOn
from meshproxy.defects import NONE, Defects

RESPONSE = "response"
RESET = "reset"
CONNECT_FAILURE = "connect-failure"
PER_TRY_TIMEOUT = "per-try-timeout"
OUTCOME_KINDS = frozenset({RESPONSE, RESET, CONNECT_FAILURE, PER_TRY_TIMEOUT})

_GATEWAY_ERRORS = frozenset({502, 503, 504})
_NO_RESPONSE = frozenset({RESET, CONNECT_FAILURE, PER_TRY_TIMEOUT})
# which retry_on conditions retry each outcome kind that has no response
_RETRIED_KINDS = {
    RetryOn.FIVE_XX: _NO_RESPONSE,
    RetryOn.GATEWAY_ERROR: _NO_RESPONSE,
    RetryOn.RESET: _NO_RESPONSE,
    RetryOn.CONNECT_FAILURE: frozenset({CONNECT_FAILURE}),
    RetryOn.RETRIABLE_STATUS_CODES: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one try ended: a response with ``status``, or a kind without one."""

    status: int | None = None
    kind: str = RESPONSE  # "response" | "reset" | "connect-failure" | "per-try-timeout"


# Frozen dataclasses are slow to build (~0.5 µs): the request path reuses these shared instances.
RESET_OUTCOME = Outcome(kind=RESET)
CONNECT_FAILURE_OUTCOME = Outcome(kind=CONNECT_FAILURE)
PER_TRY_TIMEOUT_OUTCOME = Outcome(kind=PER_TRY_TIMEOUT)
_RESPONSES = {status: Outcome(status) for status in range(100, 600)}


def response_outcome(status: int) -> Outcome:
    """The shared ``Outcome(status)`` of a response (a new one for a status outside 100..599)."""
    outcome = _RESPONSES.get(status)
    return outcome if outcome is not None else Outcome(status)


def backoff_interval(retry_number: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds before retry ``retry_number`` (1-based): uniform in [0, min((2**n - 1)·base, cap))."""
    return rng.random() * _upper_bound(retry_number, base, cap)


def _upper_bound(retry_number: int, base: float, cap: float) -> float:
    if retry_number >= 64:  # (2**64 - 1)·base exceeds any cap; avoid huge ints
        return cap
    return min(((1 << retry_number) - 1) * base, cap)


class _RetryRules:
    """What one ``Retries`` value retries and how long it waits, precomputed once per route."""

    __slots__ = ("statuses", "any_5xx", "kinds", "attempts", "base", "cap")

    def __init__(self, retries: Retries | None):
        on = set(retries.retry_on) if retries is not None else set()
        self.any_5xx = RetryOn.FIVE_XX in on
        statuses: set[int] = set()
        if RetryOn.GATEWAY_ERROR in on:
            statuses |= _GATEWAY_ERRORS
        if RetryOn.RETRIABLE_STATUS_CODES in on:
            statuses |= set(retries.retriable_status_codes)
        self.statuses = frozenset(statuses)
        self.kinds = frozenset().union(*(_RETRIED_KINDS[c] for c in on)) if on else frozenset()
        self.attempts = retries.attempts if retries is not None else 0
        self.base = retries.backoff.base_interval if retries is not None else 0.0
        self.cap = retries.backoff.effective_max if retries is not None else 0.0

    def retriable(self, outcome: Outcome) -> bool:
        if outcome.kind == RESPONSE:
            status = outcome.status
            if status is None:
                return False
            return (self.any_5xx and 500 <= status <= 599) or status in self.statuses
        return outcome.kind in self.kinds


_NO_RETRIES = _RetryRules(None)  # a route without a retry policy: Envoy never retries it

# Retries values are frozen pydantic models shared by all requests of a route: cache their rules.
_rules_cache: dict[int, tuple[Retries, _RetryRules]] = {}


def _rules_for(retries: Retries) -> _RetryRules:
    cached = _rules_cache.get(id(retries))
    if cached is not None and cached[0] is retries:
        return cached[1]
    if len(_rules_cache) > 4096:  # scenarios are replaced rarely; bound the cache anyway
        _rules_cache.clear()
    rules = _RetryRules(retries)
    _rules_cache[id(retries)] = (retries, rules)
    return rules


class RetryPolicy:
    """The retry state of one request. Call ``should_retry`` after every try, ``backoff`` before a retry.

    ``attempts_made`` counts the tries whose outcome was given to ``should_retry``; the next try's
    ``x-envoy-attempt-count`` is ``attempts_made + 1``. The breaker's ``max_retries`` is the caller's
    separate check.
    """

    __slots__ = ("_rules", "_rng", "max_retries", "attempts_made", "_backoff_mode", "_retry_any_status",
                 "_no_connect_retry")

    def __init__(self, retries: Retries | None, rng: random.Random, defects: Defects = NONE):
        rules = _NO_RETRIES if retries is None else _rules_for(retries)
        self._rules = rules
        self._rng = rng
        self.attempts_made = 0
        self.max_retries = rules.attempts
        self._backoff_mode = None
        self._retry_any_status = False
        self._no_connect_retry = False
        if defects:
            self._retry_any_status = bool(defects.active("retry_any_status"))
            self._no_connect_retry = bool(defects.active("connect_failure_not_retried"))
            if retries is not None:
                self.max_retries = max(0, rules.attempts + int(defects.param("retries_delta", 0)))
            self._backoff_mode = defects.param("backoff")
            if self._backoff_mode not in (None, "constant", "no_jitter"):
                raise ValueError(f"defect 'backoff' must be 'constant' or 'no_jitter', got {self._backoff_mode!r}")

    @property
    def retries_made(self) -> int:
        return max(0, self.attempts_made - 1)

    def retriable(self, outcome: Outcome) -> bool:
        """Whether ``retry_on`` covers this outcome, ignoring how many retries are left."""
        return self._rules.retriable(outcome)

    def should_retry(self, outcome: Outcome) -> bool:
        """Record one finished try; True if it is retriable and a retry is left."""
        self.attempts_made += 1
        if self.attempts_made > self.max_retries:
            return False
        if self._retry_any_status and outcome.kind == RESPONSE and (outcome.status or 0) >= 400:
            return True  # defect: 4xx such as 404 retried as if it were a 5xx
        if self._no_connect_retry and outcome.kind == CONNECT_FAILURE:
            return False  # defect: a refused connection is given up on at once
        return self._rules.retriable(outcome)

    def backoff(self) -> float:
        """Seconds to wait before the retry that follows the last ``should_retry`` (full jitter)."""
        rules = self._rules
        retry_number = self.attempts_made if self.attempts_made > 0 else 1
        if self._backoff_mode is None:
            return self._rng.random() * _upper_bound(retry_number, rules.base, rules.cap)
        if self._backoff_mode == "constant":
            return rules.base
        return _upper_bound(retry_number, rules.base, rules.cap)  # "no_jitter"
