"""How the chaos checks load a destination while a fault happens, and what they keep of each request.

:class:`OpenLoad` is an open-loop generator: request ``i`` is due at ``start + i / rate`` whatever the
earlier ones did (a stall of the mesh does not slow the offered load down, it piles requests up), sent
by a bounded pool of threads. It is bounded in count (``rate × max_s``) and in time (every request has
the client timeout ``REQUEST_TIMEOUT_S``; the dispatcher stops at ``max_s`` or at ``stop()``). Each
request becomes a :class:`Shot` with its due, send and answer times on CLOCK_MONOTONIC, the clock of
the echo journal and of the fault leases, so a check can put every failure before, in or after a fault.

The checks' decisions are pure functions of shots (suites/chaos/_decisions.py).
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from fixtures.echo.answer import echo_identity
from harness.adapters.base import HttpRequest, HttpResponse
from meshruntime.processes import wait_until

from ._decisions import Shot

CLIENT = "client-v1-0"
KEY_HEADER = "x-echo-key"
REQUEST_TIMEOUT_S = 5.0  # the client's own bound on one request (every mesh answer here is far faster)
WARM_UP_S = 5.0  # every endpoint must answer within this before a check injects anything


def workload(service: str, instance: int = 0) -> str:
    return f"{service}-v1-{instance}"


def answered_by(service: str, response: HttpResponse) -> str | None:
    """The workload whose echo answered 200, or None (the mesh's own answer, an error, no answer)."""
    who = echo_identity(response.body) if response.status == 200 else None
    return who.workload if who is not None and who.service == service else None


def send(mesh, service: str, path: str, key: str, timeout_s: float = REQUEST_TIMEOUT_S, *,
         caller: str = CLIENT) -> Shot:
    due = time.monotonic_ns()
    response = mesh.send(caller, HttpRequest(host=service, path=path, headers={KEY_HEADER: key}, timeout_s=timeout_s))
    return Shot(due, due, time.monotonic_ns(), response.status, answered_by(service, response), response.error)


class OpenLoad:
    """``rate`` requests/s to ``service`` for at most ``max_s`` seconds, at most ``workers`` in flight."""

    def __init__(self, mesh, service: str, path: str, key: str, *, rate: float, max_s: float, workers: int = 48):
        self._mesh, self._service, self._path, self._key = mesh, service, path, key
        self.rate, self.max_s, self.workers = rate, max_s, workers
        self._shots: list[Shot] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.start_ns = 0

    # -- driving -----------------------------------------------------------------------------------
    def start(self) -> "OpenLoad":
        self.start_ns = time.monotonic_ns()
        self._thread = threading.Thread(target=self._dispatch, name=f"load {self._service}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Send nothing more (requests already sent still finish)."""
        self._stop.set()

    def join(self) -> list[Shot]:
        """Wait for the last answer (bounded: the dispatcher's end plus one client timeout); the shots
        in due order."""
        if self._thread is not None:
            self._thread.join(timeout=self.max_s + REQUEST_TIMEOUT_S + 10.0)
            if self._thread.is_alive():
                raise RuntimeError(f"the load on {self._service} did not finish within its bounds")
        return self.shots()

    def __enter__(self) -> "OpenLoad":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.join()

    def _dispatch(self) -> None:
        period_ns = int(1e9 / self.rate)
        count = int(self.rate * self.max_s)
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=f"load-{self._service}") as pool:
            for i in range(count):
                due = self.start_ns + i * period_ns
                wait = (due - time.monotonic_ns()) / 1e9
                if wait > 0 and self._stop.wait(wait):  # pacing of the offered load, not synchronisation
                    break
                if self._stop.is_set():
                    break
                pool.submit(self._one, due)

    def _one(self, due_ns: int) -> None:
        sent = time.monotonic_ns()
        response = self._mesh.send(CLIENT, HttpRequest(host=self._service, path=self._path,
                                                       headers={KEY_HEADER: self._key}, timeout_s=REQUEST_TIMEOUT_S))
        shot = Shot(due_ns, sent, time.monotonic_ns(), response.status, answered_by(self._service, response),
                    response.error)
        with self._lock:
            self._shots.append(shot)

    # -- observing ---------------------------------------------------------------------------------
    def shots(self) -> list[Shot]:
        with self._lock:
            return sorted(self._shots, key=lambda s: s.due_ns)

    def answered(self) -> int:
        with self._lock:
            return len(self._shots)

    def wait_answered_after(self, t_ns: int, count: int, *, timeout: float, what: str) -> None:
        """Poll until ``count`` requests sent after ``t_ns`` have been answered (or raise TimeoutError)."""
        def enough() -> bool:
            with self._lock:
                return sum(1 for s in self._shots if s.sent_ns > t_ns) >= count

        wait_until(enough, timeout=timeout, what=what, interval=0.01)


def warm_up(mesh, service: str, path: str, key: str, endpoints: Sequence[str]) -> str | None:
    """Send (one request at a time) until the last ``2 × len(endpoints)`` answers are all 200 and come
    from every endpoint: the check then starts from a mesh that serves them all. The problem, or None."""
    want = set(endpoints)
    recent: list[Shot] = []
    deadline = time.monotonic() + WARM_UP_S
    while time.monotonic() < deadline:
        recent = (recent + [send(mesh, service, path, key)])[-2 * len(want):]
        if len(recent) == 2 * len(want) and {s.endpoint for s in recent} == want:
            return None
    seen = sorted({str(s.endpoint) for s in recent})
    statuses = sorted({str(s.status) for s in recent})
    return (f"not every endpoint of {service} answered within {WARM_UP_S:.0f} s before the fault (the last "
            f"{len(recent)} answers came from {seen}, statuses {statuses})")


def timeline(evidence, shots: Sequence[Shot], t0_ns: int, title: str, events: dict[str, int | None]) -> None:
    """Answers per endpoint and the failures, on seconds since ``t0_ns``."""
    series: dict[str, list[float]] = {}
    for s in shots:
        series.setdefault(s.endpoint or "failed", []).append(round((s.sent_ns - t0_ns) / 1e9, 4))
    evidence.plot(title, kind="timeline", xlabel="s since the fault (send time)",
                  data={"series": dict(sorted(series.items())),
                        "events": {name: round((t - t0_ns) / 1e9, 4) for name, t in events.items() if t}})


def send_together(mesh, service: str, requests: Sequence[tuple[str, str]],
                  timeout_s: float = REQUEST_TIMEOUT_S) -> list[Shot]:
    """``(path, key)`` requests sent at once, one thread each (at most 32); the shots in request order."""
    if len(requests) > 32:
        raise ValueError("send_together sends at most 32 requests at once")
    with ThreadPoolExecutor(max_workers=max(1, len(requests))) as pool:
        futures = [pool.submit(send, mesh, service, path, key, timeout_s) for path, key in requests]
        return [f.result(timeout=timeout_s + 10.0) for f in futures]


def journal_mark(deployment, endpoint: str) -> int:
    """The seq the endpoint's next arrival will get: read only from here on."""
    return deployment.echo(endpoint).journal_page_sync(key=uuid.uuid4().hex)[1]


def arrival_times(deployment, endpoint: str, since: int, key: str) -> list[int]:
    return [a["t_ns"] for a in deployment.echo(endpoint).journal_sync(key=key, since=since)]


def status_counts(shots: Sequence[Shot]) -> dict[str, int]:
    """How many shots got each status ("None": no answer), for the evidence."""
    counts: dict[str, int] = {}
    for s in shots:
        counts[str(s.status)] = counts.get(str(s.status), 0) + 1
    return dict(sorted(counts.items()))
