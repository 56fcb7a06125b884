"""The false-fail rates and power of the checks' pure decisions: exact computations and seeded,
vectorised simulations (no mesh). Shared by tests/harness/test_split_power.py,
tests/harness/test_resilience_power.py and bench/error_budgets.py, so the guard tests and the published
numbers come from the same code.

- Splits with two backends: :func:`split_exact` — the exact distribution of the sequential test's
  outcome and request count, by dynamic programming over the canary's count after every batch of 32
  (the SPRTs' sticky states carried along), against any true share. Three backends:
  :func:`split_simulate` — the same SPRTs on counts, vectorised over runs.
- The errors rule: :func:`errors_rule_crossing` — the exact probability that the rule ever fails within
  a request budget (looks after every batch), at a given true error rate.
- Backoff and fault delay: noise models of the measured times (:data:`BACKOFF_MODELS`,
  :data:`DELAY_MODELS`) and simulators that feed the checks' own batch decisions
  (``suites.resilience._decisions.backoff_fails_batch`` / ``delay_fails_batch``).

Noise models (seconds). The overhead of a gap (backoff) or of the way to the echo (delay):
``quiet`` 1 ms + Gamma(4, 0.15 ms); ``loaded`` 1 ms + Exponential(4 ms) (the project's own loaded model);
``timer`` loaded, and every timer (backoff, injected delay) rounds up to a whole millisecond;
``stall`` loaded, and 1% of gaps / requests meet a stall of Exponential(mean 20 ms) on top;
``wakeup`` (backoff) loaded, and every backoff timer fires Exponential(mean 6 ms, as seen live) late — a process
woken by a timer waits for a CPU, which the control route's immediate retries never do. For the
delay check also ``late0.1``, ``late1``, ``late2``: loaded, and 0.1% / 1% / 2% of requests (delayed or
not, either route) meet a stall of 195 ms + Exponential(50 ms) on the way to the echo — the case the
old 195 ms latency threshold could not tell from an injected delay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy import stats as _st

from harness.stats import ErrorBound

Noise = Callable[[np.random.Generator, tuple], np.ndarray]


def _quiet(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return 0.001 + rng.gamma(4.0, 0.15e-3, shape)


def _loaded(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return 0.001 + rng.exponential(0.004, shape)


def _stalled(share: float, offset: float, mean: float) -> Noise:
    def noise(rng: np.random.Generator, shape: tuple) -> np.ndarray:
        stall = np.where(rng.random(shape) < share, offset + rng.exponential(mean, shape), 0.0)
        return _loaded(rng, shape) + stall
    return noise


@dataclass(frozen=True)
class Model:
    name: str
    overhead: Noise
    whole_ms_timers: bool = False
    wakeup_mean_s: float = 0.0  # a timer's process waits Exponential(mean) for a CPU (the control never does)

    def timer(self, wait: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        out = np.ceil(wait * 1e3 - 1e-9) / 1e3 if self.whole_ms_timers else wait
        if self.wakeup_mean_s and rng is not None:
            out = out + rng.exponential(self.wakeup_mean_s, np.shape(wait))
        return out


BACKOFF_MODELS = {m.name: m for m in (
    Model("quiet", _quiet), Model("loaded", _loaded), Model("timer", _loaded, whole_ms_timers=True),
    Model("stall", _stalled(0.01, 0.0, 0.020)), Model("wakeup", _loaded, wakeup_mean_s=0.006),
)}
DELAY_MODELS = {m.name: m for m in (
    Model("quiet", _quiet), Model("loaded", _loaded), Model("timer", _loaded, whole_ms_timers=True),
    Model("stall", _stalled(0.01, 0.0, 0.020)), Model("late0.1", _stalled(0.001, 0.195, 0.050)),
    Model("late1", _stalled(0.01, 0.195, 0.050)), Model("late2", _stalled(0.02, 0.195, 0.050)),
)}


# -- splits --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SplitOutcome:
    fail: float  # P(ACCEPT_H1)
    passed: float  # P(ACCEPT_H0)
    undecided: float
    unresolved: float  # mass still live when the computation stopped (added to no outcome)
    requests_median: float
    requests_p90: float
    requests_mean: float
    requests_pmf: tuple = ()  # ((n, probability that the test stopped after n requests), ...)


def _sprt_params(test) -> list[tuple[str, float, float, float, float]]:
    """(backend, log step per success, log step per failure, upper, lower) of each SPRT of ``test``."""
    return [(name, s._win, s._loss, s.upper, s.lower) for name, s in test._sprts]


def split_exact(test_factory: Callable, true_shares: Mapping[str, float], *, batch: int = 32,
                tail: float = 1e-13) -> SplitOutcome:
    """Exact outcome of a two-backend :class:`harness.stats.SequentialSplitTest` (made by
    ``test_factory()``) fed with batches of ``batch`` requests from ``true_shares``.

    The state after t batches is the second backend's count k and which SPRTs have accepted H0 (sticky);
    a batch adds Binomial(batch, p) to k. An SPRT on backend 1 is one on backend 2 with k → n − k, so
    every SPRT's log-likelihood ratio is a function of (n, k)."""
    test = test_factory()
    names = list(test.shares)
    if len(names) != 2:
        raise ValueError("split_exact handles two backends; use split_simulate")
    second = names[1]
    p = true_shares[second] / sum(true_shares.values())
    params = _sprt_params(test)
    n_sprt = len(params)
    kernel = _st.binom.pmf(np.arange(batch + 1), batch, p)
    # live mass: dict state(tuple of accepted-H0 flags) -> (offset k0, array over k0..)
    live: dict[tuple, tuple[int, np.ndarray]] = {tuple([False] * n_sprt): (0, np.array([1.0]))}
    fail = passed = undecided = 0.0
    n = 0
    used: list[tuple[int, float]] = []
    while live and n < test.max_samples:
        step = min(batch, test.max_samples - n)
        k_kernel = kernel if step == batch else _st.binom.pmf(np.arange(step + 1), step, p)
        n += step
        nxt: dict[tuple, list] = {}
        stopped = 0.0
        for state, (k0, mass) in live.items():
            new = np.convolve(mass, k_kernel)
            k = np.arange(k0, k0 + new.size)
            failed = np.zeros(new.size, bool)
            accepted = [np.full(new.size, bool(a)) for a in state]
            for i, (name, win, loss, upper, lower) in enumerate(params):
                if state[i]:
                    continue
                succ = k if name == second else n - k
                llr = succ * win + (n - succ) * loss
                failed |= llr >= upper
                accepted[i] = llr <= lower
            fail += new[failed].sum()
            stopped += new[failed].sum()
            ok = ~failed
            acc = np.stack(accepted)  # (n_sprt, K)
            all_h0 = ok & acc.all(axis=0)
            passed += new[all_h0].sum()
            stopped += new[all_h0].sum()
            rest = ok & ~all_h0
            if not rest.any():
                continue
            codes = acc[:, rest].T
            for code in {tuple(map(bool, c)) for c in codes}:
                sel = rest.copy()
                sel[rest] = (codes == np.array(code)).all(axis=1)
                idx = np.nonzero(sel)[0]
                arr = np.zeros(idx[-1] - idx[0] + 1)
                arr[idx - idx[0]] = new[idx]
                nxt.setdefault(code, []).append((k0 + idx[0], arr))
        used.append((n, stopped))
        live = {}
        for code, parts in nxt.items():
            lo = min(a for a, _ in parts)
            hi = max(a + arr.size for a, arr in parts)
            merged = np.zeros(hi - lo)
            for a, arr in parts:
                merged[a - lo:a - lo + arr.size] += arr
            nz = np.nonzero(merged > 1e-300)[0]
            if nz.size:
                live[code] = (lo + nz[0], merged[nz[0]:nz[-1] + 1])
        remaining = sum(arr.sum() for _, arr in live.values())
        if remaining < tail:
            break
    remaining = sum(arr.sum() for _, arr in live.values())
    if n >= test.max_samples:
        undecided, remaining = remaining, 0.0
        used.append((n, undecided))
    ns = np.array([u[0] for u in used], float)
    ws = np.array([u[1] for u in used])
    cdf = np.cumsum(ws) / ws.sum()
    return SplitOutcome(float(fail), float(passed), float(undecided), float(remaining),
                        float(ns[np.searchsorted(cdf, 0.5)]), float(ns[np.searchsorted(cdf, 0.9)]),
                        float((ns * ws).sum() / ws.sum()), tuple(zip(ns.tolist(), ws.tolist())))


def split_simulate(test_factory: Callable, true_shares: Mapping[str, float], runs: int, seed: int, *,
                   batch: int = 32, history: bool = False):
    """Seeded simulation of ``runs`` sequential split tests at once (any number of backends): the SPRTs
    of ``test_factory()`` on multinomial batches. Returns (decisions array of "fail"/"pass"/"undecided",
    requests used, and with ``history`` the per-run list of batch counts, to replay into the real class)."""
    test = test_factory()
    names = list(test.shares)
    p = np.array([true_shares[nm] for nm in names], float)
    p /= p.sum()
    params = _sprt_params(test)
    col = {nm: i for i, nm in enumerate(names)}
    rng = np.random.default_rng(seed)
    counts = np.zeros((runs, len(names)), np.int64)
    accepted = np.zeros((runs, len(params)), bool)
    decision = np.full(runs, "", dtype=object)
    used = np.zeros(runs, np.int64)
    active = np.arange(runs)
    hist: list[list[np.ndarray]] | None = [[] for _ in range(runs)] if history else None
    n = 0
    while active.size:
        step = min(batch, test.max_samples - n)
        n += step
        draw = rng.multinomial(step, p, size=active.size)
        if hist is not None:
            for j, r in enumerate(active):
                hist[r].append(draw[j])
        counts[active] += draw
        failed = np.zeros(active.size, bool)
        acc = accepted[active]
        for i, (name, win, loss, upper, lower) in enumerate(params):
            live = ~acc[:, i]
            succ = counts[active, col[name]]
            llr = succ * win + (n - succ) * loss
            failed |= live & (llr >= upper)
            acc[:, i] |= live & (llr <= lower)
        accepted[active] = acc
        done_pass = ~failed & acc.all(axis=1)
        out_of_budget = ~failed & ~done_pass & (n >= test.max_samples)
        decision[active[failed]] = "fail"
        decision[active[done_pass]] = "pass"
        decision[active[out_of_budget]] = "undecided"
        finished = failed | done_pass | out_of_budget
        used[active[finished]] = n
        active = active[~finished]
    return (decision, used, hist) if history else (decision, used)


def errors_rule_crossing(bound: ErrorBound, rate: float, max_requests: int, batch: int = 32) -> float:
    """Exact P(the errors rule ever fails within ``max_requests``) when each request errs with
    probability ``rate``, judged after every batch (an upper bound for any check that stops earlier)."""
    kernel = _st.binom.pmf(np.arange(batch + 1), batch, rate)
    mass = np.array([1.0])
    crossed = 0.0
    n = 0
    while n < max_requests:
        step = min(batch, max_requests - n)
        k_kernel = kernel if step == batch else _st.binom.pmf(np.arange(step + 1), step, rate)
        n += step
        mass = np.convolve(mass, k_kernel)
        allowed = bound.errors_allowed(n)
        if mass.size > allowed + 1:
            crossed += mass[allowed + 1:].sum()
            mass = mass[:allowed + 1]
        mass = mass[:np.max(np.nonzero(mass > 1e-300)[0]) + 1] if (mass > 1e-300).any() else mass
    return float(crossed)


# -- backoff -------------------------------------------------------------------------------------------

BACKOFF_MODES = ("jitter", "constant", "no_jitter", "half_range")


def simulate_backoff(model: Model, mode: str, runs: int, seed: int, *, base: float = 0.025, cap: float = 0.25,
                     gaps_per_retry: int = 150, control_gaps: int = 300, retries: Sequence[int] = (1, 2),
                     chunk: int = 5_000) -> dict[str, int]:
    """Runs the check's own batch decision on ``runs`` simulated samples; returns how many runs each rule
    failed and ``"any"`` (the check's verdict, errors rule aside)."""
    from suites.resilience._decisions import backoff_fails_batch, full_jitter_bound

    rng = np.random.default_rng(seed)
    totals: dict[str, int] = {}
    done = 0
    while done < runs:
        r = min(chunk, runs - done)
        gaps = {}
        for n in retries:
            bound = full_jitter_bound(n, base, cap)
            shape = (r, gaps_per_retry)
            wait = {"jitter": lambda: rng.uniform(0, bound, shape), "constant": lambda: np.full(shape, base),
                    "no_jitter": lambda: np.full(shape, bound),
                    "half_range": lambda: rng.uniform(0, bound / 2, shape)}[mode]()
            gaps[n] = model.timer(wait, rng) + model.overhead(rng, shape)
        control = model.overhead(rng, (r, control_gaps))
        fails = backoff_fails_batch(gaps, control, base=base, cap=cap)
        _tally(totals, fails, r)
        done += r
    totals["runs"] = runs
    return totals


def _tally(totals: dict[str, int], fails: dict[str, np.ndarray], runs: int) -> None:
    """Add a batch's failures to ``totals``: per rule, and ``any`` (a run failed by at least one rule)."""
    any_ = np.zeros(runs, bool)
    for name, f in fails.items():
        totals[name] = totals.get(name, 0) + int(f.sum())
        any_ |= f
    totals["any"] = totals.get("any", 0) + int(any_.sum())


# -- fault delay ---------------------------------------------------------------------------------------

def simulate_delay(model: Model, runs: int, seed: int, *, share: float = 0.3, declared: float = 0.3,
                   delay_s: float = 0.2, true_delay_s: float | None = None, n: int | None = None,
                   m: int | None = None, chunk: int = 500) -> dict[str, int]:
    """Runs the delay check's own batch decision on ``runs`` simulated samples: each fault-route request
    is delayed with probability ``share`` by ``true_delay_s`` (the model's timer applied), every request
    of either route gets the model's overhead on its way to the echo."""
    from suites.resilience._decisions import delay_fails_batch, delay_sample_size

    n = n or delay_sample_size(declared)
    m = m or n
    true_delay_s = delay_s if true_delay_s is None else true_delay_s
    rng = np.random.default_rng(seed)
    totals: dict[str, int] = {}
    done = 0
    while done < runs:
        r = min(chunk, runs - done)
        delayed = rng.random((r, n)) < share
        latency = np.where(delayed, model.timer(np.full((r, n), true_delay_s)), 0.0) + model.overhead(rng, (r, n))
        control = model.overhead(rng, (r, m))
        fails = delay_fails_batch(latency, control, p0=declared, delay_s=delay_s)
        _tally(totals, fails, r)
        done += r
    totals["runs"] = runs
    return totals


def delay_share_exact(n: int, m: int, p0: float, true_share: float, s: float) -> float:
    """Exact P(a delay share rule fails) when a request is delayed with probability ``true_share`` and an
    undelayed one (either route) is late enough to look delayed with probability ``s``."""
    from suites.resilience._decisions import delay_criticals

    k_low, k_high, _ = delay_criticals(n, m, p0)
    pi = true_share + (1 - true_share) * s
    py = _st.binom.pmf(np.arange(m + 1), m, s)
    low = _st.binom.cdf(k_low, n, pi)
    high = _st.binom.sf(k_high - 1, n, pi)  # by y
    return float(low + (py * high).sum())


def guard_threshold(runs: int, claim: float) -> int:
    """The most failures in ``runs`` seeded runs a guard test allows for a claimed rate: halfway between
    the claim's and twice the claim's expected count, so a true rate at the claim passes and a true
    rate of twice the claim fails, each with the probabilities :func:`guard_errors` gives."""
    return int(math.floor(1.5 * claim * runs))


def guard_errors(runs: int, claim: float) -> tuple[float, float]:
    """(P(a guard fails | true rate = claim), P(a guard passes | true rate = 2 × claim))."""
    t = guard_threshold(runs, claim)
    return float(_st.binom.sf(t, runs, claim)), float(_st.binom.cdf(t, runs, 2 * claim))
