"""The highest rate at which a mesh keeps its latency budget: a bounded search, as a pure function.

Doubling from ``lowest`` while steps pass, then bisection between the highest passing and the lowest
failing rate until they are within ``resolution`` of each other; never above ``ceiling`` (the meter's
or the direct path's own capacity, measured first, so the mesh is never blamed for the meter's limit)
and never more than ``max_steps`` steps. Which rate to try next depends only on the steps so far.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Step:
    rate: float
    passed: bool


@dataclass(frozen=True)
class Found:
    """The search is over: ``rate`` is the highest passing rate (None: even ``lowest`` failed);
    ``limited_by`` says what bounded it: "budget", "ceiling" or "steps"."""

    rate: float | None
    limited_by: str


def next_rate(steps: Sequence[Step], *, lowest: float, ceiling: float, resolution: float = 0.15,
              max_steps: int = 6) -> float | Found:
    if not 0 < lowest:
        raise ValueError(f"lowest must be above 0, got {lowest}")
    if not steps:
        return float(min(lowest, ceiling))
    passed = [s.rate for s in steps if s.passed]
    best = max(passed) if passed else None
    if best is None:
        return Found(None, "budget")
    failed_above = [s.rate for s in steps if not s.passed and s.rate > best]
    if not failed_above:
        if best >= ceiling:
            return Found(best, "ceiling")
        candidate = min(best * 2, ceiling)
    else:
        low_fail = min(failed_above)
        candidate = round((best + low_fail) / 2)
        if low_fail - best <= resolution * best or not best < candidate < low_fail:
            return Found(best, "budget")
    if len(steps) >= max_steps:
        return Found(best, "steps")
    return float(candidate)
