"""The statistical decisions of the resilience checks, as pure functions (no mesh, no I/O).

Kept apart so the false-fail rate and power of each decision can be computed and simulated without a
mesh (tests/harness/test_resilience_power.py, bench/error_budgets.py) and so
bench/false_failures_resilience.py runs exactly the decision the check runs. Every rule a check
applies has its own share of the check's 0.1% (Bonferroni: the shares add up to ``ALPHA``):

- **Errors** (every check here): non-echo answers (resets, 502s) are tolerated up to 0.1% of requests
  (:class:`harness.stats.ErrorBound`, Ville's inequality) with ``ALPHA_ERRORS`` = 0.01% of the budget.
- **MeshFaultInjectionAbort**: exact two-sided binomial test at ``ALPHA - ALPHA_ERRORS`` = 0.09% on a
  sample size giving power ≥ 99% against ±5 points (exact pmf sums).
- **MeshFaultInjectionDelay**: a request is "delayed" when it reached the echo ≥ fixed_delay − 5 ms
  after the client sent it (the echo's journal against the client's send time, one CLOCK_MONOTONIC), so
  a stall on the way back cannot fake a delay. A stall on the way there still can, so an interleaved
  control route (no fault, same path, same batch) measures how often an undelayed request is that
  late (s); the share test allows p0 + (1 − p0)·s_up with s_up the control's one-sided upper bound.
  Rules: share too low (exact binomial, 0.035%), share too high given s_up (0.035%), s_up too low
  (0.01%), median added delay above fixed_delay + 20 ms (a distribution-free order-statistic count
  against the control's median, 0.01%), errors (0.01%).
- **MeshRetryBackoffFullJitter**: per retry number n (bound b = min((2^n − 1)·base, max)), with the
  interleaved no-backoff control route's gaps c_1..c_m as the overhead: a KS distance between the gaps
  and Uniform[0, b) convolved with the control's empirical overhead, judged at the two-sample critical
  value (n·m/(n + m) effective samples: the null is itself estimated from m control gaps), with a band
  for timers up to 10 ms late (:func:`ks_distance_batch`), 0.04% per retry number; "early": too many
  gaps below the least control gap (a gap is backoff + overhead ≥ the overhead), "late": too many above
  the largest control gap + b + 10 ms — both
  counts have an exact distribution-free law (:func:`harness.stats.exceedance_sf`), 0.0025% each per
  retry number; errors 0.01%.

The false-fail rates under the quiet, loaded, whole-millisecond-timer and stall models and the power
against constant, no-jitter and half-range backoff are in bench/results/error_budgets-2026-12-04.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy import stats as _st

from harness import stats

ALPHA = 0.001  # false-fail rate of every check in this suite, all its rules together
POWER = 0.99
FAULT_DELTA = 0.05  # the deviation in percentage points (as a fraction) the fault checks must detect

ALPHA_ERRORS = 0.0001  # each check's share for its errors rule
ERRORS = stats.ErrorBound(rate=0.001, alternative=0.01, alpha=ALPHA_ERRORS)

# MeshFaultInjectionAbort: the share test gets the rest
ALPHA_ABORT_SHARE = ALPHA - ALPHA_ERRORS

# MeshFaultInjectionDelay
ALPHA_DELAY_LOW = 0.00035
ALPHA_DELAY_HIGH = 0.00035
ALPHA_DELAY_CONTROL = 0.0001
ALPHA_DELAY_MAGNITUDE = 0.0001
DELAY_EARLY_S = 0.005  # "delayed": reached the echo at least fixed_delay − 5 ms after it was sent
DELAY_TOLERANCE_S = 0.020  # the added delay's median may exceed fixed_delay by this much
assert abs(ALPHA_DELAY_LOW + ALPHA_DELAY_HIGH + ALPHA_DELAY_CONTROL + ALPHA_DELAY_MAGNITUDE + ALPHA_ERRORS
           - ALPHA) < 1e-12

# MeshRetryBackoffFullJitter: shares per retry number are these divided by the number of retry numbers
ALPHA_BACKOFF_KS = 0.0008
ALPHA_BACKOFF_EARLY = 0.00005
ALPHA_BACKOFF_LATE = 0.00005
# Timers fire up to this late on a loaded machine (a whole-millisecond timer rounds up; a process woken
# by its timer waits for a CPU, which the control route's immediate retries never do: seen live, 6 ms on
# average at load 14 on 2 vCPUs). The KS band and the "late" rule allow it; a check that fails beyond it
# says so.
BACKOFF_LATE_TOLERANCE_S = 0.010
assert abs(ALPHA_BACKOFF_KS + ALPHA_BACKOFF_EARLY + ALPHA_BACKOFF_LATE + ALPHA_ERRORS - ALPHA) < 1e-12


# -- fault percentages -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def fault_sample_size(p0: float, delta: float = FAULT_DELTA, alpha: float = ALPHA_ABORT_SHARE,
                      power: float = POWER) -> int:
    """Requests needed to detect p0 ± delta with ``power`` at false-fail rate ``alpha`` (exact)."""
    return stats.sample_size_for_power(p0, delta, alpha=alpha, power=power)


@dataclass(frozen=True)
class ShareVerdict:
    passed: bool
    count: int
    n: int
    p0: float
    p_value: float
    interval: tuple[float, float]  # Clopper-Pearson at 1 - alpha
    power_low: float  # exact power against p0 - delta
    power_high: float  # exact power against p0 + delta
    reason: str


def judge_share(count: int, n: int, p0: float, *, what: str, alpha: float = ALPHA_ABORT_SHARE,
                delta: float = FAULT_DELTA, with_power: bool = True) -> ShareVerdict:
    """Is ``count`` of ``n`` consistent with proportion ``p0``? Fails when the exact p-value ≤ alpha."""
    p_value = stats.binomial_test(count, n, p0)
    interval = stats.clopper_pearson(count, n, 1 - alpha)
    power_low = power_high = float("nan")  # skipped in simulations, where they are the same every run
    if with_power:
        power_low = stats.binomial_power(n, p0, p0 - delta, alpha) if p0 - delta > 0 else 1.0
        power_high = stats.binomial_power(n, p0, p0 + delta, alpha) if p0 + delta < 1 else 1.0
    passed = p_value > alpha
    share = count / n
    reason = (f"{what} share {share:.4f} ({count}/{n}) is consistent with the declared {p0:.2f} "
              f"(exact binomial p = {p_value:.3g})" if passed else
              f"{what} share {share:.4f} ({count}/{n}) deviates from the declared {p0:.2f}: exact binomial "
              f"p = {p_value:.3g} <= alpha {alpha} ({1 - alpha:.1%} interval {interval[0]:.4f}..{interval[1]:.4f})")
    return ShareVerdict(passed, count, n, p0, p_value, interval, power_low, power_high, reason)


@dataclass(frozen=True)
class ErrorsVerdict:
    passed: bool
    errors: int
    n: int
    reason: str


def judge_errors(errors: int, n: int, *, what: str = "requests") -> ErrorsVerdict:
    """The errors rule shared by the checks of this suite (:data:`ERRORS`)."""
    passed = not ERRORS.exceeded(errors, n)
    reason = (f"errors within the stated bound: " if passed else
              f"too many errors for a correct mesh ({ERRORS.describe()}): ") + ERRORS.verdict(errors, n)
    return ErrorsVerdict(passed, errors, n, f"{what}: {reason}")


# -- fault delay -------------------------------------------------------------------------------------

def control_upper(y: int, m: int, alpha: float = ALPHA_DELAY_CONTROL) -> float:
    """One-sided (1 − alpha) Clopper–Pearson upper bound of a proportion from y of m."""
    return 1.0 if y >= m else float(_st.beta.ppf(1 - alpha, y + 1, m - y))


def delay_critical(n: int, p0: float, s_up: float) -> tuple[int, int]:
    """(k_low, k_high): the delay share fails when the delayed count is ≤ k_low or ≥ k_high."""
    k_low = int(_st.binom.ppf(ALPHA_DELAY_LOW, n, p0)) - 1  # cdf(k_low) <= alpha_low
    while k_low + 1 >= 0 and _st.binom.cdf(k_low + 1, n, p0) <= ALPHA_DELAY_LOW:
        k_low += 1
    while k_low >= 0 and _st.binom.cdf(k_low, n, p0) > ALPHA_DELAY_LOW:
        k_low -= 1
    high_p = p0 + (1 - p0) * s_up
    k_high = int(_st.binom.isf(ALPHA_DELAY_HIGH, n, high_p)) + 1  # sf(k_high - 1) <= alpha_high
    while k_high - 1 <= n and _st.binom.sf(k_high - 2, n, high_p) <= ALPHA_DELAY_HIGH:
        k_high -= 1
    while k_high <= n and _st.binom.sf(k_high - 1, n, high_p) > ALPHA_DELAY_HIGH:
        k_high += 1
    return k_low, k_high


def delay_power(n: int, m: int, p0: float, delta: float = FAULT_DELTA) -> tuple[float, float]:
    """Exact power of the delay share rules against p0 − delta and p0 + delta on a machine where no
    undelayed request is late (the control then shows 0 of m)."""
    k_low, k_high = delay_critical(n, p0, control_upper(0, m))
    return float(_st.binom.cdf(k_low, n, p0 - delta)), float(_st.binom.sf(k_high - 1, n, p0 + delta))


@functools.lru_cache(maxsize=None)
def delay_sample_size(p0: float, delta: float = FAULT_DELTA, power: float = POWER) -> int:
    """Smallest n (checked step by step from the fixed-n test's size) with both powers ≥ ``power``,
    with as many control requests as fault-route requests."""
    n = stats.sample_size_for_power(p0, delta, alpha=2 * ALPHA_DELAY_LOW, power=power)
    while min(delay_power(n, n, p0, delta)) < power:
        n += 8
    return n


@dataclass(frozen=True)
class DelayVerdict:
    passed: bool
    delayed: int
    n: int
    control_late: int
    m: int
    s_up: float
    k_low: int
    k_high: int
    median_added_s: float
    magnitude_count: int
    magnitude_critical: int
    interval: tuple[float, float]
    reason: str
    problems: list[str] = field(default_factory=list)


@functools.lru_cache(maxsize=None)
def delay_criticals(n: int, m: int, p0: float) -> tuple[int, np.ndarray, np.ndarray]:
    """(k_low, k_high by control late count y = 0..m, magnitude critical by delayed count x = 0..n)."""
    k_low, _ = delay_critical(n, p0, 0.0)
    k_high = np.array([delay_critical(n, p0, control_upper(y, m))[1] for y in range(m + 1)])
    r = (m + 1) // 2
    mag = np.array([stats.exceedance_critical(max(x, 1), m, r, ALPHA_DELAY_MAGNITUDE) for x in range(n + 1)])
    return k_low, k_high, mag


def delay_statistics_batch(latency: np.ndarray, control: np.ndarray, *, delay_s: float,
                           tolerance_s: float = DELAY_TOLERANCE_S) -> dict[str, np.ndarray]:
    """Per row of ``latency`` (R, n) and ``control`` (R, m): the delayed count x, the control's late count
    y and the magnitude count (delayed requests above fixed_delay + tolerance + the control's median)."""
    a = np.atleast_2d(np.asarray(latency, float))
    c = np.sort(np.atleast_2d(np.asarray(control, float)), axis=1)
    m = c.shape[1]
    theta = delay_s - DELAY_EARLY_S
    slow = a >= theta
    r = (m + 1) // 2
    median_c = c[:, m - r]
    return {"x": slow.sum(axis=1), "y": (c >= theta).sum(axis=1),
            "magnitude": (slow & (a - delay_s - tolerance_s > median_c[:, None])).sum(axis=1)}


def delay_fails_batch(latency: np.ndarray, control: np.ndarray, *, p0: float, delay_s: float,
                      tolerance_s: float = DELAY_TOLERANCE_S) -> dict[str, np.ndarray]:
    """The delay rules on R samples at once (bool arrays per rule), exactly as :func:`judge_delay`."""
    st_ = delay_statistics_batch(latency, control, delay_s=delay_s, tolerance_s=tolerance_s)
    n, m = np.atleast_2d(latency).shape[1], np.atleast_2d(control).shape[1]
    k_low, k_high, mag = delay_criticals(n, m, p0)
    x = st_["x"]
    return {"low": x <= k_low, "high": x >= k_high[st_["y"]],
            "magnitude": (x > 0) & (st_["magnitude"] >= mag[x])}


def judge_delay(latency_s: Sequence[float], control_s: Sequence[float], *, p0: float, delay_s: float,
                tolerance_s: float = DELAY_TOLERANCE_S) -> DelayVerdict:
    """``latency_s``: send → echo arrival of each answered fault-route request; ``control_s``: the same on
    the interleaved no-fault control route. See the module docstring for the rules and their shares."""
    a = np.asarray(latency_s, float)
    c = np.sort(np.asarray(control_s, float))
    n, m = a.size, c.size
    if n == 0 or m == 0:
        raise ValueError("no latencies")
    fails = {k: bool(v[0]) for k, v in delay_fails_batch(a[None, :], c[None, :], p0=p0, delay_s=delay_s,
                                                          tolerance_s=tolerance_s).items()}
    counts = {k: int(v[0]) for k, v in delay_statistics_batch(a[None, :], c[None, :], delay_s=delay_s,
                                                               tolerance_s=tolerance_s).items()}
    x, y, magnitude_count = counts["x"], counts["y"], counts["magnitude"]
    k_low, k_high_by_y, mag = delay_criticals(n, m, p0)
    k_high, magnitude_critical = int(k_high_by_y[y]), int(mag[x])
    s_up = control_upper(y, m)
    slow = a[a >= delay_s - DELAY_EARLY_S]
    median_added = float(np.median(slow) - np.median(c)) if x else float("nan")
    problems = []
    if fails["low"]:
        problems.append(f"delay percentage wrong: {x} of {n} delayed ({x / n:.4f}), at most {k_low} is an exact "
                        f"binomial tail ≤ {ALPHA_DELAY_LOW} below the declared {p0:.2f}")
    if fails["high"]:
        problems.append(f"delay percentage wrong: {x} of {n} delayed ({x / n:.4f}), at least {k_high} is an exact "
                        f"binomial tail ≤ {ALPHA_DELAY_HIGH} above the declared {p0:.2f} plus the control's "
                        f"late share ({y} of {m}, upper bound {s_up:.4f})")
    if fails["magnitude"]:
        problems.append(f"delay magnitude wrong: {magnitude_count} of {x} delayed requests exceed fixed_delay + "
                        f"{tolerance_s * 1e3:.0f} ms + the control's median (≥ {magnitude_critical} has probability "
                        f"≤ {ALPHA_DELAY_MAGNITUDE} for a correct mesh); median added delay {median_added * 1e3:.1f} ms")
    interval = stats.clopper_pearson(x, n, 1 - ALPHA)
    reason = ("; ".join(problems) if problems else
              f"delay share {x / n:.4f} ({x}/{n}) consistent with the declared {p0:.2f} (passes while "
              f"{k_low} < delayed < {k_high}; control late {y}/{m}, exact binomial tails); median added delay "
              f"{median_added * 1e3:.1f} ms")
    return DelayVerdict(not problems, x, n, y, m, s_up, k_low, k_high, median_added, magnitude_count,
                        magnitude_critical, interval, reason, problems)


# -- backoff gaps ------------------------------------------------------------------------------------

def full_jitter_bound(retry_number: int, base: float, cap: float) -> float:
    """Upper end of Envoy's full-jitter interval before retry ``retry_number`` (1-based)."""
    return min((2 ** retry_number - 1) * base, cap)


def mixture_cdf_batch(x: np.ndarray, control: np.ndarray, bound: float) -> np.ndarray:
    """Row by row: CDF at ``x`` (R, n) of Uniform[0, bound) + a draw of the row's ``control`` (R, m),
    i.e. the mixture (1/m) Σ_j Uniform[c_j, c_j + bound). Prefix sums and one searchsorted: O((n+m) log)."""
    x = np.atleast_2d(np.asarray(x, float))
    c = np.sort(np.atleast_2d(np.asarray(control, float)), axis=1)
    rows, m = c.shape
    width = float(max(np.ptp(c), np.ptp(x)) + np.abs(c).max() + np.abs(x).max() + 2 * bound + 1.0)
    offset = (np.arange(rows) * width)[:, None]
    flat = (c + offset).ravel()
    prefix = np.concatenate([np.zeros((rows, 1)), np.cumsum(c, axis=1)], axis=1)

    def s(y: np.ndarray) -> np.ndarray:  # Σ_{c_j < y} (y − c_j), per row
        k = np.searchsorted(flat, (y + offset).ravel(), side="left").reshape(y.shape) - np.arange(rows)[:, None] * m
        return k * y - np.take_along_axis(prefix, k, axis=1)

    return (s(x) - s(x - bound)) / (m * bound)


def ks_distance_batch(gaps: np.ndarray, control: np.ndarray, bound: float, late: float = 0.0) -> np.ndarray:
    """KS distance, per row, between the gaps' empirical CDF F_n and the null F = :func:`mixture_cdf_batch`,
    with a tolerance for timers that fire up to ``late`` seconds late: the gaps may lie anywhere between
    F (on time) and F shifted right by ``late``, so the distance is max(sup(F_n − F), sup(F(· − late) − F_n)).
    A gap distribution inside that band (a correct mesh whose timers are at most ``late`` late) gives
    each side no more than the one-sided KS distance of its own CDF, so the two-sided critical value
    still bounds its false-fail rate. ``late`` = 0 is the plain KS distance."""
    g = np.sort(np.atleast_2d(np.asarray(gaps, float)), axis=1)
    n = g.shape[1]
    f = mixture_cdf_batch(g, control, bound)
    f_late = f if late == 0 else mixture_cdf_batch(g - late, control, bound)
    i = np.arange(1, n + 1)
    return np.maximum((i / n - f).max(axis=1), (f_late - (i - 1) / n).max(axis=1))


def ks_critical(n: int, m: int, alpha: float) -> float:
    """Critical KS distance at ``alpha`` with the two-sample effective size n·m/(n + m) (rounded down)."""
    return float(_st.kstwo.isf(alpha, max(1, (n * m) // (n + m))))


@functools.lru_cache(maxsize=None)
def backoff_rule_criticals(n: int, m: int, retries: int) -> tuple[float, int, int]:
    """(KS critical distance, early count critical, late count critical) for n gaps per retry number,
    m control gaps and ``retries`` retry numbers."""
    return (ks_critical(n, m, ALPHA_BACKOFF_KS / retries),
            stats.exceedance_critical(n, m, 1, ALPHA_BACKOFF_EARLY / retries),
            stats.exceedance_critical(n, m, 1, ALPHA_BACKOFF_LATE / retries))


def backoff_fails_batch(gaps: Mapping[int, np.ndarray], control: np.ndarray, *, base: float,
                        cap: float) -> dict[str, np.ndarray]:
    """The backoff rules on R simulated (or one real) samples at once: ``gaps[n]`` is (R, n_gaps),
    ``control`` (R, m). Returns per rule a bool array (R,): did that rule fail the row. The check's
    verdict is the OR of them (plus the errors rule), exactly as :func:`judge_backoff` computes it."""
    control = np.atleast_2d(np.asarray(control, float))
    lowest, highest = control.min(axis=1), control.max(axis=1)
    out: dict[str, np.ndarray] = {}
    for n, g in sorted(gaps.items()):
        g = np.atleast_2d(np.asarray(g, float))
        bound = full_jitter_bound(n, base, cap)
        d_crit, early_crit, late_crit = backoff_rule_criticals(g.shape[1], control.shape[1], len(gaps))
        out[f"ks{n}"] = ks_distance_batch(g, control, bound, BACKOFF_LATE_TOLERANCE_S) >= d_crit
        out[f"early{n}"] = (g < lowest[:, None]).sum(axis=1) >= early_crit
        out[f"late{n}"] = (g > highest[:, None] + bound + BACKOFF_LATE_TOLERANCE_S).sum(axis=1) >= late_crit
    return out


@dataclass(frozen=True)
class BackoffVerdict:
    passed: bool
    floor_s: float
    ks: dict[int, stats.KsResult]
    bounds_s: dict[int, float]
    adjusted: dict[int, list[float]]  # gaps minus the floor, seconds
    reason: str
    problems: list[str] = field(default_factory=list)
    ks_critical: dict[int, float] = field(default_factory=dict)


def estimate_floor(control_gaps: Sequence[float]) -> float:
    """The network/processing part of a gap: the median gap on a route with (almost) no backoff."""
    ordered = sorted(control_gaps)
    if not ordered:
        raise ValueError("no control gaps to estimate the floor from")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def judge_backoff(gaps_by_retry: Mapping[int, Sequence[float]], control_gaps: Sequence[float], *, base: float,
                  cap: float) -> BackoffVerdict:
    """Do the measured gaps (seconds, per retry number) follow full jitter, given the overhead?

    A measured gap is the backoff plus the overhead of the failed answer and the new try. The overhead
    is not a constant on a busy machine, so it is not subtracted: its distribution is measured on a
    control route with no backoff (interleaved with the checked requests, so both see the same load),
    and the gaps are judged against Uniform[0, bound) convolved with that empirical overhead. The rules
    and their shares of the budget are in the module docstring; :func:`backoff_fails_batch` computes them."""
    m = len(gaps_by_retry)
    if m == 0 or any(len(g) == 0 for g in gaps_by_retry.values()):
        raise ValueError("no gaps")
    if not control_gaps:
        raise ValueError("no control gaps to measure the overhead from")
    control = np.asarray(control_gaps, float)
    floor_s = estimate_floor(control_gaps)
    fails = backoff_fails_batch({n: np.asarray(g, float)[None, :] for n, g in gaps_by_retry.items()},
                                control[None, :], base=base, cap=cap)
    ks: dict[int, stats.KsResult] = {}
    bounds: dict[int, float] = {}
    adjusted: dict[int, list[float]] = {}
    criticals: dict[int, float] = {}
    problems: list[str] = []
    for n, gaps in sorted(gaps_by_retry.items()):
        g = np.asarray(gaps, float)
        bound = full_jitter_bound(n, base, cap)
        bounds[n] = bound
        adjusted[n] = [float(v - floor_s) for v in g]  # for the report and plots only
        d = float(ks_distance_batch(g[None, :], control[None, :], bound, BACKOFF_LATE_TOLERANCE_S)[0])
        n_eff = max(1, (g.size * control.size) // (g.size + control.size))
        ks[n] = stats.KsResult(d, float(_st.kstwo.sf(d, n_eff)), int(g.size))
        d_crit, early_crit, late_crit = backoff_rule_criticals(g.size, control.size, m)
        criticals[n] = d_crit
        if fails[f"ks{n}"][0]:
            problems.append(f"retry {n}: gaps are not Uniform[0, {bound * 1e3:.0f} ms) plus the measured overhead, "
                            f"timers up to {BACKOFF_LATE_TOLERANCE_S * 1e3:.0f} ms late allowed "
                            f"(KS D = {d:.3f} >= critical {d_crit:.3f} at {ALPHA_BACKOFF_KS / m:.2g}, two-sample "
                            f"effective n {n_eff}; mean minus median overhead {float(np.mean(adjusted[n])) * 1e3:.1f} ms, "
                            f"want {bound * 500:.1f} ms)")
        if fails[f"early{n}"][0]:
            early = g[g < control.min()]
            problems.append(f"retry {n}: {early.size} gap(s) shorter than the least overhead (≥ {early_crit} has "
                            f"probability ≤ {ALPHA_BACKOFF_EARLY / m:.2g} for a correct mesh; min {early.min() * 1e3:.1f} ms)")
        if fails[f"late{n}"][0]:
            late = g[g > control.max() + bound + BACKOFF_LATE_TOLERANCE_S]
            problems.append(f"retry {n}: {late.size} gap(s) later than the {bound * 1e3:.0f} ms bound plus the "
                            f"largest overhead plus {BACKOFF_LATE_TOLERANCE_S * 1e3:.0f} ms (≥ {late_crit} has "
                            f"probability ≤ {ALPHA_BACKOFF_LATE / m:.2g} for a correct mesh; max {late.max() * 1e3:.1f} ms)")
    if problems:
        reason = "backoff does not follow full jitter: " + "; ".join(problems)
    else:
        reason = ("backoff gaps consistent with full jitter: " +
                  ", ".join(f"retry {n} KS D = {r.statistic:.3f} < {criticals[n]:.3f}" for n, r in ks.items()))
    return BackoffVerdict(not problems, floor_s, ks, bounds, adjusted, reason, problems, criticals)
