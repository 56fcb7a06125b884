"""The mesh's own request counters against ground truth (SPEC §4 Observability).

A known mix from ``client``: plain 200s, 5xx answers the route retries (some then succeed, some run
out of retries), a request with no route (404), and a breaker overflow made deterministic: the one
request ``metrics-cb`` may have in flight is held by its echo, observed in the echo's journal, and only
then is a second one sent. Every counter must then equal the ground truth exactly: the client's own
answers for what the caller's proxy reports (reporter "source": once per request, final code) and the
echo's journal for what the destination's proxy reports (reporter "destination": every try that
reached it) and for the per-destination tries and retries.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Iterable, Mapping, Sequence

from harness.adapters import MeshMetrics
from harness.checks import conformance
from harness.features import Feature, Level, Profile
from harness.observability.metrics import (UNKNOWN, DestinationCounters, MetricsSnapshot, RequestKey,
                                           request_count_problems)
from suites.conftest import require

from ._support import CLIENT, Background, Sent, arrivals_by_request, in_parallel, journal_mark, poll, send, \
    wait_arrival, workload

OK, RETRIED_OK, EXHAUSTED = 10, 3, 2  # requests: plain 200; 503 once then 200; 503 on all 3 tries
TRIES = 3  # the metrics route: attempts 2 (retries after the first try)
HOLD_S = 1.5  # the echo holds metrics-cb's one admitted request this long while the overflow is sent
SCRAPE_DEADLINE_S = 5.0  # counters are read until they match or this passes (a scrape may lag)
OVERLOAD_HEADER = "x-envoy-overloaded"


@conformance(
    short_name="MeshMetricsAgreeWithTraffic",
    description=f"From client: {OK} requests answered 200, {RETRIED_OK} answered 503 once then 200 (retried by "
                f"the route's 2 retries), {EXHAUSTED} answered 503 on all {TRIES} tries, one with no route (404) "
                f"and one breaker overflow (max_requests 1, the admitted request held {HOLD_S:g} s by the echo "
                f"and seen in its journal before the second is sent, so the overflow is certain). The mesh's "
                f"request counters per (reporter, source workload, destination workload, code) and its "
                f"per-destination tries, retries, overflows and ejections must equal the client's own answers "
                f"(reporter source) and the echo's journal (reporter destination, tries, retries) EXACTLY: "
                f"tolerance 0, since every count is of discrete events the test caused one by one, with no "
                f"sampling and no other traffic on these destinations; counters are re-read for up to "
                f"{SCRAPE_DEADLINE_S:g} s since a scrape may lag the traffic.",
    features=[Feature.METRICS, Feature.RETRIES, Feature.CIRCUIT_BREAKING], profile=Profile.OBSERVABILITY,
    level=Level.EXTENDED)
def test_metrics_agree_with_traffic(mesh, observability_mesh, evidence):
    problems = measure_metrics(mesh, observability_mesh, evidence)
    assert not problems, "the mesh's counters disagree with the traffic: " + "; ".join(problems)


def measure_metrics(mesh, deployment, evidence) -> list[str]:
    metrics = require(mesh, MeshMetrics, "read the mesh's request counters")
    dest, cb = workload("metrics"), workload("metrics-cb")
    readers = [CLIENT, dest, cb]
    before = _snapshot(metrics, readers)
    echo, cb_echo = deployment.echo(dest), deployment.echo(cb)
    mark, cb_mark = journal_mark(echo), journal_mark(cb_echo)

    programs: dict[str, list[dict]] = {}
    calls = []
    for i in range(OK + RETRIED_OK + EXHAUSTED):
        key = uuid.uuid4().hex
        steps = [] if i < OK else [{"status": 503}] if i < OK + RETRIED_OK else [{"status": 503}] * TRIES
        if steps:
            echo.program_sync(key, steps)
        programs[key] = steps
        calls.append(lambda key=key: send(mesh, CLIENT, "metrics", f"/m/{key}", key))
    sent: list[Sent] = in_parallel(calls, concurrency=5)
    sent.append(send(mesh, CLIENT, "metrics", "/no-route", uuid.uuid4().hex))

    hold_key = uuid.uuid4().hex
    cb_echo.program_sync(hold_key, [], default={"delay_s": HOLD_S})
    held = Background(lambda: send(mesh, CLIENT, "metrics-cb", "/held", hold_key))
    wait_arrival(cb_echo, hold_key, cb_mark, timeout=10.0)
    overflow = send(mesh, CLIENT, "metrics-cb", "/overflow", uuid.uuid4().hex)
    cb_sent = [held.join(timeout=HOLD_S + 15.0), overflow]

    arrivals = arrivals_by_request(echo, mark, {s.request_id for s in sent})
    cb_arrivals = arrivals_by_request(cb_echo, cb_mark, {s.request_id for s in cb_sent})
    want = expected_metrics(sent, arrivals, programs, dest) .plus(expected_metrics(cb_sent, cb_arrivals, {}, cb))
    want = MetricsSnapshot(want.requests, {**want.destinations,
                                           "metrics-cb": _with_overflows(want.destinations.get("metrics-cb"),
                                                                         cb_sent, cb_arrivals)})
    scope = {dest, cb}

    def read() -> MetricsSnapshot:
        return only(_snapshot(metrics, readers).minus(before), scope, {"metrics", "metrics-cb"})

    got = poll(read, lambda g: not metric_problems(g, want), timeout=SCRAPE_DEADLINE_S)
    problems = metric_problems(got, want)
    _evidence(evidence, got, want, sent + cb_sent, overflow)
    if overflow.status != 503 or (overflow.response.header(OVERLOAD_HEADER) or "") != "true":
        problems.append(f"the overflow request got {overflow.status} without the overload marker, not the breaker's "
                        "503: the mix was not what the check needs")
    return problems


def _snapshot(metrics, workloads: Iterable[str]) -> MetricsSnapshot:
    total = MetricsSnapshot()
    for w in workloads:
        total = total.plus(metrics.request_metrics(w))
    return total


def only(snapshot: MetricsSnapshot, workloads: set[str], clusters: set[str]) -> MetricsSnapshot:
    """The part of a snapshot about this check's own destinations (and the unknown destination of its
    no-route and overflow answers)."""
    requests = {k: n for k, n in snapshot.requests.items()
                if k.destination_workload in workloads | {UNKNOWN} and (k.source_workload == CLIENT
                                                                       or k.destination_workload in workloads)}
    return MetricsSnapshot(requests, {c: v for c, v in snapshot.destinations.items() if c in clusters})


def arrival_status(steps: Sequence[Mapping], i: int) -> int:
    """The status the echo answered the i-th arrival of a key with (its program's i-th step, then 200)."""
    return int(steps[i].get("status", 200)) if i < len(steps) else 200


def expected_metrics(sent: Sequence[Sent], arrivals: Mapping[str, list[dict]], programs: Mapping[str, list],
                     dest_workload: str) -> MetricsSnapshot:
    """What the counters must say, from the client's answers and the echo's journal alone."""
    requests: Counter[RequestKey] = Counter()
    tries = reached = 0
    for s in sent:
        came = arrivals.get(s.request_id, [])
        # the caller's proxy: one per request, the code the client got; no endpoint chosen when none arrived
        requests[RequestKey("source", s.source, dest_workload if came else UNKNOWN, s.status or 0)] += 1
        for i, _ in enumerate(came):
            requests[RequestKey("destination", s.source, dest_workload,
                                arrival_status(programs.get(s.key, []), i))] += 1
        tries += len(came)
        reached += bool(came)
    cluster = dest_workload.rsplit("-v1-", 1)[0]
    return MetricsSnapshot(dict(requests), {cluster: DestinationCounters(upstream_requests=tries,
                                                                         retries=tries - reached)})


def _with_overflows(counters: DestinationCounters | None, sent: Sequence[Sent],
                    arrivals: Mapping[str, list[dict]]) -> DestinationCounters:
    counters = counters or DestinationCounters()
    overflows = sum(1 for s in sent if not arrivals.get(s.request_id) and s.status == 503
                    and (s.response.header(OVERLOAD_HEADER) or "") == "true")
    return DestinationCounters(**(counters.to_json() | {"overflows": overflows}))


def metric_problems(got: MetricsSnapshot, want: MetricsSnapshot) -> list[str]:
    problems = request_count_problems(got.requests, want.requests)
    for cluster in sorted(set(got.destinations) | set(want.destinations)):
        g = got.destinations.get(cluster, DestinationCounters()).to_json()
        w = want.destinations.get(cluster, DestinationCounters()).to_json()
        for name in w:
            if g[name] != w[name]:
                problems.append(f"destination {cluster} {name}: mesh counted {g[name]}, ground truth {w[name]}")
    return problems


def _evidence(evidence, got: MetricsSnapshot, want: MetricsSnapshot, sent: Sequence[Sent], overflow: Sent) -> None:
    evidence.samples = len(sent)
    evidence["requests"] = [{"key": k.label(), "mesh": got.requests.get(k, 0), "truth": want.requests.get(k, 0)}
                            for k in sorted(set(got.requests) | set(want.requests))]
    evidence["destinations"] = {c: {"mesh": got.destinations.get(c, DestinationCounters()).to_json(),
                                    "truth": want.destinations.get(c, DestinationCounters()).to_json()}
                                for c in sorted(set(got.destinations) | set(want.destinations))}
    evidence["client_statuses"] = dict(Counter(str(s.status) for s in sent))
    evidence.measure("overflow_status", overflow.status)
