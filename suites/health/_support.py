"""How the health checks drive a mesh and judge what the echoes saw.

The client sends one request at a time to ``hc``, every ``PERIOD_S``; the echo of each endpoint journals
every arrival (``t_ns`` on CLOCK_MONOTONIC, the harness's own clock) and counts the health probes it
answered, apart from the journal. A check makes one endpoint's ``/healthz`` answer 503 over the echo's
control port and times, from that flip, when the endpoint's arrivals stop and (after the flip back) when
they start again. The ``judge_*`` functions are pure, so tests/harness/test_health_decisions.py can try
them on made-up timelines.

The bounds come from the scenario (see :func:`removal_bound_s`): a mesh that probes every ``interval``
needs ``threshold`` probes, the first of which comes at most one interval (plus the previous probe's round
trip) after the flip; each probe's round trip is at most ``timeout`` (a slower one is a failure), so
``threshold × interval + (threshold + 1) × timeout`` covers Envoy's schedule (next probe ``interval``
after the previous result) and HAProxy's; ``PROPAGATION_S`` covers a request already picked for the
endpoint when it left, and the check's own request spacing. A return also has a lower bound: the
``healthy_threshold`` passing probes all start after the recovery and each comes at least ``interval``
after the previous one, so the endpoint cannot be back before ``(healthy_threshold − 1) × interval``
after the control call that recovers it was sent (less ``TIMER_SLACK_S``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from fixtures.echo.answer import echo_identity
from harness.adapters.base import HttpRequest, HttpResponse
from harness.stats import ErrorBound
from meshscenario import HealthCheck

CLIENT = "client-v1-0"
SERVICE = "hc"
INSTANCES = 3
KEY_HEADER = "x-echo-key"
PERIOD_S = 0.02  # one request every 20 ms: a round-robin cycle of the 3 endpoints is 60 ms
PROPAGATION_S = 0.1  # a request in flight when the endpoint left (transit, < 10 ms) and 60 ms of cycle
WARM_UP_S = 3.0  # every endpoint must answer within this before a check flips anything
FAILING_STATUS = 503
TIMER_SLACK_S = 0.02  # slack under the lower bound (kept from when the flip was read after the control call returned)
# Errors rule: requests with no HTTP answer or a 5xx of the mesh's own (a reset on a busy machine) are
# tolerated up to 0.1% (harness.stats.ErrorBound, Ville: a correct mesh fails it with probability ≤ 0.01%);
# any other answer that is not the echo's 200 (a 200 of another service, a 404) fails at once.
ALPHA_ERRORS = 0.0001
ERRORS = ErrorBound(rate=0.001, alternative=0.01, alpha=ALPHA_ERRORS)
# The timing rules' share of each check's 0.1% (removal bound and hold; return bound and earliest return).
# The probe part of the bounds is a worst case (tests/harness/test_health_decisions.py); what is left is the
# machine's noise, simulated under the quiet, loaded, whole-ms timer, stall and wakeup models
# (harness/error_budgets_health.py: ≤ 0.001% measured; 0.078% when 0.1% of everything stalls 195 ms or more:
# bench/results/error_budgets_health-2026-12-04.md).
ALPHA_TIMING = 0.0009


def workload(instance: int) -> str:
    return f"{SERVICE}-v1-{instance}"


def removal_bound_s(hc: HealthCheck) -> float:
    """Flip to the last arrival at the endpoint: unhealthy_threshold × interval + tolerance."""
    return hc.unhealthy_threshold * hc.interval + (hc.unhealthy_threshold + 1) * hc.timeout + PROPAGATION_S


def return_bound_s(hc: HealthCheck) -> float:
    """Recovery to the first arrival again: healthy_threshold × interval + tolerance (plus one
    round-robin cycle until the endpoint's turn comes)."""
    return (hc.healthy_threshold * hc.interval + (hc.healthy_threshold + 1) * hc.timeout + PROPAGATION_S
            + INSTANCES * PERIOD_S)


def earliest_return_s(hc: HealthCheck) -> float:
    """Recovery to the first arrival again, at the earliest: healthy_threshold passes, interval apart."""
    return max(0.0, (hc.healthy_threshold - 1) * hc.interval - TIMER_SLACK_S)


@dataclass(frozen=True)
class Sent:
    sent_ns: int
    status: int | None
    endpoint: str | None  # the workload whose echo answered; None for an answer of the mesh's own


def answered_by(response: HttpResponse) -> str | None:
    who = echo_identity(response.body) if response.status == 200 else None
    return who.workload if who is not None and who.service == SERVICE else None


def drive(mesh, key: str, *, max_s: float, stop: Callable[[list[Sent]], bool] = lambda sent: False,
          sent: list[Sent] | None = None) -> list[Sent]:
    """Sequential requests, one every ``PERIOD_S`` (a late answer: the next goes at once), until
    ``stop(sent)`` or ``max_s``; at most ``max_s / PERIOD_S + 1`` requests. Appends to ``sent``."""
    sent = [] if sent is None else sent
    start = time.monotonic()
    next_send = start
    for _ in range(int(max_s / PERIOD_S) + 1):
        if time.monotonic() - start >= max_s or stop(sent):
            break
        wait = next_send - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # pacing of the request stream, not synchronisation
        t = time.monotonic_ns()
        response = mesh.send(CLIENT, HttpRequest(host=SERVICE, path="/hc", headers={KEY_HEADER: key}))
        sent.append(Sent(t, response.status, answered_by(response)))
        next_send = max(next_send + PERIOD_S, time.monotonic() - PERIOD_S)
    return sent


def all_answering(sent: Sequence[Sent]) -> bool:
    """The last round-robin cycles (2 × 3 answers) came from all three endpoints, every one a 200."""
    tail = sent[-2 * INSTANCES:]
    return len(tail) == 2 * INSTANCES and {s.endpoint for s in tail} == {workload(i) for i in range(INSTANCES)}


def warm_up(mesh, key: str) -> str | None:
    """Wait (sending) until every endpoint answers: hosts may be pending their first health check right
    after a deploy, and the previous check's endpoint may still be on its way back. The problem, or None."""
    sent = drive(mesh, key, max_s=WARM_UP_S, stop=all_answering)
    if all_answering(sent):
        return None
    seen = sorted({s.endpoint for s in sent[-2 * INSTANCES:] if s.endpoint})
    statuses = sorted({str(s.status) for s in sent})
    return (f"not every endpoint answered within {WARM_UP_S:.0f} s before the health path was failed "
            f"(the last {2 * INSTANCES} answers came from {seen}, statuses {statuses})")


def marks(deployment, key: str) -> dict[str, int]:
    """The journal seq each endpoint's next arrival will get: read only from here on."""
    return {workload(i): deployment.echo(workload(i)).journal_page_sync(key=uuid.uuid4().hex)[1]
            for i in range(INSTANCES)}


def arrival_times(deployment, since: Mapping[str, int], key: str) -> dict[str, list[int]]:
    return {w: [a["t_ns"] for a in deployment.echo(w).journal_sync(key=key, since=mark)]
            for w, mark in since.items()}


def probes(deployment, endpoint: str) -> int:
    """Health probes the endpoint's echo has answered so far (all callers' proxies together)."""
    return int(deployment.echo(endpoint).stats_sync()["health_probes"])


# -- decisions (pure) ---------------------------------------------------------------------------------

def removal_late_batch(last_arrival_s, bound_s: float):
    """The removal rule on many runs at once: the failing endpoint's last arrival, in seconds after the
    flip, later than ``bound_s`` (what :func:`judge_removal` fails as late; harness/error_budgets_health.py
    simulates it)."""
    import numpy as np
    return np.asarray(last_arrival_s) > bound_s


def return_fails_batch(took_s, bound_s: float, earliest_s: float, took_since_asked_s=None) -> dict:
    """The return rules on many runs at once (those of :func:`judge_return`): first arrival after the
    flip back later than ``bound_s`` after the control call returned ("late", ``took_s``) or earlier than
    ``earliest_s`` after it was sent ("early", ``took_since_asked_s``, default ``took_s``)."""
    import numpy as np
    took = np.asarray(took_s)
    since_asked = took if took_since_asked_s is None else np.asarray(took_since_asked_s)
    return {"late": took > bound_s, "early": since_asked < earliest_s}


def judge_removal(failed_ns: Sequence[int], others_ns: Mapping[str, Sequence[int]], sent: Sequence[Sent], *,
                  flip_ns: int, end_ns: int, bound_s: float, probes_seen: int) -> list[str]:
    """The problems of the traffic after the failing endpoint's health path was flipped at ``flip_ns``
    (requests sent until ``end_ns``): it must get no arrival later than ``bound_s`` after the flip, and
    the others must keep serving every request (each gets arrivals after the bound; every answer 200)."""
    problems: list[str] = []
    limit = flip_ns + int(bound_s * 1e9)
    after = [t for t in failed_ns if t > flip_ns]
    late = [t for t in after if t > limit]
    if late:
        last_s = (late[-1] - flip_ns) / 1e9
        tail = [s for s in sent if s.sent_ns > limit]
        share = len(late) / max(1, len(tail))
        if share > 1 / (INSTANCES + 1):
            problems.append(
                f"the endpoint whose health path answers {FAILING_STATUS} was never taken out (its failed health "
                f"checks were ignored: {probes_seen} probes reached it): {len(late)} of the {len(tail)} requests "
                f"sent later than {bound_s:.2f} s after the flip still arrived there, the last {last_s:.2f} s after it")
        else:
            problems.append(
                f"the endpoint whose health path answers {FAILING_STATUS} still got {len(late)} arrivals later than "
                f"{bound_s:.2f} s after the flip (the last {last_s:.2f} s after it): taken out late, or back "
                f"while failing")
    for endpoint, times in sorted(others_ns.items()):
        if not any(t > limit for t in times):
            problems.append(f"the healthy endpoint {endpoint} got no traffic once the failing one was out")
    after_flip = [s for s in sent if s.sent_ns > flip_ns]
    failed = [s for s in after_flip if s.endpoint is None]
    errors = [s for s in failed if s.status is None or s.status >= 500]
    wrong = [s for s in failed if not (s.status is None or s.status >= 500)]
    if wrong or ERRORS.exceeded(len(errors), len(after_flip)):
        statuses = sorted({str(s.status) for s in failed})
        problems.append(f"{len(failed)} of {len(after_flip)} requests after the flip were not answered by an echo "
                        f"(statuses {statuses}; errors rule: {ERRORS.verdict(len(errors), len(after_flip))}, any "
                        f"other answer fails at once): traffic must keep flowing to the healthy endpoints")
    if end_ns <= limit:
        problems.append(f"the check sent nothing later than {bound_s:.2f} s after the flip")
    return problems


def judge_return(failed_ns: Sequence[int], *, back_ns: int, end_ns: int, bound_s: float, earliest_s: float,
                 healthy_threshold: int, asked_ns: int | None = None) -> list[str]:
    """The problems of the failing endpoint's return once its health path answers 200 again: the control
    call was sent at ``asked_ns`` (default ``back_ns``) and returned at ``back_ns``, so the echo flipped in
    between. Its first arrival must come within ``bound_s`` of ``back_ns`` (the latest the flip can have
    been) and no earlier than ``earliest_s`` after ``asked_ns`` (the earliest it can have been): a stall of
    the control call's way back, which delays ``back_ns``, cannot make a return look early."""
    asked_ns = back_ns if asked_ns is None else asked_ns
    back = [t for t in failed_ns if t > asked_ns]
    if not back:
        return [f"the endpoint never got traffic again: no arrival in the {(end_ns - back_ns) / 1e9:.2f} s after its "
                f"health path answered 200 again (want one within {bound_s:.2f} s)"]
    took = (back[0] - back_ns) / 1e9
    if took > bound_s:
        return [f"the endpoint came back late: its first arrival {took:.2f} s after its health path answered 200 "
                f"again, want within {bound_s:.2f} s"]
    since_asked = (back[0] - asked_ns) / 1e9
    if since_asked < earliest_s:
        return [f"the endpoint came back too early: its first arrival {since_asked * 1e3:.0f} ms after the harness "
                f"asked its health path to answer 200 again, before healthy_threshold={healthy_threshold} passing "
                f"probes could have been seen (at least {earliest_s * 1e3:.0f} ms)"]
    return []


def out_after_s(failed_ns: Sequence[int], flip_ns: int) -> float:
    """Seconds from the flip to the failing endpoint's last arrival (0: none after the flip)."""
    after = [t for t in failed_ns if t > flip_ns]
    return (after[-1] - flip_ns) / 1e9 if after else 0.0
