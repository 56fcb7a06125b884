"""Access logs: one record per request per hop, with the right status and response flag, none missing
under a bounded burst (SPEC §4 Observability).

``client`` → ``logged`` at a fixed concurrency: plain 200s, the echo's own 500s, 503s the route retries
once (two tries reach the echo, the caller's proxy gives up: Envoy's URX), a fault abort (503 made by
the caller's proxy: FI, nothing reaches the destination) and requests with no route (404: NR). Every
request carries its own ``x-request-id``, which is how records are matched to requests. Ground truth:
the client's answers for the caller's outbound records, the echo's journal for the destination's inbound
records (one per arrival).
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from typing import Mapping, Sequence

from harness.adapters import MeshAccessLogs
from harness.checks import conformance
from harness.features import Feature, Level, Profile
from harness.observability.access_log import AccessLogRecord
from suites.conftest import require

from ._support import CLIENT, Sent, arrivals_by_request, in_parallel, journal_mark, poll, send, workload

CONCURRENCY = 20
# path prefix → (requests, status the client must get, the outbound record's flags)
MIX = {"/ok/": (240, 200, ()), "/err/": (30, 500, ()), "/retry/": (10, 503, ("URX",)),
       "/abort/": (10, 503, ("FI",)), "/none/": (10, 404, ("NR",))}
TOTAL = sum(n for n, _, _ in MIX.values())
FLUSH_DEADLINE_S = 5.0  # records are flushed within 0.2 s (reference); read until complete or this passes
DEST = workload("logged")


@conformance(
    short_name="MeshAccessLogs",
    description=f"{TOTAL} requests client → logged at concurrency {CONCURRENCY}: "
                + ", ".join(f"{n} under {p} ({s}{', flag ' + '+'.join(f) if f else ''})"
                            for p, (n, s, f) in MIX.items())
                + ". The caller's proxy writes exactly one outbound record per request with the status the client "
                  "got and the expected response flags (none for answers of the application); the destination's "
                  "proxy writes exactly one inbound record per arrival the echo journaled (so two for a retried "
                  "request, none for an abort or no route) with the status the echo answered. None missing, none "
                  f"extra; records are read for up to {FLUSH_DEADLINE_S:g} s (they are flushed in batches).",
    features=[Feature.ACCESS_LOGS, Feature.RETRIES, Feature.FAULT_INJECTION_ABORT], profile=Profile.OBSERVABILITY,
    level=Level.EXTENDED)
def test_access_logs(mesh, observability_mesh, evidence):
    problems = measure_access_logs(mesh, observability_mesh, evidence)
    assert not problems, "access logs wrong: " + "; ".join(problems[:12]) + (
        f" (and {len(problems) - 12} more)" if len(problems) > 12 else "")


def measure_access_logs(mesh, deployment, evidence) -> list[str]:
    logs = require(mesh, MeshAccessLogs, "read the mesh's access logs")
    echo = deployment.echo(DEST)
    err_key, retry_key = uuid.uuid4().hex, uuid.uuid4().hex
    echo.program_sync(err_key, [], default={"status": 500})
    echo.program_sync(retry_key, [], default={"status": 503})
    keys = {"/err/": err_key, "/retry/": retry_key}
    already = {w: len(logs.access_log(w)[0]) for w in (CLIENT, DEST)}
    mark = journal_mark(echo)
    calls = []
    for prefix, (n, _, _) in MIX.items():
        for i in range(n):
            key = keys.get(prefix) or uuid.uuid4().hex
            calls.append(lambda prefix=prefix, i=i, key=key: send(mesh, CLIENT, "logged", f"{prefix}{i}", key))
    sent: list[Sent] = in_parallel(calls, CONCURRENCY)
    arrivals = arrivals_by_request(echo, mark, {s.request_id for s in sent})
    ids = {s.request_id for s in sent}

    def read() -> tuple[list[AccessLogRecord], list[str]]:
        records, problems = [], []
        for w in (CLIENT, DEST):
            got, bad = logs.access_log(w)
            records += [r for r in got[already[w]:] if r.x_request_id in ids]
            problems += bad
        return records, problems

    records, bad_lines = poll(read, lambda got: not judge_access_logs(sent, arrivals, got[0]),
                              timeout=FLUSH_DEADLINE_S)
    problems = bad_lines + judge_access_logs(sent, arrivals, records)
    evidence.samples = len(sent)
    evidence["client_statuses"] = dict(Counter(str(s.status) for s in sent))
    evidence["records"] = dict(Counter(f"{r.direction} {r.response_code} {'+'.join(r.response_flags) or '-'}"
                                       for r in records))
    evidence.measure("echo_arrivals", sum(len(a) for a in arrivals.values()))
    evidence.measure("records", len(records))
    return problems


def _prefix(path: str) -> str:
    return "/" + path.strip("/").split("/")[0] + "/"


def judge_access_logs(sent: Sequence[Sent], arrivals: Mapping[str, list[dict]],
                      records: Sequence[AccessLogRecord]) -> list[str]:
    """Problems (none: every hop logged every request once, right)."""
    problems: list[str] = []
    by_request: dict[tuple[str, str], list[AccessLogRecord]] = defaultdict(list)
    for r in records:
        by_request[(r.x_request_id or "", r.direction)].append(r)
    missing, extra = Counter(), Counter()
    for s in sent:
        n, status, flags = MIX[_prefix(s.path)]
        if s.status != status:
            problems.append(f"{s.path}: the client got {s.status}, the mix needs {status}")
            continue
        out = by_request.get((s.request_id, "outbound"), [])
        if len(out) != 1:
            (missing if not out else extra)[f"outbound {status}"] += abs(len(out) - 1)
        else:
            r = out[0]
            if r.response_code != s.status or r.response_flags != flags or r.path != s.path:
                problems.append(f"{s.path} outbound record says {r.method} {r.path} {r.response_code} "
                                f"{'+'.join(r.response_flags) or '-'}, want {s.path} {s.status} {'+'.join(flags) or '-'}")
        came = arrivals.get(s.request_id, [])
        inbound = by_request.get((s.request_id, "inbound"), [])
        if len(inbound) != len(came):
            (missing if len(inbound) < len(came) else extra)[f"inbound {status}"] += abs(len(inbound) - len(came))
        else:
            want_codes = sorted(status if _prefix(s.path) != "/ok/" else 200 for _ in came)
            got_codes = sorted(r.response_code for r in inbound)
            if got_codes != want_codes or any(r.response_flags for r in inbound):
                problems.append(f"{s.path} inbound records say {got_codes} "
                                f"{[('+'.join(r.response_flags) or '-') for r in inbound]}, want {want_codes} and no flags")
    problems += [f"{n} {what} record(s) missing" for what, n in sorted(missing.items())]
    problems += [f"{n} {what} record(s) extra" for what, n in sorted(extra.items())]
    return problems
