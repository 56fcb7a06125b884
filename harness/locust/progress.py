"""A run's progress on the terminal (rich), from the status file the Locust master rewrites twice a
second: elapsed / run time, requests and failures so far, users, and workers connected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn


def read_status(path: Path) -> dict[str, Any] | None:
    """The last status the master wrote, or None (not yet written, or unreadable)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class LoadProgress:
    """``with LoadProgress(console, run_time_s, workers) as p: p.update(status)``."""

    def __init__(self, console: Console, run_time_s: int, workers: int):
        self.run_time_s = run_time_s
        self.workers = workers
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.fields[elapsed]:>5.1f}/{task.total:.0f} s"),
            TextColumn("{task.fields[requests]:>8} requests  {task.fields[failures]} failures  "
                       "{task.fields[users]} users{task.fields[workers]}"),
            console=console, transient=False)
        self._task = self._progress.add_task("starting Locust", total=run_time_s, elapsed=0.0, requests=0,
                                             failures=0, users=0, workers="")

    def __enter__(self) -> "LoadProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def update(self, status: dict[str, Any] | None) -> None:
        if not status:
            return
        elapsed = min(float(status.get("elapsed_s", 0.0)), float(self.run_time_s))
        waiting = self.workers and status.get("workers", 0) < self.workers and not status.get("requests")
        description = (f"waiting for workers ({status.get('workers', 0)}/{self.workers})" if waiting
                       else f"Locust {status.get('state', '')}")
        workers = f"  {status.get('workers', 0)} workers" if self.workers else ""
        self._progress.update(self._task, description=description, completed=elapsed, elapsed=elapsed,
                              requests=status.get("requests", 0), failures=status.get("failures", 0),
                              users=status.get("users", 0), workers=workers)
