"""False-fail rates and power of the breaking suite's checks (issue 14), by seeded event simulation of
what the checks measure, judged by the checks' own pure decisions (``suites.breaking._support``), under
the noise models of :mod:`harness.error_budgets`.

Breaker sweeps (:func:`simulate_sweep`): the check's client threads, schedule and steps, and Envoy's
admission — ``connections`` requests at the upstream, up to ``pending`` waiting FIFO (None: no limit),
the rest answered 503 with the overload marker at once (``pending`` 0: MeshCircuitBreakerMaxRequests'
``max_requests``, which counts a request from admission until its answer is back). Every leg of a
request (client → sidecar, sidecar → echo, echo → sidecar, sidecar → client) takes one overhead draw of
the model; the echo's hold is the model's timer (whole ms, or late in the wakeup model). The simulation
returns :class:`~suites.breaking._support.Step` records and journal arrivals (``t_ns``, ``in_flight``,
the request's id header) exactly as the live check builds them, so :func:`judge_sweep` runs the same
:func:`~suites.breaking._support.judge_admission` and
:func:`~suites.breaking._support.judge_pending_wait`.

Outlier ejection (:func:`simulate_ejection`): the check's sequential request stream (one every
``period_s``, a late answer sends the next at once), round robin over three endpoints skipping ejected
ones, the failing endpoint ejected when its ``consecutive_5xx``-th 5xx is back at the sidecar and
un-ejected at the first interval tick (every ``interval``, each tick late by the model's timer) at
least ``base × n`` later; judged by :func:`~suites.breaking._support.judge_ejections`.

A defect can be simulated for power: ``pending`` one above the check's limit (no defect of
meshproxy/defects.py changes it alone: ``breaker_limit_delta`` moves every limit and is caught exactly).
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Sequence

import numpy as np

from harness.error_budgets import Model
from suites.breaking._support import (REQUEST_HEADER, Answer, Step, judge_admission, judge_ejections,
                                      judge_pending_wait, sweep_rows)

NS = 1_000_000_000
_LEVEL_GAP_NS = 100 * NS  # steps of one simulated sweep are this far apart on the simulated clock


class _Draws:
    """The model's overheads (seconds), drawn in blocks."""

    def __init__(self, model: Model, rng: np.random.Generator, block: int = 1024):
        self.model, self.rng, self.block = model, rng, block
        self.buf: list[float] = []

    def __call__(self) -> float:
        if not self.buf:
            self.buf = self.model.overhead(self.rng, (self.block,)).tolist()
        return self.buf.pop()


def simulate_sweep(model: Model, rng: np.random.Generator, *, connections: int, pending: int | None,
                   levels: Sequence[int], hold_s: float = 0.2, step_s: float = 1.0,
                   period_s: float = 0.2) -> tuple[list[Step], list[dict]]:
    """One simulated sweep: its steps (answers with send and answer times) and the echo's arrivals."""
    leg = _Draws(model, rng)
    holds = model.timer(np.full(4096, hold_s), rng).tolist()
    steps: list[Step] = []
    arrivals: list[dict] = []
    for li, level in enumerate(levels):
        base = li * _LEVEL_GAP_NS
        events: list = []  # (time s, seq, kind, thread, request index, sent s)
        seq = 0
        for j in range(level):
            heapq.heappush(events, (j * period_s / level, seq, 0, j, 0, 0.0))
            seq += 1
        busy, echo_in = 0, 0
        queue: deque = deque()
        next_send = [j * period_s / level for j in range(level)]
        count = [0] * level
        answers: list[Answer] = []
        last = 0.0
        while events:
            t, _, kind, j, i, sent = heapq.heappop(events)
            if kind == 0:  # the thread sends (if its step is not over)
                if t >= step_s:
                    continue
                i = count[j]
                count[j] += 1
                heapq.heappush(events, (t + leg(), seq, 1, j, i, t))
            elif kind == 1:  # at the sidecar: admitted, queued or rejected
                if busy < connections:
                    busy += 1
                    heapq.heappush(events, (t + leg(), seq, 5, j, i, sent))
                elif pending is None or len(queue) < pending:
                    queue.append((j, i, sent))
                else:
                    heapq.heappush(events, (t + leg(), seq, 3, j, i, sent))  # 503 + marker at once
            elif kind == 5:  # at the echo: journalled, held
                echo_in += 1
                arrivals.append({"t_ns": base + int(t * NS), "in_flight": echo_in,
                                 "headers": {REQUEST_HEADER: f"{level}.{j}.{i}"}})
                heapq.heappush(events, (t + holds.pop(), seq, 6, j, i, sent))
            elif kind == 6:  # the echo answers
                echo_in -= 1
                heapq.heappush(events, (t + leg(), seq, 2, j, i, sent))
            elif kind == 2:  # the answer is back at the sidecar: the connection frees
                busy -= 1
                heapq.heappush(events, (t + leg(), seq, 4, j, i, sent))
                if queue:
                    qj, qi, qsent = queue.popleft()
                    busy += 1
                    heapq.heappush(events, (t + leg(), seq, 5, qj, qi, qsent))
            else:  # the answer is at the client: 3 a rejection, 4 the echo's 200
                ok = kind == 4
                answers.append(Answer(level, base + int(sent * NS), base + int(t * NS), 200 if ok else 503,
                                      not ok, ok, "k", f"{level}.{j}.{i}"))
                last = t
                next_send[j] += period_s
                heapq.heappush(events, (max(next_send[j], t), seq, 0, j, 0, 0.0))
            seq += 1
        steps.append(Step(level, base, base + int(max(last, step_s) * NS), answers))
    return steps, arrivals


RULES = {  # a problem's wording -> the rule that raised it
    "let more through": "cap", "lower than configured": "cap_reached", "nothing may be rejected": "no_rejection",
    "must wait (pending)": "no_rejection", "queued instead": "rejects", "were slow": "overflow_median",
    "neither the echo": "wrong_answer", "errors rule": "errors", "waited longer": "pending_wait",
    "no arrival": "unmatched",
}


def _rules_of(problems: Sequence[str]) -> set[str]:
    return {rule for p in problems for text, rule in RULES.items() if text in p} | (
        {"other"} if any(not any(text in p for text in RULES) for p in problems) else set())


def judge_sweep(steps, arrivals, *, cap: int, reject_above: int | None, hold_ms: float, overload_p50_ms: float,
                wait: dict | None = None) -> set[str]:
    """The rules the check's decisions fail on a (simulated) sweep; ``wait``: the keyword arguments of
    judge_pending_wait (the pending check only)."""
    rows = sweep_rows(steps, arrivals, hold_ms)
    problems = judge_admission(rows, steps, cap=cap, cap_name="limit", reject_above=reject_above, hold_ms=hold_ms,
                               overload_p50_bound_ms=overload_p50_ms)
    if wait is not None:
        problems += judge_pending_wait(steps, arrivals, **wait)
    return _rules_of(problems)


def simulate_breaker(model: Model, runs: int, seed: int, *, connections: int, pending: int | None,
                     levels: Sequence[int], cap: int, reject_above: int | None, hold_ms: float = 200.0,
                     overload_p50_ms: float = 100.0, wait: dict | None = None) -> dict[str, int]:
    """Runs of a breaker check on a correct (or, with another ``pending``, a broken) mesh: how many runs
    each rule failed, ``any`` (the check failed), ``runs``."""
    rng = np.random.default_rng(seed)
    totals: dict[str, int] = {"any": 0, "runs": runs}
    for _ in range(runs):
        steps, arrivals = simulate_sweep(model, rng, connections=connections, pending=pending, levels=levels,
                                         hold_s=hold_ms / 1e3)
        failed = judge_sweep(steps, arrivals, cap=cap, reject_above=reject_above, hold_ms=hold_ms,
                             overload_p50_ms=overload_p50_ms, wait=wait)
        for rule in failed:
            totals[rule] = totals.get(rule, 0) + 1
        totals["any"] += bool(failed)
    return totals


def waits_simulated(model: Model, runs: int, seed: int, *, connections: int, pending: int | None,
                    levels: Sequence[int], hold_ms: float = 200.0) -> list[np.ndarray]:
    """Per run, the accepted requests' waits (ms, send → echo arrival): what judge_pending_wait counts."""
    from suites.breaking._support import waits_ms
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(runs):
        steps, arrivals = simulate_sweep(model, rng, connections=connections, pending=pending, levels=levels,
                                         hold_s=hold_ms / 1e3)
        out.append(np.asarray(waits_ms(steps, arrivals)[0]))
    return out


# -- outlier ejection ----------------------------------------------------------------------------------

def simulate_ejection(model: Model, rng: np.random.Generator, *, consecutive_5xx: int = 3, base_s: float = 0.6,
                      interval_s: float = 0.3, period_s: float = 0.005, ejections_wanted: int = 2,
                      max_s: float = 5.0, eject_after: int | None = None) -> tuple[list[int], int]:
    """One simulated MeshOutlierEjection run: the failing endpoint's arrival times (ns) and the check's end
    (the last send). ``eject_after``: the count at which the mesh ejects (default ``consecutive_5xx``)."""
    leg = _Draws(model, rng)
    eject_after = eject_after or consecutive_5xx
    phase = float(rng.uniform(0.0, interval_s))
    tick_late = model.timer(np.full(64, interval_s), rng) - interval_s
    ticks, k, t_tick = [], 0, phase
    while t_tick < max_s + 2.0:  # Envoy's interval timer: re-armed when it fires
        ticks.append(t_tick)
        t_tick += interval_s + float(tick_late[k % 64])
        k += 1
    bad_times: list[int] = []
    ejected_until_tick: float | None = None  # set while ejected: when its time is up (un-ejected at a tick)
    back_at: float | None = None
    consecutive, n_ejections, rr = 0, 0, 0
    t = next_send = 0.0
    want = 2 * consecutive_5xx + 1
    last_send = 0.0
    while t < max_s and len(bad_times) < want:
        t = max(t, next_send)
        last_send = t
        at_sidecar = t + leg()
        if back_at is not None and at_sidecar >= back_at:
            back_at, ejected_until_tick = None, None
        hosts = [1, 2] if ejected_until_tick is not None else [0, 1, 2]
        host = hosts[rr % len(hosts)]
        rr += 1
        at_echo = at_sidecar + leg()
        back = at_echo + leg()  # the answer at the sidecar
        if host == 0:
            bad_times.append(int(at_echo * NS))
            consecutive += 1
            if consecutive >= eject_after and ejected_until_tick is None:
                n_ejections += 1
                consecutive = 0
                up = back + base_s * n_ejections
                ejected_until_tick = up
                back_at = next((x for x in ticks if x >= up), up)
        t = back + leg()  # the answer at the client
        next_send = max(next_send + period_s, t - period_s)
    return bad_times, int(last_send * NS)


def simulate_outlier(model: Model, runs: int, seed: int, *, tolerance_s: float, consecutive_5xx: int = 3,
                     base_s: float = 0.6, interval_s: float = 0.3, eject_after: int | None = None) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    totals = {"any": 0, "runs": runs}
    for _ in range(runs):
        times, end = simulate_ejection(model, rng, consecutive_5xx=consecutive_5xx, base_s=base_s,
                                       interval_s=interval_s, eject_after=eject_after)
        problems = judge_ejections(times, end, consecutive_5xx=consecutive_5xx, base_s=base_s, interval_s=interval_s,
                                   max_ejection_s=300.0, tolerance_s=tolerance_s)
        for p in problems:
            rule = ("count" if "consecutive 5xx" in p else "short" if "<" in p else "long" if ">" in p
                    else "never_ended" if "never ended" in p else "other")
            totals[rule] = totals.get(rule, 0) + 1
        totals["any"] += bool(problems)
    return totals
