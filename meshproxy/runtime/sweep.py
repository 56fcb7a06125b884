"""Find and kill processes a run left behind (SPEC §3: every process carries its run's id).

A process is a leftover when its environment (``/proc/<pid>/environ``, as it was at exec) has
``MESHCONFORM_RUN_ID`` and the owner named by ``MESHCONFORM_OWNER`` is gone (pid absent or reused).
A tagged process with no owner tag counts as a leftover once it has been re-parented to init.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from meshproxy.runtime.procs import OWNER_ENV, RUN_ID_ENV, owner_alive


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
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return None
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def tagged_processes(run_id: str | None = None) -> list[TaggedProcess]:
    """Every live process tagged with a run id (that run only when ``run_id`` is given)."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        env = _environ(int(entry))
        if not env or RUN_ID_ENV not in env:
            continue
        if run_id is not None and env[RUN_ID_ENV] != run_id:
            continue
        if _is_zombie(int(entry)):
            continue
        found.append(TaggedProcess(int(entry), env[RUN_ID_ENV], env.get(OWNER_ENV), _cmdline(int(entry))))
    return found


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2:].split()[0] in ("Z", "X")


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
        pending = {pid for pid in pending if not _is_zombie(pid)}
        time.sleep(0.05)  # polling pace while they exit
    for pid in pending:
        _kill(pid, signal.SIGKILL)
    return leftovers


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
