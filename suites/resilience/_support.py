"""Helpers of the resilience suite: workloads, concurrent sends, journal reads, attempt-count headers.

Checks send through a thread pool around ``mesh.send`` (the adapter's client is thread-safe), so a
check that needs thousands of requests finishes in seconds; every pool is bounded in size and every
request carries the adapter's client timeout (10 s).
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from dataclasses import dataclass
from typing import Iterable, Sequence

from fixtures.echo.answer import echo_identity
from harness.adapters.base import HttpRequest, HttpResponse, MeshAttemptCount

CLIENT = "client-v1-0"
BACKEND = "backend-v1-0"
FLAKY_DEAD = "flaky-v1-0"
FLAKY_LIVE = "flaky-v2-0"
KEY_HEADER = "x-echo-key"
ATTEMPT_HEADER = "x-envoy-attempt-count"
MAX_WORKERS = 64


def is_mesh_error(response: HttpResponse) -> bool:
    """A non-echo failure the errors rule counts (``_decisions.ERRORS``): no HTTP answer (reset, EOF,
    timeout) or a 5xx the mesh made itself (its body is not an echo answer). A status the echo was
    programmed to give carries the echo's JSON and is judged by the check itself."""
    return response.status is None or (response.status >= 500 and echo_identity(response.body) is None)


def request(path: str, key: str, host: str = "backend") -> HttpRequest:
    return HttpRequest(host=host, path=path, headers={KEY_HEADER: key})


def send_all(mesh, requests: Sequence[HttpRequest], concurrency: int = 16) -> list[HttpResponse]:
    """Send ``requests`` from the client workload, ``concurrency`` at a time; answers in order."""
    if concurrency <= 1:
        return [mesh.send(CLIENT, r) for r in requests]
    with concurrent.futures.ThreadPoolExecutor(min(concurrency, MAX_WORKERS)) as pool:
        return list(pool.map(lambda r: mesh.send(CLIENT, r), requests))


@dataclass(frozen=True)
class TimedAnswer:
    """An answer with the client's send and answer times on CLOCK_MONOTONIC (ns), the clock of the echo's
    journal, so a check can time the mesh from the moment a try reached the upstream."""

    sent_ns: int
    answered_ns: int
    response: HttpResponse


def send_all_timed(mesh, requests: Sequence[HttpRequest], concurrency: int = 16) -> list[TimedAnswer]:
    """``send_all`` with each request's send and answer times."""
    def one(r: HttpRequest) -> TimedAnswer:
        sent = time.monotonic_ns()
        response = mesh.send(CLIENT, r)
        return TimedAnswer(sent, time.monotonic_ns(), response)
    with concurrent.futures.ThreadPoolExecutor(max(1, min(concurrency, MAX_WORKERS))) as pool:
        return list(pool.map(one, requests))


def program_all(echo, programs: dict[str, list[dict]], concurrency: int = 8) -> None:
    """Install one echo program per key (control-port calls, in parallel)."""
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda item: echo.program_sync(item[0], item[1]), programs.items()))


def arrivals_by_key(echo, since: int, keys: Iterable[str] | None = None) -> dict[str, list[dict]]:
    """Journal arrivals with seq >= ``since`` grouped by key, each group in arrival order."""
    wanted = set(keys) if keys is not None else None
    grouped: dict[str, list[dict]] = {}
    for arrival in echo.journal_sync(since=since):
        if wanted is None or arrival["key"] in wanted:
            grouped.setdefault(arrival["key"], []).append(arrival)
    return grouped


def journal_mark(echo) -> int:
    """The seq the next arrival at this echo will get: read the journal only from here on."""
    return echo.journal_page_sync(key=uuid.uuid4().hex)[1]


def flush(mesh, deployment, workload: str = BACKEND, host: str = "backend") -> None:
    """Wait until everything the mesh was going to deliver to ``workload`` has arrived, without
    sleeping: send a sentinel on the plain route and wait for its arrival (the journal is in order)."""
    sentinel = uuid.uuid4().hex
    resp = mesh.send(CLIENT, request("/plain", sentinel, host))
    assert resp.status == 200, f"the sentinel request through the mesh failed: {resp.status} {resp.error}"
    deployment.echo(workload).wait_arrivals_sync(sentinel, 1, timeout=5.0)


def attempt_count_problem(mesh, arrivals: Sequence[dict]) -> str | None:
    """Check the attempt-count header the upstream saw: the i-th arrival of a request says ``i``.

    Required when the adapter offers :class:`MeshAttemptCount`; otherwise checked whenever the mesh
    sends ``x-envoy-attempt-count`` at all (a mesh that never sends it is not judged on it)."""
    required = isinstance(mesh, MeshAttemptCount)
    header = mesh.attempt_count_header if required else ATTEMPT_HEADER
    seen = [a["headers"].get(header) for a in arrivals]
    if not required and all(v is None for v in seen):
        return None
    expected = [str(i) for i in range(1, len(arrivals) + 1)]
    if seen != expected:
        return f"{header} seen by the upstream was {seen}, want {expected}"
    return None
