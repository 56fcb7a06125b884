"""Locust's command lines for a run: one process alone, or its master and workers (Locust's own
distributed mode). Pure: builds argv lists, starts nothing.

Every Locust process loads the recording locustfile first (our ``events.request`` listener, see
:mod:`harness.locust.recorder`), then the user's. The master (or the single process) carries the run:
users, spawn rate, run time, the target (``--host`` = the calling workload's outbound listener), the
CSV and HTML reports, and our custom options — the traffic plan and where to write the status and the
result. Locust sends custom options to its workers with every spawn, so workers need only the
locustfiles and the master's address; workers on other hosts fetch the locustfiles from the master
(``-f -``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from harness.locust.options import RECORDING

WORKERS_MAX_WAIT_S = 120  # the master gives up when its workers have not all connected by then


@dataclass(frozen=True)
class RunFiles:
    """What one run writes into its output directory."""

    out: Path

    @property
    def csv_prefix(self) -> Path:
        return self.out / "locust"  # Locust adds _stats.csv, _stats_history.csv, _failures.csv, _exceptions.csv

    @property
    def stats_csv(self) -> Path:
        return self.out / "locust_stats.csv"

    @property
    def html(self) -> Path:
        return self.out / "locust.html"

    @property
    def status(self) -> Path:
        return self.out / "status.json"  # progress, rewritten twice a second by the master

    @property
    def result(self) -> Path:
        return self.out / "result.json"  # the merged histogram and counts, written when Locust quits

    @property
    def stop(self) -> Path:
        return self.out / "stop"  # created to ask the run to end before its --run-time (--mc-stop)

    @property
    def percentiles(self) -> Path:
        return self.out / "percentiles-us.json"

    @property
    def smp(self) -> Path:
        return self.out / "smp.yaml"

    def log(self, process: str) -> Path:
        return self.out / f"{process}.log"


def locustfile_option(locustfiles: Sequence[Path]) -> str:
    return ",".join(str(p) for p in (RECORDING, *locustfiles))


def load_argv(python: str, locustfiles: Sequence[Path], files: RunFiles, *, users: int, spawn_rate: float,
              run_time_s: int, target: str, plan_json: str, master: tuple[str, int, int] | None,
              stoppable: bool = False) -> list[str]:
    """The single process (``master`` None) or the master of ``(host, port, expected workers)``;
    ``stoppable``: it also quits, as at the end of ``run_time_s``, once ``files.stop`` exists."""
    argv = [python, "-m", "locust", "-f", locustfile_option(locustfiles), "--headless", "--only-summary",
            "--users", str(users), "--spawn-rate", f"{spawn_rate:g}", "--run-time", f"{run_time_s}s",
            "--host", f"http://{target}", "--csv", str(files.csv_prefix), "--html", str(files.html),
            "--mc-plan", plan_json, "--mc-status", str(files.status), "--mc-result", str(files.result)]
    if stoppable:
        argv += ["--mc-stop", str(files.stop)]
    if master is not None:
        host, port, workers = master
        argv += ["--master", "--master-bind-host", host, "--master-bind-port", str(port),
                 "--expect-workers", str(workers), "--expect-workers-max-wait", str(WORKERS_MAX_WAIT_S)]
    return argv


def worker_argv(python: str, locustfiles: Sequence[Path] | None, master_host: str, master_port: int) -> list[str]:
    """A worker; ``locustfiles`` None fetches them from the master (a worker on another host)."""
    option = "-" if locustfiles is None else locustfile_option(locustfiles)
    return [python, "-m", "locust", "-f", option, "--worker", "--master-host", master_host,
            "--master-port", str(master_port)]
