"""When an upstream pool opens new connections for requests waiting for one (pure, no clock).

A request that finds no idle connection waits for the first one ready for its endpoint: one a request
gives back, or one being opened. Opening is not free: an mTLS handshake costs ~3 ms of CPU (both sides,
OpenSSL 3.0 on this machine; ~0.5 ms of it is the P-256 arithmetic), while a request on a fast upstream
gives its connection back after about one round trip (~0.5 ms). With ``n`` requests waiting beyond the
opens already in progress and ``k`` connections lent to requests, each held ``h``, the lent ones serve
all waiters in about ``n * h / k``; a new connection is ready after ``o``. So:

- open only when the upstream is slow (``h`` above 20 ms, or a loan older than 50 ms) and
  ``n * h / k > o``, or when nothing is lent (then nothing will come back). A fast upstream whose loans
  all came back late (a 10 ms hiccup of the whole machine, or of the CPU both sidecars share) is not
  slow: opening then only adds handshakes to the backlog. Measured at 2,000 req/s, an 11 ms pause of
  both sidecars at once (nothing of theirs: both logged it at the same instant) made the meter queue,
  the pool read the late loans as a slow upstream, opened connection after connection, and the stall
  grew to 62-94 ms;
- at most ``max_connecting`` opens at once, and never more than the waiters beyond those in progress;
- otherwise wait, and look again after ``o`` (by then ``h`` includes the age of the oldest loan, so a
  hung upstream, whose loans only grow older, still gets new connections);
- but waiting has a price too: a request that must wait for a connection costs ~15-20 µs more CPU
  (a future, a timer, a task) than one that finds an idle connection, so ``WAIT_BUDGET`` (64) waits
  since the last open pay for one more connection, about what its handshake costs. A steady demand for
  more connections (16 closed-loop clients) grows the pool by one per 64 waits, while a burst of 60 on
  a fast upstream costs one open, not 60.

Before this rule (issue 13) every request that found the pool empty opened a connection of its own and
waited for its handshake; at 1,000-2,000 req/s a burst then turned into up to 64 handshakes on each
sidecar (~200 ms of CPU), more requests piled up behind them, and the p99 reached 40-200 ms. A cold
start at 2,000 req/s still opens ~25 connections (while every handshake slows the CPU both sidecars
share, requests hold their connections 15-40 ms, which the rule rightly reads as a slow upstream); with
``max_connecting`` 2 instead of 4 the first 250 ms had a p50 of 14-17 ms instead of 87 ms.
"""

from __future__ import annotations

EWMA = 0.2  # weight of the newest sample in the moving averages of hold and open times
INITIAL_OPEN_S = 0.005  # until the first open is timed: about one mTLS handshake here
WAIT_BUDGET = 64  # waits for a connection that cost about one handshake of CPU
SLOW_HOLD_S = 0.020  # an upstream that holds connections longer than this (moving average) is slow
STUCK_LOAN_S = 0.050  # a loan older than this: the upstream is slow or hung, whatever the average says


def moving_average(previous: float | None, sample: float, weight: float = EWMA) -> float:
    return sample if previous is None else previous * (1 - weight) + sample * weight


def opens_to_start(*, waiting: int, connecting: int, lent: int, hold_s: float, open_s: float,
                   max_connecting: int, waits_since_open: int = 0, wait_budget: int = WAIT_BUDGET,
                   oldest_loan_s: float = 0.0) -> int:
    """How many connections to start opening now (0: let the lent ones serve the waiters)."""
    beyond = waiting - connecting
    if beyond <= 0 or connecting >= max_connecting:
        return 0
    if lent > 0:
        slow = hold_s > SLOW_HOLD_S or oldest_loan_s > STUCK_LOAN_S
        if not slow or beyond * max(hold_s, oldest_loan_s) / lent <= open_s:
            return 1 if waits_since_open >= wait_budget else 0
    return min(beyond, max_connecting - connecting)
