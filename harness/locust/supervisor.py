"""The Locust processes of one run, started so that none outlives it.

Each is a :class:`meshruntime.processes.ManagedProcess`: its own session (one ``killpg`` reaches it
and anything it forks; a Ctrl-C in the terminal reaches only the CLI, which then stops them), the
run's id and owner in its environment (``meshconform sweep`` finds it if the CLI was SIGKILLed) and
the kernel's parent-death signal. :meth:`LocustProcesses.stop` SIGTERMs every group, SIGKILLs what is
left after a grace period, then looks with psutil for any process still tagged with the run's id,
kills it and returns what it found — so "no Locust process is left" is checked, not assumed.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Sequence

from meshruntime.processes import ManagedProcess, alive, stop_all, wait_until
from meshruntime.sweep import tagged_processes

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # so `import harness` works in Locust's interpreter
STOP_GRACE_S = 5.0


class LocustProcesses:
    def __init__(self, run_id: str):
        self.run_id = run_id
        self.processes: list[ManagedProcess] = []

    def start(self, name: str, argv: Sequence[str], log_path: Path) -> ManagedProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        proc = ManagedProcess(name, argv, run_id=self.run_id, log_path=log_path, env=env, cwd=os.getcwd())
        self.processes.append(proc)
        return proc.start()

    def running(self) -> list[ManagedProcess]:
        return [p for p in self.processes if p.running()]

    def stop(self, grace: float = STOP_GRACE_S) -> list[int]:
        """Stop every process of the run; returns the pids psutil still found (and killed) afterwards."""
        stop_all(self.processes, grace)
        leftovers = [p.pid for p in tagged_processes(self.run_id)]
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if leftovers:
            try:
                wait_until(lambda: not any(alive(pid) for pid in leftovers), timeout=grace,
                           what="leftover Locust processes to die")
            except TimeoutError as exc:  # pragma: no cover - SIGKILL cannot be ignored
                print(f"meshconform load: {exc}", file=sys.stderr)
        return leftovers
