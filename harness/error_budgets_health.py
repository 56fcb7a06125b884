"""False-fail rates of the active health checks' timing rules (issue 14), by seeded, vectorised
simulation of what the checks measure, under the noise models of :mod:`harness.error_budgets`.

The checks time, on one clock, the flip of an endpoint's health path (read by the harness *after* the
control call returned, so the echo flipped ``d`` earlier: the call's way back, one overhead draw) and
the endpoint's arrivals in the echo's journal. Simulated per run:

- the prober (Envoy's schedule: the next probe ``interval`` after the previous result, every timer
  ``wakeup`` late in the wakeup model) at a random phase; each probe's round trip is one overhead draw,
  a probe slower than ``timeout`` is a failure; a probe started after the echo's flip sees the new state;
- removal: out after ``unhealthy_threshold`` failing probes; the last request picked for it comes at a
  random point of its round-robin turn (every ``INSTANCES × PERIOD_S``) before that, and reaches the echo
  one overhead draw (the request's way) later. The check's rule: that arrival ≤ flip + ``removal_bound_s``;
- return: back after ``healthy_threshold`` consecutive passing probes started after the echo's flip back;
  the first request for it comes at its next round-robin turn, one overhead draw later. Rules: within
  ``return_bound_s`` of the control call's return (the flip one way-back draw earlier) and not before
  ``earliest_return_s`` of the call's start (the flip one way-there draw later).

The decisions applied are the checks' own (:func:`suites.health._support.removal_late_batch`,
:func:`~suites.health._support.return_fails_batch`).
"""

from __future__ import annotations

import numpy as np

from harness.error_budgets import BACKOFF_MODELS, Model
from meshscenario import HealthCheck
from suites.health._support import (INSTANCES, PERIOD_S, removal_bound_s, removal_late_batch, return_bound_s,
                                    return_fails_batch, earliest_return_s)

MODELS = BACKOFF_MODELS  # quiet, loaded, timer, stall, wakeup (overheads in seconds)


def _transition(model: Model, rng: np.random.Generator, runs: int, hc: HealthCheck, needed: int,
                passing: bool) -> np.ndarray:
    """Time from the echo's flip (t = 0) to the result of the ``needed``-th consecutive probe started
    after it that sees the new state (passing: also within ``timeout``)."""
    phase = rng.uniform(0.0, hc.interval + 0.005, runs)
    start = -phase  # the last probe started before the flip
    done = np.zeros(runs, np.int64)
    out = np.full(runs, np.nan)
    live = np.arange(runs)
    for _ in range(200):
        rtt = model.overhead(rng, (live.size,))
        ok = start[live] >= 0.0
        if passing:
            good = ok & (rtt <= hc.timeout)
            done[live] = np.where(good, done[live] + 1, np.where(ok, 0, done[live]))
        else:
            done[live] += ok
        result = start[live] + np.minimum(rtt, hc.timeout)
        finished = done[live] >= needed
        out[live[finished]] = result[finished]
        wake = model.timer(np.full(live.size, hc.interval), rng) - hc.interval  # lateness only
        start[live] = result + hc.interval + wake
        live = live[~finished]
        if not live.size:
            break
    return out


def simulate_removal(model: Model, runs: int, seed: int, hc: HealthCheck) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    d = model.overhead(rng, (runs,)) / 2  # the control call's way back
    out = _transition(model, rng, runs, hc, hc.unhealthy_threshold, passing=False)
    cycle = INSTANCES * PERIOD_S
    last_pick = out - rng.uniform(0.0, cycle, runs)
    arrival = last_pick + model.overhead(rng, (runs,))
    late = removal_late_batch(arrival - d, removal_bound_s(hc))
    return {"late": int(late.sum()), "any": int(late.sum()), "runs": runs}


def simulate_return(model: Model, runs: int, seed: int, hc: HealthCheck, *, needed: int | None = None,
                    early_from_return: bool = False) -> dict[str, int]:
    """``early_from_return``: judge the early rule from the control call's return, as the check did before
    issue 14's third pass (a stall of the call's way back then makes a return look early)."""
    rng = np.random.default_rng(seed)
    d = model.overhead(rng, (runs,)) / 2
    back = _transition(model, rng, runs, hc, needed or hc.healthy_threshold, passing=True)
    first = back + rng.uniform(0.0, INSTANCES * PERIOD_S, runs) + model.overhead(rng, (runs,))
    way_there = model.overhead(rng, (runs,)) / 2  # the control call's way to the echo (drawn last: the
    # draws before it, and so the late rule's numbers, are those of the earlier simulation)
    fails = return_fails_batch(first - d, return_bound_s(hc), earliest_return_s(hc),
                               None if early_from_return else first + way_there)
    totals = {k: int(v.sum()) for k, v in fails.items()}
    totals["any"] = int(np.logical_or.reduce(list(fails.values())).sum())
    totals["runs"] = runs
    return totals
