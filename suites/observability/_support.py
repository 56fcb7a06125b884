"""Helpers of the observability suite: sending a known mix and reading the ground truth beside it.

Ground truth is what the test sent and what its client saw (status, latency) and the echo's journal
(every arrival, with the headers it carried). The decisions are pure functions of those records and
of the mesh's normalised telemetry (harness/observability/), so the sensitivity and unit tests use
the same code as the checks.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

from harness.adapters.base import HttpRequest, HttpResponse

KEY_HEADER = "x-echo-key"
CLIENT = "client-v1-0"
T = TypeVar("T")


def workload(service: str, instance: int = 0) -> str:
    return f"{service}-v1-{instance}"


@dataclass(frozen=True)
class Sent:
    """One request the test made and what its client saw."""

    source: str  # the calling workload
    host: str
    path: str
    request_id: str
    key: str
    response: HttpResponse

    @property
    def status(self) -> int | None:
        return self.response.status


def send(mesh, source: str, host: str, path: str, key: str, *, headers: dict[str, str] | None = None) -> Sent:
    request_id = str(uuid.uuid4())
    hdrs = {KEY_HEADER: key, "x-request-id": request_id} | dict(headers or {})
    response = mesh.send(source, HttpRequest(host=host, path=path, headers=hdrs))
    return Sent(source, host, path, request_id, key, response)


def in_parallel(calls: Sequence[Callable[[], T]], concurrency: int) -> list[T]:
    """Run ``calls`` with at most ``concurrency`` at once; results in call order (each call is bounded
    by the client's own timeout)."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return [f.result(timeout=60) for f in [pool.submit(c) for c in calls]]


def arrivals_by_request(echo, mark: int, request_ids: set[str]) -> dict[str, list[dict]]:
    """Journal arrivals since ``mark`` of these requests (by x-request-id), in arrival order."""
    got: dict[str, list[dict]] = {}
    for a in echo.journal_sync(since=mark):
        rid = a["headers"].get("x-request-id")
        if rid in request_ids:
            got.setdefault(rid, []).append(a)
    return got


def journal_mark(echo) -> int:
    """The seq the echo's next arrival will get (arrivals from here on are this test's)."""
    return echo.journal_page_sync(key=uuid.uuid4().hex)[1]


def wait_arrival(echo, key: str, mark: int, timeout: float) -> None:
    """Return once an arrival with ``key`` is in the journal (polled until ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not echo.journal_sync(key=key, since=mark):
        if time.monotonic() >= deadline:
            raise AssertionError(f"no arrival with key {key} within {timeout:g} s")
        time.sleep(0.01)  # polling pace of the journal, bounded by the deadline


def poll(read: Callable[[], T], done: Callable[[T], bool], timeout: float, pace_s: float = 0.1) -> T:
    """``read()`` until ``done(value)`` or the deadline; the last value either way (telemetry is
    scraped or flushed a little after the traffic: this waits for it, never sleeps a fixed time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() >= deadline:
            return value
        time.sleep(pace_s)  # polling pace of an observable, bounded by the deadline


class Background:
    """A call in a thread of its own, joined with a bound."""

    def __init__(self, call: Callable[[], T]):
        self.result = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call) -> None:
        self.result = call()

    def join(self, timeout: float) -> object:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"a request did not finish within {timeout:g} s")
        return self.result
