"""CPU time of processes (all their threads) over an interval, from :func:`meshruntime.processes.cpu_seconds`.

Resolution is one clock tick (``SC_CLK_TCK``, 10 ms here), so sample over seconds, not milliseconds:
5 s of a proxy at 50% CPU is 250 ticks, ±0.4%.
"""

from __future__ import annotations

from meshruntime.processes import cpu_seconds

__all__ = ["CpuSample", "cpu_seconds"]


class CpuSample:
    """CPU seconds each process used between construction and ``elapsed()``."""

    def __init__(self, pids: dict[str, int]):
        self._pids = dict(pids)
        self._start = {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def elapsed(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) - self._start[name] for name, pid in self._pids.items()}
