"""Every response time in µs into HdrHistogram, in every Locust process of a run (Locust side only).

Locust's own statistics round response times to two significant figures (a 1,234 µs answer counts as
1,200) and keep no histogram a master can merge. This module listens to ``events.request`` and records
each response — failures too, so its count is Locust's request count — with
:func:`harness.load.hdr.record_us` (3 significant digits, 1 µs to 60 s).

Roles, as Locust's distributed mode has them:
- a worker ships what it recorded since its last report in Locust's own worker report
  (``events.report_to_master``, key ``"meshconform"``) and starts afresh;
- the master adds each worker's part exactly (``events.worker_report`` → :class:`MergedHistogram`);
- the master, or a process running alone, rewrites a small status file twice a second (the CLI's
  progress) and, when Locust quits, writes the merged result for the CLI; given ``--mc-stop FILE``
  (a check's background load, harness/locust/background.py) it quits once that file exists, the way
  Locust quits at the end of ``--run-time``, so the result holds the run's last numbers.

Locustfiles add labelled counts (which version answered, retries that recovered) with :func:`count`.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections import Counter
from typing import Any

import gevent
import locust.stats
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from harness.load import hdr
from harness.locust import arguments
from harness.locust.merge import MergedHistogram, worker_part

REPORT_KEY = "meshconform"
STATUS_INTERVAL_S = 0.5
STOP_POLL_S = 0.1  # how often a stoppable run looks for its stop file
CSV_CATCH_UP_S = 5.0  # at quit, how long Locust's CSV writer may take to write the final numbers

# Locust rewrites its CSV files every CSV_STATS_INTERVAL_SEC and flushes them every
# CSV_STATS_FLUSH_INTERVAL_SEC (documented knobs): flush on every write, so the files on disk are
# never older than one interval and the final numbers can be waited for (see _await_final_csv).
locust.stats.CSV_STATS_FLUSH_INTERVAL_SEC = 0


class Recorder:
    """This process's histogram since the last worker report, and the merge of all of them."""

    def __init__(self) -> None:
        self.local = hdr.new_histogram()
        self.local_failures = 0
        self.local_counts: Counter[str] = Counter()
        self.merged = MergedHistogram()
        self.started: float | None = None
        self.stopped: float | None = None

    # -- every process -------------------------------------------------------------------------
    def on_request(self, response_time: float, exception: Any = None, **_: Any) -> None:
        hdr.record_us(self.local, response_time * 1000.0)  # Locust gives ms as a float
        if exception is not None:
            self.local_failures += 1

    def count(self, label: str, n: int = 1) -> None:
        self.local_counts[label] += n

    def take_part(self) -> dict[str, Any]:
        """What was recorded since the last call, as a worker part; the local records start afresh."""
        part = worker_part(self.local, self.local_failures, self.local_counts)
        self.local.reset()
        self.local_failures = 0
        self.local_counts.clear()
        return part

    # -- the master, or a process alone --------------------------------------------------------
    def result(self, environment) -> dict[str, Any]:
        if not isinstance(environment.runner, MasterRunner):
            self.merged.add("local", self.take_part())
        total = environment.stats.total
        started, stopped = self.started, self.stopped or time.time()
        return {**self.merged.to_json(),
                "role": "master" if isinstance(environment.runner, MasterRunner) else "local",
                "locust": {"requests": total.num_requests, "failures": total.num_failures},
                "started_at": started, "stopped_at": stopped,
                "duration_s": (stopped - started) if started else 0.0}

    def status(self, environment) -> dict[str, Any]:
        runner = environment.runner
        total = environment.stats.total
        return {"state": runner.state, "users": runner.user_count, "requests": total.num_requests,
                "failures": total.num_failures,
                "workers": runner.worker_count if isinstance(runner, MasterRunner) else 0,
                "elapsed_s": time.time() - self.started if self.started else 0.0, "written_at": time.time()}


RECORDER = Recorder()


def count(label: str, n: int = 1) -> None:
    """Add ``n`` to a labelled count of this run (merged over workers like the histogram)."""
    RECORDER.count(label, n)


def _write_json(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)  # readers never see half a file


@events.request.add_listener
def _on_request(response_time: float, exception: Any = None, **kwargs: Any) -> None:
    RECORDER.on_request(response_time, exception)


@events.report_to_master.add_listener
def _on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
    data[REPORT_KEY] = RECORDER.take_part()


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    part = data.get(REPORT_KEY)
    if part is not None:
        RECORDER.merged.add(client_id, part)


@events.test_start.add_listener
def _on_test_start(environment, **kwargs: Any) -> None:
    if RECORDER.started is None:
        RECORDER.started = time.time()


@events.test_stop.add_listener
def _on_test_stop(environment, **kwargs: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        RECORDER.stopped = time.time()


@events.init.add_listener
def _on_init(environment, **kwargs: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    path = arguments.option(environment, "mc_status")
    if path:
        gevent.spawn(_write_status, environment, path)
    stop = arguments.option(environment, "mc_stop")
    if stop:
        gevent.spawn(_quit_when_asked, environment, stop)


def _write_status(environment, path: str) -> None:
    while True:
        _write_json(path, RECORDER.status(environment))
        gevent.sleep(STATUS_INTERVAL_S)


def _quit_when_asked(environment, path: str) -> None:
    """Quit once ``path`` exists, as Locust's own headless run does when ``--run-time`` is up."""
    while not os.path.exists(path):
        gevent.sleep(STOP_POLL_S)  # polling pace; Locust's greenlets run meanwhile
    environment.runner.quit()


@events.quitting.add_listener
def _on_quitting(environment, **kwargs: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    result = RECORDER.result(environment)
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        result["csv_caught_up"] = _await_final_csv(f"{prefix}_stats.csv", result["locust"]["requests"])
    path = arguments.option(environment, "mc_result")
    if path:
        _write_json(path, result)


def _await_final_csv(path: str, requests: int) -> bool:
    """Wait (yielding to Locust's CSV writer) until its stats file shows the final request count."""
    deadline = time.monotonic() + CSV_CATCH_UP_S
    while time.monotonic() < deadline:
        if _csv_total(path) == requests:
            return True
        gevent.sleep(0.05)  # polling pace; the writer greenlet runs meanwhile
    return False


def _csv_total(path: str) -> int | None:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return None
    for row in rows:
        if row.get("Name") == "Aggregated":
            try:
                return int(row["Request Count"])
            except (KeyError, ValueError):
                return None
    return None


__all__ = ["RECORDER", "Recorder", "count"]
