"""Helpers of the breaking suite: the concurrency sweep, bursts, and the pure decisions of each check.

The sweep (:func:`sweep`) offers a stated concurrency to one destination, step by step: ``c`` client
threads, each sending on its own schedule (one request every ``period_s``, phases spread evenly; a
thread whose answer came late sends at once), for ``step_s`` seconds. Every answer is kept with the
client's send and answer times (CLOCK_MONOTONIC, the clock of the echo's journal), so a check can put
each journal arrival (with the in-flight count the echo saw at it) in its step.

The decisions (``judge_*``) are pure functions of those records: the suite's checks, the sensitivity
tests and the unit tests (tests/harness/test_breaking_decisions.py) all use them.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from fixtures.echo.answer import echo_identity
from harness.adapters.base import HttpRequest, HttpResponse
from harness.stats import ErrorBound

CLIENT = "client-v1-0"
KEY_HEADER = "x-echo-key"
REQUEST_HEADER = "x-meshconform-request"  # a sweep request's own id: matches its answer to its journal arrival
# Errors rule (every check of the suite): answers with no HTTP status or a 5xx of the mesh's own that is not a
# marked overflow answer (a reset on a busy machine) are tolerated up to 0.1% of requests (Ville: a correct mesh
# fails it with probability <= 0.01%, the rule's share of each check's 0.1%); any other answer that is not
# the echo's fails at once.
ALPHA_ERRORS = 0.0001
ERRORS = ErrorBound(rate=0.001, alternative=0.01, alpha=ALPHA_ERRORS)
OVERLOAD_HEADER = "x-envoy-overloaded"  # Envoy's overload marker on a breaker's own 503
MAX_THREADS = 32


def workload(service: str, instance: int = 0) -> str:
    return f"{service}-v1-{instance}"


def is_echo_answer(response: HttpResponse) -> bool:
    """The answer came from an echo instance (its JSON names the instance), not from the mesh."""
    return response.status is not None and echo_identity(response.body) is not None


def answered_by(response: HttpResponse) -> str | None:
    """The workload name of the echo that answered, or None for an answer of the mesh's own."""
    who = echo_identity(response.body) if response.status is not None else None
    return who.workload if who is not None else None


@dataclass(frozen=True)
class Answer:
    level: int  # the offered concurrency of the step (or burst) it belongs to
    sent_ns: int
    answered_ns: int
    status: int | None
    overloaded: bool  # carried the overload marker
    from_echo: bool
    key: str = ""
    request_id: str = ""  # the sweep's id of the request (its REQUEST_HEADER), "" in bursts

    @property
    def latency_ms(self) -> float:
        return (self.answered_ns - self.sent_ns) / 1e6

    @property
    def overflow(self) -> bool:
        """The mesh's own 503 with the overload marker: a breaker's rejection."""
        return self.status == 503 and self.overloaded and not self.from_echo

    @property
    def error(self) -> bool:
        """No HTTP answer, or a 5xx of the mesh's own that is not a marked rejection (what a reset on a
        busy machine looks like): counted by the errors rule."""
        return not self.from_echo and not self.overflow and (self.status is None or self.status >= 500)


def _answer(level: int, sent_ns: int, response: HttpResponse, key: str = "", request_id: str = "") -> Answer:
    marker = (response.header(OVERLOAD_HEADER) or "").lower() == "true"
    return Answer(level, sent_ns, time.monotonic_ns(), response.status, marker, is_echo_answer(response), key,
                  request_id)


@dataclass
class Step:
    level: int
    start_ns: int
    end_ns: int  # when its last answer came
    answers: list[Answer] = field(default_factory=list)


def sweep(mesh, host: str, key: str, levels: Sequence[int], *, step_s: float, period_s: float,
          max_requests_per_thread: int = 1000) -> list[Step]:
    """Offer each concurrency of ``levels`` to ``host`` for ``step_s`` (bounded: ``step_s`` plus the
    last answers, and at most ``max_requests_per_thread`` per thread); the steps in order."""
    steps = []
    for level in levels:
        if not 1 <= level <= MAX_THREADS:
            raise ValueError(f"offered concurrency {level} is outside 1..{MAX_THREADS}")
        step = Step(level, time.monotonic_ns(), 0)
        stop_at = time.monotonic() + step_s
        lock = threading.Lock()

        def worker(j: int, level: int = level, step: Step = step, stop_at: float = stop_at) -> None:
            next_send = time.monotonic() + j * period_s / level
            for i in range(max_requests_per_thread):
                wait = next_send - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # pacing: this thread's next scheduled send, not synchronisation
                if time.monotonic() >= stop_at:
                    return
                rid = f"{level}.{j}.{i}"
                sent = time.monotonic_ns()
                response = mesh.send(CLIENT, HttpRequest(host=host, path="/",
                                                         headers={KEY_HEADER: key, REQUEST_HEADER: rid}))
                answer = _answer(level, sent, response, key, rid)
                with lock:
                    step.answers.append(answer)
                next_send += period_s

        threads = [threading.Thread(target=worker, args=(j,), daemon=True) for j in range(level)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=step_s + 30.0)  # every send has the client's 10 s timeout
        step.end_ns = time.monotonic_ns()
        steps.append(step)
    return steps


def burst(mesh, host: str, keys: Sequence[str], level: int) -> list[Answer]:
    """``len(keys)`` requests released together (a barrier), one thread each; answers in key order."""
    barrier = threading.Barrier(len(keys))
    answers: list[Answer | None] = [None] * len(keys)

    def one(i: int) -> None:
        barrier.wait(timeout=10.0)
        sent = time.monotonic_ns()
        response = mesh.send(CLIENT, HttpRequest(host=host, path="/", headers={KEY_HEADER: keys[i]}))
        answers[i] = _answer(level, sent, response, keys[i])

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(keys))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30.0)
    missing = [keys[i] for i, a in enumerate(answers) if a is None]
    if missing:
        raise RuntimeError(f"{len(missing)} requests of the burst never returned (client timeout is 10 s)")
    return answers  # type: ignore[return-value]


def levels_for(limit: int) -> list[int]:
    """0.5x, 1x, 2x and 4x the limit (at least 1)."""
    return sorted({max(1, round(limit * f)) for f in (0.5, 1, 2, 4)})


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by the nearest-rank method; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# -- evidence of a sweep -----------------------------------------------------------------------------

def arrivals_in(step: Step, arrivals: Iterable[dict]) -> list[dict]:
    return [a for a in arrivals if step.start_ns <= a["t_ns"] <= step.end_ns]


def sweep_rows(steps: Sequence[Step], arrivals: Sequence[dict], hold_ms: float) -> list[dict]:
    rows = []
    for step in steps:
        seen = arrivals_in(step, arrivals)
        fast = [a for a in step.answers if a.overloaded and a.latency_ms <= hold_ms / 2]
        lat = [a.latency_ms for a in step.answers]
        rows.append({
            "offered_concurrency": step.level, "requests": len(step.answers),
            "ok": sum(1 for a in step.answers if a.status == 200 and a.from_echo),
            "overloaded_503": sum(1 for a in step.answers if a.status == 503 and a.overloaded),
            "other": sum(1 for a in step.answers if not (a.status == 200 and a.from_echo)
                         and not (a.status == 503 and a.overloaded)),
            "fast_503_share": round(len(fast) / len(step.answers), 4) if step.answers else 0.0,
            "echo_arrivals": len(seen),
            "echo_max_in_flight": max((a["in_flight"] for a in seen), default=0),
            "latency_p50_ms": round(percentile(lat, 0.5), 2), "latency_p99_ms": round(percentile(lat, 0.99), 2),
            "overload_latency_p50_ms": round(percentile([a.latency_ms for a in step.answers if a.overloaded], 0.5), 2),
            "overload_latency_p95_ms": round(percentile([a.latency_ms for a in step.answers if a.overloaded], 0.95), 2),
        })
    return rows


def plot_sweep(evidence, rows: Sequence[dict], limit: int, what: str) -> None:
    x = [r["offered_concurrency"] for r in rows]
    evidence.plot(f"{what}: in flight at the echo against offered concurrency", kind="line",
                  xlabel="offered concurrency", ylabel="requests", data={"x": x, "series": {
                      "peak in flight at the echo": [r["echo_max_in_flight"] for r in rows],
                      f"limit ({limit})": [limit] * len(rows)}})
    evidence.plot(f"{what}: share of fast 503 (overloaded) answers", kind="line", xlabel="offered concurrency",
                  ylabel="share", data={"x": x, "series": {"fast 503 share": [r["fast_503_share"] for r in rows]}})
    evidence.plot(f"{what}: client latency", kind="line", xlabel="offered concurrency", ylabel="ms",
                  data={"x": x, "series": {"p50": [r["latency_p50_ms"] for r in rows],
                                           "p99": [r["latency_p99_ms"] for r in rows]}})


# -- decisions ---------------------------------------------------------------------------------------

def judge_admission(rows: Sequence[dict], steps: Sequence[Step], *, cap: int, cap_name: str,
                    reject_above: int | None, hold_ms: float, overload_p50_bound_ms: float) -> list[str]:
    """The problems of one breaker sweep (empty: it passed).

    ``cap``: the in-flight count the echo may never exceed, and must reach at the steps above it.
    ``reject_above``: the offered concurrency up to which nothing may be rejected and above which
    overflow must be rejected (None: nothing may ever be rejected, the excess waits).
    ``overload_p50_bound_ms``: the median latency of the overflow answers must be below it.
    A rejection is the mesh's own 503 with the overload marker; errors (:attr:`Answer.error`: no answer,
    or another 5xx of the mesh's own, an unmarked 503 among them) are judged over the whole sweep by
    :data:`ERRORS`; any other answer that is not the echo's 200 fails at once.
    """
    problems = []
    peak = max((r["echo_max_in_flight"] for r in rows), default=0)
    if peak > cap:
        at = [r["offered_concurrency"] for r in rows if r["echo_max_in_flight"] > cap]
        problems.append(f"in-flight at the echo reached {peak} > {cap_name} {cap} (at offered concurrency "
                        f"{at}): the breaker let more through than its limit")
    over = [r for r in rows if r["offered_concurrency"] > cap]
    reached = max((r["echo_max_in_flight"] for r in over), default=cap)
    if over and reached < cap:
        problems.append(f"in-flight at the echo peaked at {reached} < {cap_name} {cap} although "
                        f"{max(r['offered_concurrency'] for r in over)} were offered: the limit is lower than configured")
    errors = unmarked = total = 0
    for row, step in zip(rows, steps):
        c = row["offered_concurrency"]
        total += len(step.answers)
        errors += sum(1 for a in step.answers if a.error)
        step_unmarked = sum(1 for a in step.answers if a.error and a.status == 503)
        unmarked += step_unmarked
        wrong = [a for a in step.answers if not (a.status == 200 and a.from_echo) and not a.overflow and not a.error]
        if wrong:
            kinds = sorted({str(a.status) for a in wrong})
            problems.append(f"at offered concurrency {c}, {len(wrong)} answers were neither the echo's 200 nor "
                            f"a 503 of the mesh's (statuses {kinds})")
        rejected = sum(1 for a in step.answers if a.overflow)
        if reject_above is None or c <= reject_above:
            if rejected:
                bound = "the excess must wait (pending), not be rejected" if reject_above is None else \
                    f"at or below {reject_above} nothing may be rejected"
                problems.append(f"at offered concurrency {c}, {rejected} of {row['requests']} requests were "
                                f"rejected: {bound}")
        else:
            turned_away = sum(1 for a in step.answers if not (a.status == 200 and a.from_echo)
                              and not (a.error and a.status != 503))  # rejected, however answered; not a reset
            if turned_away == 0:
                problems.append(f"at offered concurrency {c} (> {reject_above}) no request was rejected: "
                                f"overflow queued instead of rejected (client latency p50 "
                                f"{row['latency_p50_ms']} ms, hold {hold_ms:.0f} ms)")
            elif row["overloaded_503"] and row["overload_latency_p50_ms"] > overload_p50_bound_ms:
                problems.append(f"at offered concurrency {c} the overflow 503s were slow: median "
                                f"{row['overload_latency_p50_ms']} ms > {overload_p50_bound_ms:.0f} ms (hold "
                                f"{hold_ms:.0f} ms): overflow waited instead of being rejected at once")
    if ERRORS.exceeded(errors, total):
        what = (f"{unmarked} 503 answers of the mesh lacked the overload marker {OVERLOAD_HEADER}: true; "
                if unmarked else "")
        problems.append(f"{what}errors rule: {ERRORS.verdict(errors, total)} (no answer, or a 5xx of the mesh's "
                        f"own that is not a marked rejection)")
    return problems


def waits_ms(steps: Sequence[Step], arrivals: Sequence[dict]) -> tuple[list[float], int]:
    """Each accepted request's wait at the mesh, in ms: its arrival in the echo's journal (matched by its
    REQUEST_HEADER) less the client's send time, one CLOCK_MONOTONIC; and how many accepted requests had
    no arrival of their own in the journal."""
    at: dict[str, int] = {}
    for a in arrivals:
        rid = next((v for k, v in a.get("headers", {}).items() if k.lower() == REQUEST_HEADER), None)
        if rid is not None:
            at.setdefault(rid, a["t_ns"])
    waits, unmatched = [], 0
    for step in steps:
        for a in step.answers:
            if a.status == 200 and a.from_echo:
                t = at.get(a.request_id)
                if t is None:
                    unmatched += 1
                else:
                    waits.append((t - a.sent_ns) / 1e6)
    return waits, unmatched


def judge_pending_wait(steps: Sequence[Step], arrivals: Sequence[dict], *, max_wait_ms: float, allowed: int,
                       hold_ms: float, pending: int, connections: int) -> list[str]:
    """The pending limit, judged on waits (:func:`waits_ms`): send to arrival at the echo, which leaves out
    the hold and the answer's way back. A queued request of a mesh that keeps ``pending`` waits for at most
    ``ceil(pending / connections)`` connection(s) to free, each less than a hold after it was queued;
    more than ``allowed`` accepted requests waiting longer than ``max_wait_ms`` fail (a single wait
    stretched by a stall on the way to the echo is tolerated)."""
    waits, unmatched = waits_ms(steps, arrivals)
    problems = []
    if unmatched:
        problems.append(f"{unmatched} accepted requests had no arrival with their {REQUEST_HEADER} in the echo's "
                        f"journal: the mesh dropped the header or the journal missed them")
    long = sorted((w for w in waits if w > max_wait_ms), reverse=True)
    if len(long) > allowed:
        problems.append(f"{len(long)} accepted requests waited longer than {max_wait_ms:.0f} ms before reaching the "
                        f"echo (up to {long[0]:.0f} ms; {allowed} allowed): more requests waited than "
                        f"max_pending_requests {pending} allows (with {connections} connections a queued request waits "
                        f"for at most {-(-pending // connections)} connection(s) to free, each within a hold of "
                        f"{hold_ms:.0f} ms)")
    return problems


def max_overlap(times_ns: Sequence[int], window_ns: int) -> int:
    """The most events of ``times_ns`` inside any half-open window [t, t + window) of the given length."""
    ordered = sorted(times_ns)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - window_ns:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def judge_retry_bursts(bursts: dict[int, list[Answer]], arrivals: dict[str, list[dict]], *, max_retries: int,
                       hold_ms: float) -> list[str]:
    """The problems of the retry-breaker bursts: ``bursts`` by offered concurrency, ``arrivals`` by key.

    Every request's first try fails (503) and its retry is held ``hold_ms`` by the echo, so a retry
    is outstanding at the mesh for at least ``hold_ms`` after it reached the echo: retries arriving
    within any window of ``hold_ms`` were outstanding together, and there may be at most max_retries.
    """
    problems = []
    retry_times = [a[1]["t_ns"] for a in arrivals.values() if len(a) >= 2]
    overlap = max_overlap(retry_times, int(hold_ms * 1e6))
    if overlap > max_retries:
        problems.append(f"{overlap} retries were outstanding at once (arrived at the echo within {hold_ms:.0f} ms, "
                        f"each held that long) > max_retries {max_retries}: retries over max_retries were attempted")
    errors = total = 0
    for level, answers in sorted(bursts.items()):
        counts = [len(arrivals.get(a.key, [])) for a in answers]
        total += len(answers)
        errors += sum(1 for a in answers if a.error)
        judged = [(a, n) for a, n in zip(answers, counts) if not a.error]  # an error: the errors rule's
        retried = sum(1 for _, n in judged if n == 2)
        too_many = [n for n in counts if n > 2]
        if too_many:
            problems.append(f"burst of {level}: requests arrived {max(too_many)} times with attempts=1")
        if level <= max_retries and retried != len(judged):
            problems.append(f"burst of {level} (<= max_retries {max_retries}): only {retried} of {len(judged)} "
                            f"requests were retried")
        if level > max_retries and retried == 0 and judged:
            problems.append(f"burst of {level}: no request was retried at all")
        for a, n in judged:
            want = 200 if n == 2 else 503
            if a.status != want:
                problems.append(f"burst of {level}: a request with {n} arrival(s) got {a.status}, want {want}")
                break
    if ERRORS.exceeded(errors, total):
        problems.append(f"errors rule: {ERRORS.verdict(errors, total)} (no answer, or a 5xx of the mesh's own)")
    return problems


# -- outlier detection ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sent:
    sent_ns: int
    status: int | None
    endpoint: str | None  # the echo workload that answered (None: the mesh's own answer)


def drive(mesh, host: str, key: str, *, period_s: float, max_s: float, max_requests: int,
          done=lambda sent: False) -> list[Sent]:
    """Sequential requests to ``host``, one every ``period_s`` (late answers: the next goes at once), until
    ``done(sent)`` or ``max_s`` or ``max_requests``."""
    sent: list[Sent] = []
    start = time.monotonic()
    next_send = start
    while len(sent) < max_requests and time.monotonic() - start < max_s and not done(sent):
        wait = next_send - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # pacing of the request stream, not synchronisation
        t = time.monotonic_ns()
        response = mesh.send(CLIENT, HttpRequest(host=host, path="/", headers={KEY_HEADER: key}))
        sent.append(Sent(t, response.status, answered_by(response)))
        next_send = max(next_send + period_s, time.monotonic() - period_s)
    return sent


def runs(times_ns: Sequence[int], split_ns: int) -> list[list[int]]:
    """Arrival times cut into runs wherever two consecutive arrivals are more than ``split_ns`` apart."""
    out: list[list[int]] = []
    for t in sorted(times_ns):
        if out and t - out[-1][-1] <= split_ns:
            out[-1].append(t)
        else:
            out.append([t])
    return out


def run_split_ns(base_s: float) -> int:
    """Where a failing endpoint's arrivals are cut into runs: 0.9 × the base ejection time. Within a run they
    come one round-robin cycle apart (a few ms); between runs an ejection of at least ``base_s`` (exact), so
    only a stall of more than ``0.9 × base_s`` inside a run can cut it."""
    return int(0.9 * base_s * 1e9)


def judge_ejections(bad_ns: Sequence[int], end_ns: int, *, consecutive_5xx: int, base_s: float,
                    interval_s: float, max_ejection_s: float, tolerance_s: float, ejections: int = 2,
                    errors_ns: Sequence[int] = ()) -> list[str]:
    """The problems of a failing endpoint's arrival times (all its answers 5xx, sequential traffic).

    Expected: runs of exactly ``consecutive_5xx`` arrivals (ejected inline at the last), separated by
    gaps of at least ``base_s · n`` (exact: the return comes after the ejection, which comes after the
    n-th run's last arrival) and at most ``base_s · n + interval_s + tolerance_s`` (un-ejection waits for
    the next interval tick; the tolerance covers the traffic's own spacing and timer lateness), for the
    first ``ejections`` ejections, and then traffic again. ``errors_ns``: send times of the requests the
    client got no echo answer for (a reset): one sent after the previous run and before the next may have
    been a 5xx of the failing endpoint that never reached its echo, so a run may be that many arrivals
    short (never longer).
    """
    problems: list[str] = []
    found = runs(bad_ns, run_split_ns(base_s))
    if not found:
        return ["the failing endpoint got no arrival at all"]
    for i in range(ejections):
        run, n = found[i], i + 1
        low = min(base_s * n, max_ejection_s)
        high = low + interval_s + tolerance_s
        if i == len(found) - 1:  # no arrival after this run
            if len(run) > consecutive_5xx:
                problems.append(f"not ejected after {consecutive_5xx} consecutive 5xx: the failing endpoint got "
                                f"{len(run)} arrivals in a row and was never left out")
            else:
                silent = (end_ns - run[-1]) / 1e9
                problems.append(f"ejection {n} never ended: no arrival at the failing endpoint for {silent:.2f} s "
                                f"after it (want its return within {high:.2f} s)")
            return problems
        after = found[i - 1][-1] if i else -1
        lost = sum(1 for t in errors_ns if after < t < found[i + 1][0])  # sent between the two runs' ends
        if not consecutive_5xx - lost <= len(run) <= consecutive_5xx:
            problems.append(f"ejection {n} came after {len(run)} consecutive 5xx, want exactly {consecutive_5xx} "
                            f"(Envoy ejects inline at the consecutive_5xx-th)")
        gap = (found[i + 1][0] - run[-1]) / 1e9
        if gap < low:
            why = ("ejection time not multiplied by the number of ejections" if n > 1 else "too short")
            problems.append(f"ejection {n} lasted {gap * 1e3:.0f} ms < base_ejection_time x {n} = {low * 1e3:.0f} ms: "
                            f"{why}")
        elif gap > high:
            problems.append(f"ejection {n} lasted {gap * 1e3:.0f} ms > {high * 1e3:.0f} ms (base_ejection_time x {n} "
                            f"+ interval {interval_s * 1e3:.0f} ms + tolerance {tolerance_s * 1e3:.0f} ms)")
    return problems
