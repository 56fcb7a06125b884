"""The mesh's own fault injection: abort and delay percentages and magnitudes (SPEC §4 Resilience).

Both checks use an exact two-sided binomial test at alpha = 0.001 (false-fail rate ≤ 0.1%) with n
chosen so that a percentage off by 5 points either way is detected with power ≥ 99% (exact pmf sums,
see ``_decisions``). Every request carries its own key, so the journal shows which requests arrived.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from harness.checks import conformance
from harness.features import Feature, Level, Profile

from ._decisions import ALPHA, FAULT_DELTA, POWER, ShareVerdict, fault_sample_size, judge_share
from ._support import BACKEND, arrivals_by_key, flush, journal_mark, request, send_all
from .conftest import SCENARIO

CONCURRENCY = 32

_ABORT = next(r for r in SCENARIO.routes if r.name == "fault-abort").fault.abort
_DELAY = next(r for r in SCENARIO.routes if r.name == "fault-delay").fault.delay
ABORT_P, ABORT_STATUS = _ABORT.percentage / 100, _ABORT.http_status
DELAY_P, DELAY_S = _DELAY.percentage / 100, _DELAY.fixed_delay
DELAY_EARLY_S, DELAY_LATE_S = 0.005, 0.100  # an injected delay is fixed_delay −5 ms .. +100 ms
OUTLIER_SHARE = 0.05  # scheduling stalls on a loaded 2-vCPU machine: at most 5% of delayed requests later


@dataclass(frozen=True)
class FaultSample:
    keys: list[str]
    statuses: list[int | None]
    elapsed: list[float]
    arrived: dict[str, int]  # key -> arrivals at the echo


def collect_fault_sample(mesh, deployment, path: str, n: int) -> FaultSample:
    """Send ``n`` requests with their own keys on ``path``; read which of them reached the echo."""
    echo = deployment.echo(BACKEND)
    keys = [uuid.uuid4().hex for _ in range(n)]
    mark = journal_mark(echo)
    answers = send_all(mesh, [request(path, k) for k in keys], concurrency=CONCURRENCY)
    flush(mesh, deployment)
    grouped = arrivals_by_key(echo, mark, keys)
    return FaultSample(keys, [a.status for a in answers], [a.elapsed_s for a in answers],
                       {k: len(v) for k, v in grouped.items()})


def decide_abort(sample: FaultSample) -> ShareVerdict:
    aborted = sum(1 for s in sample.statuses if s == ABORT_STATUS)
    return judge_share(aborted, len(sample.keys), ABORT_P, what=f"abort ({ABORT_STATUS})")


def decide_delay(sample: FaultSample) -> ShareVerdict:
    slow = sum(1 for e in sample.elapsed if e >= DELAY_S - DELAY_EARLY_S)
    return judge_share(slow, len(sample.keys), DELAY_P, what=f"delay ({DELAY_S * 1e3:.0f} ms)")


def _record_share(evidence, verdict: ShareVerdict, label: str) -> None:
    evidence.samples = verdict.n
    evidence["counts"] = {label: verdict.count, "other": verdict.n - verdict.count}
    evidence.measure(f"{label}_share", verdict.count / verdict.n, unit="ratio")
    evidence.measure("p_value", verdict.p_value)
    evidence.measure("power_minus_5_points", verdict.power_low)
    evidence.measure("power_plus_5_points", verdict.power_high)
    evidence.interval(f"{label}_share", *verdict.interval, confidence=1 - ALPHA, method="clopper-pearson")
    evidence.plot(f"{label} share", kind="bar", xlabel="", ylabel="share",
                  data={"labels": [label], "values": [verdict.count / verdict.n], "low": [verdict.interval[0]],
                        "high": [verdict.interval[1]], "expected": [verdict.p0]})
    evidence.note(verdict.reason)


N_ABORT = fault_sample_size(ABORT_P)
N_DELAY = fault_sample_size(DELAY_P)


@conformance(
    short_name="MeshFaultInjectionAbort",
    description=f"Fault abort {ABORT_P:.0%} with status {ABORT_STATUS}: over {N_ABORT} requests the share "
                f"answered {ABORT_STATUS} passes an exact binomial test of {ABORT_P:.2f} (false-fail rate ≤ "
                f"{ALPHA:.1%}, power ≥ {POWER:.0%} against ±{FAULT_DELTA * 100:.0f} points, n computed exactly), "
                f"every other request gets 200, and no aborted request ever arrives at the echo while every "
                f"other one arrives exactly once.",
    features=[Feature.FAULT_INJECTION_ABORT], profile=Profile.RESILIENCE, level=Level.CORE)
def test_fault_abort(mesh, resilience_mesh, evidence):
    sample = collect_fault_sample(mesh, resilience_mesh, "/fault-abort", N_ABORT)
    verdict = decide_abort(sample)
    _record_share(evidence, verdict, "aborted")
    odd = sorted({str(s) for s in sample.statuses if s not in (200, ABORT_STATUS)})
    assert not odd, f"fault abort: answers other than 200 and {ABORT_STATUS}: {odd}"
    aborted_arrived = sum(1 for k, s in zip(sample.keys, sample.statuses) if s == ABORT_STATUS and sample.arrived.get(k))
    passed_wrong = sum(1 for k, s in zip(sample.keys, sample.statuses) if s == 200 and sample.arrived.get(k) != 1)
    evidence["aborted_requests_that_arrived"] = aborted_arrived
    evidence["answered_requests_not_arriving_once"] = passed_wrong
    assert aborted_arrived == 0, f"fault abort: {aborted_arrived} aborted requests still arrived at the echo"
    assert passed_wrong == 0, f"fault abort: {passed_wrong} answered requests did not arrive exactly once"
    assert verdict.passed, f"fault abort percentage wrong: {verdict.reason}"


@conformance(
    short_name="MeshFaultInjectionDelay",
    description=f"Fault delay {DELAY_P:.0%} with fixed_delay {DELAY_S * 1e3:.0f} ms: over {N_DELAY} requests "
                f"(all 200) the share slower than fixed_delay − 5 ms passes an exact binomial test of {DELAY_P:.2f} "
                f"(false-fail rate ≤ {ALPHA:.1%}, power ≥ {POWER:.0%} against ±{FAULT_DELTA * 100:.0f} points), "
                f"at most {OUTLIER_SHARE:.0%} of slow requests took more than fixed_delay + {DELAY_LATE_S * 1e3:.0f} ms, the median added delay within ±20 ms of fixed_delay.",
    features=[Feature.FAULT_INJECTION_DELAY], profile=Profile.RESILIENCE, level=Level.CORE)
def test_fault_delay(mesh, resilience_mesh, evidence):
    sample = collect_fault_sample(mesh, resilience_mesh, "/fault-delay", N_DELAY)
    verdict = decide_delay(sample)
    _record_share(evidence, verdict, "delayed")
    slow = sorted(e for e in sample.elapsed if e >= DELAY_S - DELAY_EARLY_S)
    fast = sorted(e for e in sample.elapsed if e < DELAY_S - DELAY_EARLY_S)
    evidence.plot("client time, delayed and not", kind="hist", xlabel="ms",
                  data={"series": {"delayed": [e * 1e3 for e in slow], "not delayed": [e * 1e3 for e in fast]}})
    bad = sorted({str(s) for s in sample.statuses if s != 200})
    assert not bad, f"fault delay: answers other than 200: {bad}"
    assert slow and fast, f"fault delay percentage wrong: {len(slow)} slow and {len(fast)} fast requests"
    added = slow[len(slow) // 2] - fast[len(fast) // 2]
    evidence.measure("median_added_delay", added, unit="s")
    out = [round(e * 1e3, 1) for e in slow if not DELAY_S - DELAY_EARLY_S <= e <= DELAY_S + DELAY_LATE_S]
    assert verdict.passed, f"fault delay percentage wrong: {verdict.reason}"
    evidence["delayed_outside_window_ms"] = out
    assert len(out) <= OUTLIER_SHARE * len(slow), (
        f"fault delay magnitude wrong: {len(out)} of {len(slow)} delayed requests took more than "
        f"{(DELAY_S + DELAY_LATE_S) * 1e3:.0f} ms (ms): {out[:5]}")
    assert abs(added - DELAY_S) <= 0.020, (f"fault delay magnitude wrong: median added delay {added * 1e3:.1f} ms, "
                                           f"want {DELAY_S * 1e3:.0f} ± 20 ms")
