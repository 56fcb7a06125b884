"""Retry backoff measured as gaps between arrivals at the echo, judged on their distribution.

Every request of the check fails twice (503, 503) and then succeeds, so each gives one gap before
retry 1 and one before retry 2. The gaps also contain the round trip of the failed try's answer and
the new try (the overhead); a control route with the same retries but a 1 µs backoff measures the
overhead's distribution in the same batch (the requests of both routes are interleaved), and the gaps
are judged against full jitter convolved with it (see ``_decisions.judge_backoff``).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

from harness.checks import conformance
from harness.features import Feature, Level, Profile

from ._decisions import ALPHA, BackoffVerdict, judge_backoff
from ._support import BACKEND, arrivals_by_key, flush, journal_mark, program_all, request, send_all
from .conftest import SCENARIO

REQUESTS = 150  # gaps per retry number
CONTROL_REQUESTS = 150  # 2 control gaps each: the overhead distribution the gaps are judged against
FAILURES = 2  # each request fails this many times: gaps before retry 1..FAILURES
CONCURRENCY = 4  # more in flight inflates and spreads the floor

_BACKOFF = next(r for r in SCENARIO.routes if r.name == "backoff").retries.backoff
BASE, CAP = _BACKOFF.base_interval, _BACKOFF.effective_max


@dataclass(frozen=True)
class BackoffSample:
    gaps: dict[int, list[float]]  # retry number -> seconds between the failed try and the retry
    control: list[float]  # the same gaps on the no-backoff control route
    statuses: dict[int | None, int]


def _gaps(mesh, deployment, batches: dict[str, int]) -> dict[str, tuple[dict[int, list[float]], dict]]:
    """Gaps per retry number for ``n`` requests on each path, sent interleaved in one shuffled batch so
    the control route and the checked route see the same load."""
    echo = deployment.echo(BACKEND)
    keys = {path: [uuid.uuid4().hex for _ in range(n)] for path, n in batches.items()}
    program_all(echo, {k: [{"status": 503}] * FAILURES for ks in keys.values() for k in ks})
    mark = journal_mark(echo)
    order = [(path, k) for path, ks in keys.items() for k in ks]
    random.Random(len(order)).shuffle(order)
    answers = dict(zip(order, send_all(mesh, [request(path, k) for path, k in order], concurrency=CONCURRENCY)))
    flush(mesh, deployment)
    grouped = arrivals_by_key(echo, mark, [k for ks in keys.values() for k in ks])
    out = {}
    for path, ks in keys.items():
        statuses: dict[int | None, int] = {}
        gaps: dict[int, list[float]] = {r: [] for r in range(1, FAILURES + 1)}
        for key in ks:
            status = answers[(path, key)].status
            statuses[status] = statuses.get(status, 0) + 1
            seen = grouped.get(key, [])
            for retry, (before, after) in enumerate(zip(seen, seen[1:FAILURES + 1]), start=1):
                gaps[retry].append((after["t_ns"] - before["t_ns"]) / 1e9)
        out[path] = (gaps, statuses)
    return out


def collect_backoff_sample(mesh, deployment) -> BackoffSample:
    """Run the control and the backoff requests, interleaved, and return the measured gaps (the bench
    calls this)."""
    measured = _gaps(mesh, deployment, {"/floor": CONTROL_REQUESTS, "/backoff": REQUESTS})
    control, _ = measured["/floor"]
    gaps, statuses = measured["/backoff"]
    return BackoffSample(gaps, [g for v in control.values() for g in v], statuses)


def decide_backoff(sample: BackoffSample) -> BackoffVerdict:
    return judge_backoff(sample.gaps, sample.control, base=BASE, cap=CAP)


@conformance(
    short_name="MeshRetryBackoffFullJitter",
    description=f"Backoff follows Envoy's full jitter (base {BASE * 1e3:.0f} ms, max {CAP * 1e3:.0f} ms): over "
                f"{REQUESTS} requests each failing {FAILURES}× then succeeding, the gaps between tries at the echo, "
                f"are Uniform[0, min((2^n−1)·base, max)) plus the overhead measured on an interleaved no-backoff "
                f"control route ({CONTROL_REQUESTS} requests), for retry n by a KS test per retry number (false-fail rate "
                f"≤ {ALPHA:.1%} overall; power 1.0 against constant and against no-jitter backoff in 2,000 "
                f"seeded simulations each), none shorter than the least overhead − 5 ms nor later than the bound + the largest overhead + 25 ms.",
    features=[Feature.RETRY_BACKOFF, Feature.RETRIES], profile=Profile.RESILIENCE, level=Level.CORE)
def test_backoff_full_jitter(mesh, resilience_mesh, evidence):
    sample = collect_backoff_sample(mesh, resilience_mesh)
    evidence.samples = sum(len(g) for g in sample.gaps.values())
    evidence["statuses"] = {str(k): v for k, v in sample.statuses.items()}
    missing = [r for r, g in sample.gaps.items() if len(g) != REQUESTS]
    assert sample.statuses.get(200) == REQUESTS and not missing, (
        f"retries wrong before backoff could be judged: statuses {sample.statuses}, gaps per retry "
        f"{ {r: len(g) for r, g in sample.gaps.items()} } (want {REQUESTS} each)")
    verdict = decide_backoff(sample)
    evidence.measure("floor", verdict.floor_s, unit="s")
    evidence["control_gaps_ms"] = [round(g * 1e3, 3) for g in sample.control]
    for n, result in verdict.ks.items():
        adjusted = verdict.adjusted[n]
        evidence.measure(f"retry{n}_mean_gap", sum(adjusted) / len(adjusted), unit="s")
        evidence.measure(f"retry{n}_bound", verdict.bounds_s[n], unit="s")
        evidence.measure(f"retry{n}_ks_statistic", result.statistic)
        evidence.measure(f"retry{n}_ks_p_value", result.p_value)
        evidence[f"retry{n}_gaps_ms"] = [round(g * 1e3, 3) for g in adjusted]
    evidence.plot("backoff gaps minus floor, per retry number", kind="cdf", xlabel="ms",
                  data={"series": {f"retry {n} (bound {verdict.bounds_s[n] * 1e3:.0f} ms)": [g * 1e3 for g in v]
                                   for n, v in verdict.adjusted.items()}})
    evidence.note(verdict.reason)
    assert verdict.passed, verdict.reason
