"""Find and kill processes a run left behind (SPEC §3: every process carries its run's id).

A process is a leftover when its environment (as it was at exec, read with psutil) has
``MESHCONFORM_RUN_ID`` and the owner named by ``MESHCONFORM_OWNER`` is gone (pid absent or reused).
A tagged process with no owner tag counts as a leftover once it has been re-parented to init.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import psutil

from meshruntime.processes import OWNER_ENV, RUN_ID_ENV, alive, owner_alive


@dataclass(frozen=True)
class TaggedProcess:
    pid: int
    run_id: str
    owner: str | None
    cmdline: str

    @property
    def orphaned(self) -> bool:
        if self.owner is not None:
            return not owner_alive(self.owner)
        return _parent_pid(self.pid) == 1


def _environ(pid: int) -> dict[str, str] | None:
    try:
        return psutil.Process(pid).environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):  # gone, or not ours to read
        return None


def _parent_pid(pid: int) -> int | None:
    try:
        return psutil.Process(pid).ppid()
    except psutil.NoSuchProcess:
        return None


def _cmdline(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


def tagged_processes(run_id: str | None = None) -> list[TaggedProcess]:
    """Every live process tagged with a run id (that run only when ``run_id`` is given)."""
    found = []
    me = os.getpid()
    for pid in psutil.pids():
        if pid == me:
            continue
        env = _environ(pid)
        if not env or RUN_ID_ENV not in env:
            continue
        if run_id is not None and env[RUN_ID_ENV] != run_id:
            continue
        if not alive(pid):
            continue
        found.append(TaggedProcess(pid, env[RUN_ID_ENV], env.get(OWNER_ENV), _cmdline(pid)))
    return found


def sweep(run_id: str | None = None, *, grace: float = 3.0) -> list[TaggedProcess]:
    """Kill the leftovers of one run (or of every run): SIGTERM, then SIGKILL after ``grace`` s.

    Returns what it found. Processes whose owner is alive are left alone: they belong to a live run.
    """
    leftovers = [p for p in tagged_processes(run_id) if p.orphaned]
    for proc in leftovers:
        _kill(proc.pid, signal.SIGTERM)
        _kill(proc.pid, signal.SIGCONT)
    deadline = time.monotonic() + grace
    pending = {p.pid for p in leftovers}
    while pending and time.monotonic() < deadline:
        pending = {pid for pid in pending if alive(pid)}
        time.sleep(0.05)  # polling pace while they exit
    for pid in pending:
        _kill(pid, signal.SIGKILL)
    return leftovers


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
