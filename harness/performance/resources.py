"""CPU time and resident memory of a mesh's proxy processes over a measured interval.

A proxy is one or more processes (a sidecar; nginx's master and its workers; HAProxy): each is read
with its children, so worker processes are counted. CPU is utime + stime (all threads), at the clock
tick (10 ms here): sample over seconds. Peak resident memory is the kernel's own high-water mark
(``VmHWM`` in /proc/PID/status), reset at the start of the interval by writing ``5`` to
/proc/PID/clear_refs (Linux >= 4.0) so the peak is the interval's, not the process's lifetime; where
the reset is refused the peak since start is reported and ``peak_since_start`` says so.

Per 1,000 req/s: ``vcpu_per_krps = cpu_s / interval_s / (rate / 1000)``, the unit Istio publishes for
its sidecar (0.20 vCPU and 60 MB per sidecar per 1,000 req/s, SPEC §5), so the figure can stand beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import psutil

ISTIO_VCPU_PER_KRPS = 0.20
ISTIO_MB_PER_SIDECAR = 60.0


@dataclass(frozen=True)
class ProxyUse:
    name: str
    processes: int
    cpu_s: float
    rss_bytes: int  # at the end of the interval
    rss_peak_bytes: int  # sum over the processes of each one's peak in the interval
    peak_since_start: bool

    def vcpu_per_krps(self, interval_s: float, rate: float) -> float:
        return self.cpu_s / interval_s / (rate / 1000.0) if interval_s > 0 and rate > 0 else 0.0


def _tree(pid: int) -> list[psutil.Process]:
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def _cpu(procs: Sequence[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class ResourceSample:
    """``ResourceSample({"client": [pid], ...})`` starts the interval; ``stop()`` ends it."""

    def __init__(self, proxies: Mapping[str, Sequence[int]]):
        self._trees = {name: [p for pid in pids for p in _tree(pid)] for name, pids in proxies.items()}
        self._reset = {name: all([_reset_peak(p.pid) for p in procs]) for name, procs in self._trees.items()}
        self._cpu0 = {name: _cpu(procs) for name, procs in self._trees.items()}
        self.began = time.monotonic()
        self.interval_s = 0.0

    def stop(self) -> dict[str, ProxyUse]:
        self.interval_s = time.monotonic() - self.began
        out = {}
        for name, procs in self._trees.items():
            out[name] = ProxyUse(
                name=name, processes=len(procs), cpu_s=_cpu(procs) - self._cpu0[name],
                rss_bytes=sum(_status_kib(p.pid, "VmRSS") for p in procs) * 1024,
                rss_peak_bytes=sum(_status_kib(p.pid, "VmHWM") for p in procs) * 1024,
                peak_since_start=not self._reset[name])
        return out
