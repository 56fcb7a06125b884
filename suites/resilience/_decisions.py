"""The statistical decisions of the resilience checks, as pure functions (no mesh, no I/O).

Kept apart so the power and false-fail rate of each decision can be computed and simulated without a
mesh (tests/harness/test_resilience_power.py) and so bench/false_failures_resilience.py runs exactly
the decision the check runs.

- Fault percentages: an exact two-sided binomial test at alpha = 0.001 (false-fail rate ≤ 0.1%) on a
  sample size chosen so that a percentage off by 5 points either way is detected with power ≥ 99%
  (exact pmf sums, :func:`harness.stats.sample_size_for_power`): 2194 requests for 20%, 2765 for 30%.
- Backoff gaps: Envoy's full jitter, retry n waits Uniform[0, min((2^n − 1)·base, max)). The gaps the
  echo measures add a network/processing floor (the failed try's answer travelling back, the new try
  travelling out); it is estimated as the median gap of a no-backoff control route and subtracted.
  One KS test per retry number at alpha/m (m retry numbers, union bound: false-fail rate ≤ 0.1%), plus
  bounds: no gap earlier than the floor minus ``early_tolerance_s`` and none later than the policy's
  upper bound plus ``late_tolerance_s``. With 150 gaps per retry number the KS test rejects constant
  backoff (every gap = base) and no-jitter backoff (every gap = the upper bound) with power 1.0 in
  2,000 seeded simulations each (KS distance ≥ 0.9 against a critical value of 0.17).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from harness import stats

ALPHA = 0.001  # false-fail rate of every statistical check in this suite
POWER = 0.99
FAULT_DELTA = 0.05  # the deviation in percentage points (as a fraction) the fault checks must detect


# -- fault percentages -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def fault_sample_size(p0: float, delta: float = FAULT_DELTA, alpha: float = ALPHA, power: float = POWER) -> int:
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


def judge_share(count: int, n: int, p0: float, *, what: str, alpha: float = ALPHA,
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


# -- backoff gaps ------------------------------------------------------------------------------------

def full_jitter_bound(retry_number: int, base: float, cap: float) -> float:
    """Upper end of Envoy's full-jitter interval before retry ``retry_number`` (1-based)."""
    return min((2 ** retry_number - 1) * base, cap)


@dataclass(frozen=True)
class BackoffVerdict:
    passed: bool
    floor_s: float
    ks: dict[int, stats.KsResult]
    bounds_s: dict[int, float]
    adjusted: dict[int, list[float]]  # gaps minus the floor, seconds
    reason: str
    problems: list[str] = field(default_factory=list)


def estimate_floor(control_gaps: Sequence[float]) -> float:
    """The network/processing part of a gap: the median gap on a route with (almost) no backoff."""
    ordered = sorted(control_gaps)
    if not ordered:
        raise ValueError("no control gaps to estimate the floor from")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def judge_backoff(gaps_by_retry: Mapping[int, Sequence[float]], control_gaps: Sequence[float], *, base: float,
                  cap: float, alpha: float = ALPHA, early_tolerance_s: float = 0.005,
                  late_tolerance_s: float = 0.025) -> BackoffVerdict:
    """Do the measured gaps (seconds, per retry number) follow full jitter, given the overhead?

    A measured gap is the backoff plus the overhead of the failed answer and the new try. The overhead
    is not a constant on a busy machine, so it is not subtracted: its distribution is measured on a
    control route with no backoff (interleaved with the checked requests, so both see the same load),
    and the gaps are tested by KS against Uniform[0, bound) convolved with that empirical overhead —
    exactly a mixture of uniforms [c, c + bound) over the control gaps c."""
    m = len(gaps_by_retry)
    if m == 0:
        raise ValueError("no gaps")
    if not control_gaps:
        raise ValueError("no control gaps to measure the overhead from")
    floor_s = estimate_floor(control_gaps)
    lowest, highest = min(control_gaps), max(control_gaps)
    per_test_alpha = alpha / m
    ks: dict[int, stats.KsResult] = {}
    bounds: dict[int, float] = {}
    adjusted: dict[int, list[float]] = {}
    problems: list[str] = []
    for n, gaps in sorted(gaps_by_retry.items()):
        bound = full_jitter_bound(n, base, cap)
        bounds[n] = bound
        adjusted[n] = [g - floor_s for g in gaps]  # for the report and plots only
        ks[n] = stats.ks_uniform_mixture(gaps, [(1.0, c, c + bound) for c in control_gaps])
        if ks[n].p_value <= per_test_alpha:
            problems.append(f"retry {n}: gaps are not Uniform[0, {bound * 1e3:.0f} ms) plus the measured overhead "
                            f"(KS D = {ks[n].statistic:.3f}, p = {ks[n].p_value:.2g} <= {per_test_alpha:.2g}; "
                            f"mean minus median overhead {sum(adjusted[n]) / len(adjusted[n]) * 1e3:.1f} ms, "
                            f"want {bound * 500:.1f} ms)")
        early = [g for g in gaps if g < lowest - early_tolerance_s]
        late = [g for g in gaps if g > highest + bound + late_tolerance_s]
        if early:
            problems.append(f"retry {n}: {len(early)} gap(s) shorter than the least overhead by more than "
                            f"{early_tolerance_s * 1e3:.0f} ms (min {min(early) * 1e3:.1f} ms)")
        if late:
            problems.append(f"retry {n}: {len(late)} gap(s) later than the {bound * 1e3:.0f} ms bound plus the "
                            f"largest overhead by more than {late_tolerance_s * 1e3:.0f} ms "
                            f"(max {max(late) * 1e3:.1f} ms)")
    if problems:
        reason = "backoff does not follow full jitter: " + "; ".join(problems)
    else:
        reason = ("backoff gaps consistent with full jitter: " +
                  ", ".join(f"retry {n} KS p = {r.p_value:.3g}" for n, r in ks.items()))
    return BackoffVerdict(not problems, floor_s, ks, bounds, adjusted, reason, problems)
