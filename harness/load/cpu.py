"""CPU time of a process (all its threads), from Linux ``/proc/<pid>/stat``.

Resolution is one clock tick (``SC_CLK_TCK``, 10 ms here), so sample over seconds, not milliseconds:
5 s of a proxy at 50% CPU is 250 ticks, ±0.4%.
"""

from __future__ import annotations

import os

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds; raises ProcessLookupError if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    # the command name (field 2) is in parentheses and may contain spaces: split after the last ')'
    fields = stat[stat.rindex(b")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _TICKS_PER_SECOND


class CpuSample:
    """CPU seconds each process used between construction and ``elapsed()``."""

    def __init__(self, pids: dict[str, int]):
        self._pids = dict(pids)
        self._start = {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def elapsed(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) - self._start[name] for name, pid in self._pids.items()}
