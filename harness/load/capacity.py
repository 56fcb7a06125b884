"""The meter's own capacity: the highest open-loop rate at which it still sends on time.

An open-loop meter that cannot keep its schedule charges its own lateness to the server: every
request's clock starts at its intended send time. So before a check blames a mesh for the latency at
some rate (MeshThroughput), it asks how fast the meter itself can go against the same target:

    from harness.load.capacity import meter_capacity
    cap = meter_capacity(Target("127.9.3.60:8080"), lag_p99_limit_us=200, processes=1)
    cap.rate, cap.reason, cap.rows  # e.g. 6000.0, StopReason.LAG_LIMIT, [Row(rate=1000.0, ...), ...]

The search is bounded in steps and wall time: doubling from the lowest rate until a step fails, then
bisection between the highest passing and the lowest failing rate until they are within
``resolution`` of each other. A step passes when the meter's send lag p99 (actual − intended send
time, the meter's own lateness) is within the limit and no request failed. With ``repeats`` = k > 1 a
step is k runs one after the other: the run with the median send lag p99 decides the lag (one pause of
the whole machine in a minority of the runs does not end the search), every run's failed requests
count. With ``processes`` > 1,
the step's rate is split over that many meter processes side by side and their results are merged
(``LoadResult.merge``: send lag is the worst process's). Every rate here is the total the target
receives.

``decide`` is the whole search as a pure function of the rows measured so far; ``meter_capacity``
and ``meter_capacity_async`` only measure what it asks for.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from harness.load.openloop import ClosedLoop, LoadResult, OpenLoop, Target, measure, measure_async

__all__ = ["Capacity", "Row", "SearchPlan", "Stop", "StopReason", "TargetNotAnswering", "decide",
           "meter_capacity", "meter_capacity_async"]

DEFAULT_RATES = (1000.0, 32000.0)
DEFAULT_STEP_S = 0.5
DEFAULT_DEADLINE_S = 10.0
# what one step costs beyond its schedule before any step has been timed: interpreter start (~0.3 s
# here), warm connections, drain, JSON
_FIRST_STEP_OVERHEAD_S = 0.6
# a step's responses still missing this long after its schedule count as errors: a backed-up target
# stops the search (reason "errors") instead of holding it for the meter's default 10 s drain
_STEP_DRAIN_S = 1.0
# connections opened before t0, so no connect is timed at the rates this search reaches
_WARM_CONNECTIONS = 16


class StopReason(str, enum.Enum):
    LAG_LIMIT = "lag limit"  # the lowest failing rate failed on send lag: the meter's own limit
    ERRORS = "errors"  # the lowest failing rate had failed requests: the target's limit, not the meter's
    DEADLINE = "deadline"  # no time left for another step; the rate is the best seen so far
    TOP_OF_RANGE = "top of range"  # the highest rate asked for passed
    STEPS = "steps"  # max_steps measured before the bisection converged


class TargetNotAnswering(RuntimeError):
    """The target gave no answer (other than 5xx) to a probe, so no rate can be measured against it."""


@dataclass(frozen=True)
class SearchPlan:
    """What ``decide`` searches: rates in [lowest, highest] (total req/s), a step fails when its send
    lag p99 exceeds ``lag_p99_limit_us`` or more than ``error_limit`` of its requests failed."""

    lowest: float = DEFAULT_RATES[0]
    highest: float = DEFAULT_RATES[1]
    lag_p99_limit_us: float = 200.0
    resolution: float = 0.1  # bisection stops when lowest fail − best pass ≤ resolution × best pass
    max_steps: int = 12
    error_limit: float = 0.0  # fraction of a step's requests allowed to fail

    def __post_init__(self):
        if not 0 < self.lowest <= self.highest:
            raise ValueError(f"rates: need 0 < lowest ≤ highest, got ({self.lowest}, {self.highest})")
        if self.lag_p99_limit_us <= 0:
            raise ValueError(f"lag_p99_limit_us must be above 0, got {self.lag_p99_limit_us}")
        if not 0 < self.resolution < 1:
            raise ValueError(f"resolution must be in (0, 1), got {self.resolution}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")
        if not 0 <= self.error_limit < 1:
            raise ValueError(f"error_limit must be in [0, 1), got {self.error_limit}")


@dataclass(frozen=True)
class Row:
    """One step of the search: what was asked, what the meter measured of itself, the verdict."""

    rate: float
    send_lag_p50_us: int
    send_lag_p99_us: int
    achieved_rate: float
    sent: int
    errors: int
    connections_opened: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0  # the step's wall time, process start included
    failed: StopReason | None = None  # None: within limits; else LAG_LIMIT or ERRORS
    repeats_send_lag_p99_us: tuple[int, ...] = ()  # every run's, when the step was several runs

    @classmethod
    def of(cls, rate: float, result: LoadResult | Sequence[LoadResult], plan: SearchPlan,
           wall_s: float = 0.0) -> "Row":
        """The row of one step: one run, or several (the median send lag p99 decides the lag; the
        errors are every run's; sent, CPU and connections are totals, the rest the median run's)."""
        runs = [result] if isinstance(result, LoadResult) else list(result)
        if not runs:
            raise ValueError("a step needs at least one run")
        median = sorted(runs, key=lambda r: r.send_lag_p99_us)[(len(runs) - 1) // 2]
        row = cls(rate=rate, send_lag_p50_us=median.send_lag_p50_us, send_lag_p99_us=median.send_lag_p99_us,
                  achieved_rate=round(median.achieved_rate, 1), sent=sum(r.sent for r in runs),
                  errors=sum(r.errors for r in runs),
                  connections_opened=sum(r.connections_opened for r in runs),
                  cpu_s=round(sum(r.cpu_s for r in runs), 4), wall_s=round(wall_s, 3),
                  repeats_send_lag_p99_us=tuple(r.send_lag_p99_us for r in runs) if len(runs) > 1 else ())
        return cls(**{**asdict(row), "failed": verdict(row, plan)})


def verdict(row: Row, plan: SearchPlan) -> StopReason | None:
    """Why ``row`` fails ``plan``, or None. Errors come first: a target that fails requests says
    nothing about the meter's lag."""
    if row.sent == 0 or row.errors > plan.error_limit * row.sent:
        return StopReason.ERRORS
    if row.send_lag_p99_us > plan.lag_p99_limit_us:
        return StopReason.LAG_LIMIT
    return None


@dataclass(frozen=True)
class Stop:
    """The search is over: ``rate`` is the highest passing rate (None when even the lowest failed)."""

    reason: StopReason
    rate: float | None


def decide(rows: Sequence[Row], plan: SearchPlan, *, time_left_s: float = math.inf,
           step_cost_s: float = 0.0) -> float | Stop:
    """The next rate to measure, or why to stop. Pure: the rows measured so far (their ``failed``
    set by ``verdict``), the plan, and whether another step (``step_cost_s``) fits in the time left."""
    passed = [r.rate for r in rows if r.failed is None]
    failed = [r for r in rows if r.failed is not None]
    best = max(passed) if passed else None
    above = [r for r in failed if best is None or r.rate > best]
    lowest_fail = min(above, key=lambda r: r.rate) if above else None
    if not rows:
        candidate = plan.lowest
    elif best is None:
        return Stop(rows[0].failed, None)  # the lowest rate already failed: capacity is below the range
    elif lowest_fail is None:
        if best >= plan.highest:
            return Stop(StopReason.TOP_OF_RANGE, best)
        candidate = min(best * 2, plan.highest)
    else:
        candidate = round((best + lowest_fail.rate) / 2)
        if lowest_fail.rate - best <= plan.resolution * best or not best < candidate < lowest_fail.rate:
            return Stop(lowest_fail.failed, best)  # converged: the bound is what the lowest failure hit
    if len(rows) >= plan.max_steps:
        return Stop(StopReason.STEPS, best)
    if step_cost_s > time_left_s:
        return Stop(StopReason.DEADLINE, best)
    return float(candidate)


@dataclass(frozen=True)
class Capacity:
    """The result: the highest rate (total over ``processes``) whose send lag p99 stayed within
    ``lag_p99_limit_us`` with no failed request, the rows that found it, and why the search stopped."""

    target: str
    processes: int
    lag_p99_limit_us: float
    rate: float | None
    reason: StopReason
    rows: list[Row] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def per_process_rate(self) -> float | None:
        return None if self.rate is None else self.rate / self.processes

    @property
    def meter_limited(self) -> bool:
        """True when the bound found is the meter's own lag, not the target's errors, time or range."""
        return self.reason is StopReason.LAG_LIMIT

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reason"] = self.reason.value
        out["per_process_rate"] = self.per_process_rate
        out["rows"] = [{**asdict(r), "failed": r.failed.value if r.failed else None} for r in self.rows]
        return out


# -- drivers -----------------------------------------------------------------------------------------
def _plan(lag_p99_limit_us: float, rates: tuple[float, float], step_s: float, processes: int,
          deadline_s: float, resolution: float, max_steps: int, repeats: int) -> SearchPlan:
    if len(rates) != 2:
        raise ValueError(f"rates must be (lowest, highest), got {rates!r}")
    if step_s <= 0:
        raise ValueError(f"step_s must be above 0, got {step_s}")
    if processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    if deadline_s <= 0:
        raise ValueError(f"deadline_s must be above 0, got {deadline_s}")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    return SearchPlan(lowest=float(rates[0]), highest=float(rates[1]), lag_p99_limit_us=lag_p99_limit_us,
                      resolution=resolution, max_steps=max_steps)


def _step_load(rate: float, step_s: float, processes: int) -> OpenLoop:
    return OpenLoop(rate=rate / processes, duration_s=step_s, warm_connections=_WARM_CONNECTIONS,
                    drain_timeout_s=_STEP_DRAIN_S)


# closed loop, one connection, at most 3 requests and 1 s (+2 s drain): bounded even against a
# server that accepts and never answers
_PROBE = ClosedLoop(connections=1, count=3, duration_s=1.0, drain_timeout_s=2.0)


def _check_probe(target: Target, result: LoadResult) -> None:
    if result.count == 0:
        got = ", ".join(f"{n}× {code}" for code, n in result.statuses.items()) or "no response"
        raise TargetNotAnswering(f"target {target.address} did not answer the meter's probe "
                                 f"({result.sent} requests: {got}; {result.errors} errors)")


def _step_cost(rows: Sequence[Row], step_s: float, repeats: int = 1) -> float:
    return max((r.wall_s for r in rows), default=repeats * (step_s + _FIRST_STEP_OVERHEAD_S))


def meter_capacity(target: Target, *, lag_p99_limit_us: float = 200.0,
                   rates: tuple[float, float] = DEFAULT_RATES, step_s: float = DEFAULT_STEP_S,
                   processes: int = 1, deadline_s: float = DEFAULT_DEADLINE_S, resolution: float = 0.1,
                   max_steps: int = 12, repeats: int = 1,
                   measure_fn: Callable[[Target, OpenLoop | ClosedLoop], LoadResult] = measure) -> Capacity:
    """Search the meter's capacity against ``target`` (see the module docstring); blocks.

    Raises TargetNotAnswering when a probe gets no answer, ValueError for a bad argument. The search
    stops starting steps once the next would end after ``deadline_s``; the probe and every run of a
    step (``repeats`` runs per step) run in fresh meter processes. With the defaults it takes ~5-10 s.
    """
    plan = _plan(lag_p99_limit_us, rates, step_s, processes, deadline_s, resolution, max_steps, repeats)
    started = time.monotonic()
    _check_probe(target, measure_fn(target, _PROBE))
    rows: list[Row] = []
    with ThreadPoolExecutor(max_workers=processes) as pool:
        while True:
            decision = decide(rows, plan, time_left_s=deadline_s - (time.monotonic() - started),
                              step_cost_s=_step_cost(rows, step_s, repeats))
            if isinstance(decision, Stop):
                break
            load = _step_load(decision, step_s, processes)
            step_started = time.monotonic()
            runs = [LoadResult.merge(list(pool.map(lambda _: measure_fn(target, load), range(processes))))
                    for _ in range(repeats)]
            rows.append(Row.of(decision, runs, plan, time.monotonic() - step_started))
    return Capacity(target.address, processes, lag_p99_limit_us, decision.rate, decision.reason, rows,
                    round(time.monotonic() - started, 2))


async def meter_capacity_async(
        target: Target, *, lag_p99_limit_us: float = 200.0, rates: tuple[float, float] = DEFAULT_RATES,
        step_s: float = DEFAULT_STEP_S, processes: int = 1, deadline_s: float = DEFAULT_DEADLINE_S,
        resolution: float = 0.1, max_steps: int = 12, repeats: int = 1,
        measure_fn: Callable[[Target, OpenLoop | ClosedLoop], Awaitable[LoadResult]] = measure_async) -> Capacity:
    """As ``meter_capacity``, without blocking the caller's event loop (a target served on it keeps
    serving)."""
    plan = _plan(lag_p99_limit_us, rates, step_s, processes, deadline_s, resolution, max_steps, repeats)
    started = time.monotonic()
    _check_probe(target, await measure_fn(target, _PROBE))
    rows: list[Row] = []
    while True:
        decision = decide(rows, plan, time_left_s=deadline_s - (time.monotonic() - started),
                          step_cost_s=_step_cost(rows, step_s, repeats))
        if isinstance(decision, Stop):
            break
        load = _step_load(decision, step_s, processes)
        step_started = time.monotonic()
        runs = []
        for _ in range(repeats):
            parts = await asyncio.gather(*(measure_fn(target, load) for _ in range(processes)))
            runs.append(LoadResult.merge(list(parts)))
        rows.append(Row.of(decision, runs, plan, time.monotonic() - step_started))
    return Capacity(target.address, processes, lag_p99_limit_us, decision.rate, decision.reason, rows,
                    round(time.monotonic() - started, 2))
