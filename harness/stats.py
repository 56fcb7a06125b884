"""Statistics for checks that observe a random process (SPEC §4): every test states its error rates.

A conformance check must neither fail a correct mesh often (its *false-fail rate*, alpha) nor pass a
broken one often (one minus its *power*). Each function below says which of the two it bounds and how:

- :func:`clopper_pearson` — exact binomial interval; covers the true proportion with probability at
  least ``confidence`` for every n and p (conservative).
- :func:`binomial_test` — exact two-sided p-value; rejecting when p ≤ alpha has false-reject rate ≤ alpha.
- :func:`binomial_power` / :func:`binomial_size` / :func:`sample_size_for_power` — exact power and size of
  that test, by summing the binomial pmf over its rejection region (no normal approximation).
- :func:`chi_square_split` — Pearson's goodness of fit for an N-way split; false-reject rate ≈ alpha
  when every expected count is ≥ 5 (asymptotic, flagged otherwise).
- :class:`Sprt` — Wald's sequential probability ratio test for one proportion.
- :class:`SequentialSplitTest` — a weighted split judged by SPRTs that stop as soon as they can decide,
  with a false-fail rate ≤ alpha and power ≥ 1 − beta against any backend off by ≥ delta.
- :func:`ks_uniform`, :func:`ks_uniform_mixture` — one-sample Kolmogorov–Smirnov against a uniform or a
  mixture of uniforms (backoff gaps); false-reject rate = alpha for a continuous, fully specified null.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy import stats as _st

_RELATIVE_TIE = 1 + 1e-7  # scipy's tolerance when comparing pmf values in the two-sided exact test


class Decision(str, Enum):
    ACCEPT_H0 = "accept_h0"  # consistent with the declared behaviour: pass
    ACCEPT_H1 = "accept_h1"  # deviates: fail
    CONTINUE = "continue"  # needs more samples
    UNDECIDED = "undecided"  # sample budget spent before a decision


# -- fixed-sample binomial -------------------------------------------------------------------------

def clopper_pearson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval for a proportion; coverage ≥ ``confidence`` for all p and n."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes}/{n}")
    a = 1 - confidence
    low = 0.0 if successes == 0 else float(_st.beta.ppf(a / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(_st.beta.ppf(1 - a / 2, successes + 1, n - successes))
    return low, high


def binomial_test(successes: int, n: int, p: float) -> float:
    """Two-sided exact p-value of ``successes`` in ``n`` under proportion ``p`` (minimum-likelihood
    method). Rejecting when the p-value ≤ alpha rejects a true ``p`` with probability ≤ alpha."""
    return float(_st.binomtest(successes, n, p, alternative="two-sided").pvalue)


def rejection_region(n: int, p0: float, alpha: float) -> np.ndarray:
    """Boolean mask over k = 0..n: where :func:`binomial_test` (k, n, p0) ≤ alpha. Vectorised."""
    pmf = _st.binom.pmf(np.arange(n + 1), n, p0)
    ordered = np.sort(pmf)
    cumulative = np.cumsum(ordered)
    idx = np.searchsorted(ordered, pmf * _RELATIVE_TIE, side="right")
    pvalues = np.minimum(cumulative[idx - 1], 1.0)
    return pvalues <= alpha


def binomial_size(n: int, p0: float, alpha: float) -> float:
    """The exact false-reject rate of the two-sided test at level alpha (always ≤ alpha)."""
    return float(_st.binom.pmf(np.arange(n + 1), n, p0)[rejection_region(n, p0, alpha)].sum())


def binomial_power(n: int, p0: float, p1: float, alpha: float) -> float:
    """Exact power of the two-sided test of p0 at level alpha when the true proportion is p1."""
    return float(_st.binom.pmf(np.arange(n + 1), n, p1)[rejection_region(n, p0, alpha)].sum())


def sample_size_for_power(p0: float, delta: float, *, alpha: float, power: float,
                          n_max: int = 2_000_000) -> int:
    """Smallest n (found by doubling then bisection, then verified) at which the two-sided exact test of
    p0 at level alpha detects p0 − delta and p0 + delta (those inside (0, 1)) each with ≥ ``power``.

    Exact tests have a saw-toothed power in n, so a slightly smaller n may also qualify; the returned n
    is always checked to qualify.
    """
    alternatives = [p for p in (p0 - delta, p0 + delta) if 0 < p < 1]
    if not alternatives:
        raise ValueError("p0 ± delta leaves (0, 1): nothing to detect")

    def enough(n: int) -> bool:
        return all(binomial_power(n, p0, p1, alpha) >= power for p1 in alternatives)

    high = 16
    while not enough(high):
        high *= 2
        if high > n_max:
            raise ValueError(f"more than {n_max} samples needed")
    low = high // 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    while not enough(high):  # the saw-tooth: step up until it holds
        high += 1
    return high


@dataclass(frozen=True)
class ChiSquareResult:
    statistic: float
    p_value: float
    expected: tuple[float, ...]
    dof: int
    reliable: bool  # every expected count ≥ 5, so the chi-square approximation holds


def chi_square_split(counts: Sequence[int], weights: Sequence[float]) -> ChiSquareResult:
    """Pearson's chi-square goodness of fit of observed ``counts`` to shares ∝ ``weights``.

    Rejecting when p ≤ alpha has false-reject rate ≈ alpha when ``reliable``; otherwise use exact
    per-backend binomial tests. A zero weight with a non-zero count gives p = 0.
    """
    counts_a = np.asarray(counts, dtype=float)
    w = np.asarray(weights, dtype=float)
    if counts_a.shape != w.shape or w.sum() <= 0:
        raise ValueError("counts and weights must have the same length and weights a positive sum")
    n = counts_a.sum()
    expected = n * w / w.sum()
    zero = expected == 0
    if np.any(counts_a[zero] > 0):
        return ChiSquareResult(math.inf, 0.0, tuple(expected), int((~zero).sum()) - 1, True)
    stat, p = _st.chisquare(counts_a[~zero], expected[~zero])
    return ChiSquareResult(float(stat), float(p), tuple(expected), int((~zero).sum()) - 1,
                           bool(np.all(expected[~zero] >= 5)))


# -- sequential ----------------------------------------------------------------------------------

class Sprt:
    """Wald's SPRT of H0: p = p0 against H1: p = p1 (p0 ≠ p1) on Bernoulli trials.

    Accepts H1 when the log-likelihood ratio reaches log((1 − beta)/alpha), H0 when it falls to
    log(beta/(1 − alpha)). Wald's inequalities bound the error rates at any stopping time, including
    when trials arrive in batches: P(accept H1 | H0) ≤ alpha/(1 − beta), P(accept H0 | H1) ≤
    beta/(1 − alpha). For p beyond p1 (away from p0) the power only grows (monotone likelihood ratio).
    Once decided, the decision sticks.
    """

    def __init__(self, p0: float, p1: float, alpha: float, beta: float):
        if not (0 < p0 < 1 and 0 < p1 < 1 and p0 != p1 and 0 < alpha < 1 and 0 < beta < 1):
            raise ValueError("need 0 < p0 != p1 < 1 and 0 < alpha, beta < 1")
        self.p0, self.p1, self.alpha, self.beta = p0, p1, alpha, beta
        self._win = math.log(p1 / p0)  # LLR step per success
        self._loss = math.log((1 - p1) / (1 - p0))  # per failure
        self.upper = math.log((1 - beta) / alpha)
        self.lower = math.log(beta / (1 - alpha))
        self.llr = 0.0
        self.n = 0
        self.successes = 0
        self.decision = Decision.CONTINUE

    @property
    def false_accept_h1_bound(self) -> float:
        return self.alpha / (1 - self.beta)

    @property
    def false_accept_h0_bound(self) -> float:
        return self.beta / (1 - self.alpha)

    def update(self, successes: int, n: int) -> Decision:
        """Add ``successes`` out of ``n`` new trials; returns the (sticky) decision."""
        if not 0 <= successes <= n:
            raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
        if self.decision is not Decision.CONTINUE:
            return self.decision
        self.n += n
        self.successes += successes
        self.llr += successes * self._win + (n - successes) * self._loss
        if self.llr >= self.upper:
            self.decision = Decision.ACCEPT_H1
        elif self.llr <= self.lower:
            self.decision = Decision.ACCEPT_H0
        return self.decision


class SequentialSplitTest:
    """Is an observed split consistent with ``weights``? Decides as soon as the evidence allows.

    For each backend with expected share w (0 < w < 1) two SPRTs run on its marginal count: w against
    w + delta and w against w − delta (sides outside (0, 1) are dropped). With m SPRTs, each gets
    alpha_i = (alpha/m)(1 − beta) and beta_i = beta(1 − alpha_i), so by Wald's inequalities and the
    union bound:

    - false-fail rate (a correct split judged ACCEPT_H1) ≤ ``alpha``;
    - power ≥ 1 − ``beta`` against any split where some backend's share is off by ≥ ``delta``.

    A backend of weight 0 that receives anything, or a backend not in ``weights``, fails at once (a
    correct mesh never does that, so this adds nothing to the false-fail rate). The test passes when all
    SPRTs accepted H0 and fails as soon as one accepts H1; it returns UNDECIDED if ``max_samples`` is
    spent first (callers treat that as a failure to demonstrate conformance, not as a pass).
    """

    def __init__(self, weights: Mapping[str, float], *, alpha: float = 0.001, beta: float = 0.01,
                 delta: float = 0.02, max_samples: int = 200_000):
        total = float(sum(weights.values()))
        if total <= 0 or any(w < 0 for w in weights.values()):
            raise ValueError("weights must be non-negative with a positive sum")
        self.shares = {name: w / total for name, w in weights.items()}
        self.alpha, self.beta, self.delta, self.max_samples = alpha, beta, delta, max_samples
        sides = [(name, share, share + sign * delta) for name, share in self.shares.items()
                 if 0 < share < 1 for sign in (+1, -1) if 0 < share + sign * delta < 1]
        m = max(len(sides), 1)
        alpha_i = alpha / m * (1 - beta)
        beta_i = beta * (1 - alpha_i)
        self._sprts = [(name, Sprt(share, p1, alpha_i, beta_i)) for name, share, p1 in sides]
        self.counts = {name: 0 for name in weights}
        self.n = 0
        self.decision = Decision.CONTINUE
        self.reason = ""

    @property
    def false_fail_rate(self) -> float:
        """Upper bound on P(ACCEPT_H1) for a correct split."""
        return self.alpha

    @property
    def power(self) -> float:
        """Lower bound on P(ACCEPT_H1) when a backend's share is off by at least ``delta``."""
        return 1 - self.beta

    def update(self, batch: Mapping[str, int]) -> Decision:
        """Add a batch of observed counts per backend; returns the decision so far (sticky)."""
        if self.decision is not Decision.CONTINUE:
            return self.decision
        unexpected = sorted(name for name, c in batch.items() if c and self.shares.get(name, 0) == 0)
        batch_n = sum(batch.values())
        self.n += batch_n
        for name, c in batch.items():
            self.counts[name] = self.counts.get(name, 0) + c
        if unexpected:
            self.reason = f"traffic reached backends with no weight: {', '.join(unexpected)}"
            self.decision = Decision.ACCEPT_H1
            return self.decision
        for name, sprt in self._sprts:
            if sprt.update(batch.get(name, 0), batch_n) is Decision.ACCEPT_H1:
                self.reason = (f"{name}: share {self.counts[name] / self.n:.4f} after {self.n} requests; "
                               f"SPRT accepts {sprt.p1:.4f} over the declared {sprt.p0:.4f}")
                self.decision = Decision.ACCEPT_H1
                return self.decision
        if all(s.decision is Decision.ACCEPT_H0 for _, s in self._sprts):
            self.decision = Decision.ACCEPT_H0
            self.reason = f"consistent with the weights after {self.n} requests"
        elif self.n >= self.max_samples:
            self.decision = Decision.UNDECIDED
            self.reason = f"no decision within {self.max_samples} requests"
        return self.decision

    def intervals(self, confidence: float = 0.999) -> dict[str, tuple[float, float]]:
        """Clopper–Pearson interval of each backend's share so far (for the report)."""
        return {name: clopper_pearson(c, self.n, confidence) for name, c in self.counts.items()} if self.n else {}


# -- distributions of gaps ----------------------------------------------------------------------

@dataclass(frozen=True)
class KsResult:
    statistic: float
    p_value: float
    n: int


def ks_uniform(samples: Sequence[float], low: float, high: float) -> KsResult:
    """One-sample KS test of ``samples`` against Uniform[low, high). For a continuous, fully specified
    null, rejecting at p ≤ alpha has false-reject rate alpha (scipy uses the exact distribution for
    small n)."""
    if high <= low:
        raise ValueError("need high > low")
    return _ks(samples, lambda x: np.clip((np.asarray(x) - low) / (high - low), 0.0, 1.0))


def uniform_mixture_cdf(components: Sequence[tuple[float, float, float]]) -> Callable[[np.ndarray], np.ndarray]:
    """CDF of a mixture of uniforms given as (weight, low, high); weights are normalised."""
    total = sum(w for w, _, _ in components)
    if total <= 0 or any(h <= lo for _, lo, h in components):
        raise ValueError("need positive weights and high > low in every component")

    def cdf(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return sum(w / total * np.clip((x - lo) / (h - lo), 0.0, 1.0) for w, lo, h in components)

    return cdf


def ks_uniform_mixture(samples: Sequence[float], components: Sequence[tuple[float, float, float]]) -> KsResult:
    """KS test against a mixture of uniforms, e.g. backoff gaps pooled over retry numbers (see
    :func:`full_jitter_components`). Same error rate as :func:`ks_uniform`."""
    return _ks(samples, uniform_mixture_cdf(components))


def full_jitter_components(gaps_per_retry: Mapping[int, int], base: float, cap: float) -> list[tuple[float, float, float]]:
    """Envoy's full-jitter backoff: the gap before retry n (n ≥ 1) is Uniform[0, min((2^n − 1)·base, cap)).
    ``gaps_per_retry`` maps n to how many observed gaps came before retry n (the mixture weights)."""
    return [(count, 0.0, min((2 ** n - 1) * base, cap)) for n, count in sorted(gaps_per_retry.items()) if count]


def _ks(samples: Sequence[float], cdf: Callable) -> KsResult:
    data = np.asarray(samples, dtype=float)
    if data.size == 0:
        raise ValueError("no samples")
    result = _st.kstest(data, cdf)
    return KsResult(float(result.statistic), float(result.pvalue), int(data.size))


# -- errors a check tolerates -------------------------------------------------------------------------

@dataclass(frozen=True)
class ErrorBound:
    """The non-echo answers (resets, 502s, timeouts) a check tolerates, as a stated, reported rule.

    A correct mesh on a busy machine loses a request now and then; a check that fails at the first one
    fails a correct mesh, and a check that ignores them passes a broken one. The rule: the mesh may
    give non-echo answers at a rate of up to ``rate``; the check fails when Wald's likelihood ratio of
    ``alternative`` against ``rate`` reaches ``1 / alpha``. The ratio is a non-negative martingale under
    ``rate`` (a supermartingale under any smaller rate), so by Ville's inequality a mesh whose error rate
    is ≤ ``rate`` fails this rule with probability ≤ ``alpha`` — whatever the sample size, however
    often it is looked at, whenever the check stops. Exact crossing probabilities over a check's whole
    request budget are computed in tests/harness/test_split_power.py.
    """

    rate: float = 0.001
    alternative: float = 0.01
    alpha: float = 0.0001

    def __post_init__(self):
        if not 0 < self.rate < self.alternative < 1 or not 0 < self.alpha < 1:
            raise ValueError("need 0 < rate < alternative < 1 and 0 < alpha < 1")

    @property
    def threshold(self) -> float:
        return math.log(1 / self.alpha)

    def llr(self, errors: int, n: int) -> float:
        """log LR of ``errors`` in ``n`` answers: ``alternative`` against ``rate``."""
        return (errors * math.log(self.alternative / self.rate)
                + (n - errors) * math.log((1 - self.alternative) / (1 - self.rate)))

    def exceeded(self, errors: int, n: int) -> bool:
        if not 0 <= errors <= n:
            raise ValueError(f"need 0 <= errors <= n, got {errors}/{n}")
        return self.llr(errors, n) >= self.threshold

    def errors_allowed(self, n: int) -> int:
        """The most errors in ``n`` answers that do not fail the rule."""
        step = math.log(self.alternative / self.rate) - math.log((1 - self.alternative) / (1 - self.rate))
        k = math.ceil((self.threshold - n * math.log((1 - self.alternative) / (1 - self.rate))) / step)
        while k > 0 and self.exceeded(min(k, n), n):
            k -= 1
        while k < n and not self.exceeded(k + 1, n):
            k += 1
        return min(k, n)

    def describe(self) -> str:
        return (f"non-echo answers tolerated up to {self.rate:.1%} of requests: fails when the likelihood ratio "
                f"of {self.alternative:.0%} against {self.rate:.1%} reaches {1 / self.alpha:,.0f} "
                f"(false-fail ≤ {self.alpha:.2%} at any error rate ≤ {self.rate:.1%}, Ville)")

    def verdict(self, errors: int, n: int) -> str:
        allowed = self.errors_allowed(n)
        upper = clopper_pearson(errors, n, 1 - 2 * self.alpha)[1] if n else 1.0
        return (f"{errors} non-echo answer(s) in {n} requests ({errors / n if n else 0:.3%}; "
                f"{1 - self.alpha:.2%} upper bound {upper:.3%}); {allowed} allowed at this n")


# -- distribution-free counts against order statistics ----------------------------------------------

def exceedance_sf(n: int, m: int, r: int) -> np.ndarray:
    """Of ``n`` new draws and ``m`` reference draws of one continuous distribution (exchangeable), the
    number N of new draws above the r-th largest reference draw has, for every distribution,
    P(N = k) = C(r−1+k, k)·C(m−r+n−k, n−k) / C(m+n, n). Returns P(N ≥ k) for k = 0..n+1 (exact).
    If the new draws are stochastically smaller than the reference ones, N is stochastically smaller,
    so these are upper bounds on its tail."""
    if not 1 <= r <= m:
        raise ValueError("need 1 <= r <= m")
    from scipy.special import gammaln
    k = np.arange(n + 1)
    logc = lambda a, b: gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)  # noqa: E731
    logp = logc(r - 1 + k, k) + logc(m - r + n - k, n - k) - logc(m + n, n)
    pmf = np.exp(logp)
    sf = np.concatenate([np.cumsum(pmf[::-1])[::-1], [0.0]])
    return np.minimum(sf, 1.0)


def exceedance_critical(n: int, m: int, r: int, alpha: float) -> int:
    """Smallest k with P(N ≥ k) ≤ alpha for the count of :func:`exceedance_sf`."""
    sf = exceedance_sf(n, m, r)
    return int(np.argmax(sf <= alpha))
