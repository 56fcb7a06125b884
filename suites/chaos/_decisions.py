"""The chaos checks' decisions: pure functions of what the load saw (tests/harness/test_chaos_decisions.py).

A :class:`Shot` is one request of a load: when it was due, sent and answered (CLOCK_MONOTONIC ns, the
clock of the echo journal and of the fault leases), its status and the echo workload that answered it
(None: the mesh answered itself, or nothing did). Every ``judge_*`` returns its problems; none means
the check passed. The bounds they apply are derived and stated beside each function; the random one
(the partition's retries) has its false-failure rate computed exactly (:func:`partition_false_fail_rate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Shot:
    due_ns: int  # when the open-loop schedule wanted it sent
    sent_ns: int
    done_ns: int
    status: int | None
    endpoint: str | None  # the echo workload that answered 200 (None: any other answer, or none)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.endpoint is not None

    @property
    def latency_s(self) -> float:
        return (self.done_ns - self.sent_ns) / 1e9


def _statuses(shots: Iterable[Shot]) -> list[str]:
    return sorted({str(s.status) if s.status is not None else f"none ({(s.error or '?').split(' (')[0]})"
                   for s in shots})


def _after_s(t_ns: int, t0_ns: int) -> float:
    return (t_ns - t0_ns) / 1e9


# -- ChaosUpstreamKill --------------------------------------------------------------------------------

def kill_error_budget(shots: Sequence[Shot], *, kill_ns: int, stop_bound_s: float, instances: int) -> int:
    """The most failures a round-robin mesh may show when one of ``instances`` dies at ``kill_ns`` and its
    health check takes it out within ``stop_bound_s``: every request in flight at the kill, and the
    killed instance's share of the requests sent within the bound. Round robin gives one endpoint at most
    ⌈n / instances⌉ of n consecutive picks, so the share is exact, not a tolerance."""
    end = kill_ns + int(stop_bound_s * 1e9)
    in_flight = sum(1 for s in shots if s.sent_ns < kill_ns <= s.done_ns)
    window = sum(1 for s in shots if kill_ns <= s.sent_ns <= end)
    return in_flight + math.ceil(window / instances)


def judge_upstream_kill(shots: Sequence[Shot], *, kill_ns: int, killed: str, survivors: Sequence[str],
                        stop_bound_s: float, instances: int, mechanism: str) -> list[str]:
    """The problems of a load during which ``killed``'s upstream was killed at ``kill_ns``.

    Rules: nothing fails before the kill; failures stop within ``stop_bound_s`` (no request sent later
    fails); there are at most :func:`kill_error_budget` of them; every survivor answers requests sent
    after the bound; the killed instance answers nothing sent after the kill."""
    problems: list[str] = []
    end = kill_ns + int(stop_bound_s * 1e9)
    failed = [s for s in shots if not s.ok]
    early = [s for s in failed if s.done_ns < kill_ns]
    if early:
        problems.append(f"{len(early)} requests failed before the kill (statuses {_statuses(early)}): the mesh was "
                        f"not serving every instance when the fault began")
    tail = [s for s in shots if s.sent_ns > end]
    late = [s for s in tail if not s.ok]
    if late:
        problems.append(f"errors did not stop: {len(late)} of the {len(tail)} requests sent later than "
                        f"{stop_bound_s:.2f} s after the kill failed (statuses {_statuses(late)}), the last sent "
                        f"{_after_s(late[-1].sent_ns, kill_ns):.2f} s after it: the mesh kept routing to the killed "
                        f"instance ({mechanism} did not take it out)")
    budget = kill_error_budget(shots, kill_ns=kill_ns, stop_bound_s=stop_bound_s, instances=instances)
    counted = [s for s in failed if s.done_ns >= kill_ns]
    if len(counted) > budget:
        problems.append(f"{len(counted)} requests failed after the kill, more than the {budget} allowed (those in "
                        f"flight at the kill and 1/{instances} of the requests sent within {stop_bound_s:.2f} s)")
    if not tail:
        problems.append(f"the load sent nothing later than {stop_bound_s:.2f} s after the kill")
    for survivor in survivors:
        if tail and not any(s.endpoint == survivor for s in tail):
            problems.append(f"the surviving instance {survivor} answered none of the {len(tail)} requests sent "
                            f"after the bound")
    ghost = [s for s in shots if s.sent_ns > kill_ns and s.endpoint == killed]
    if ghost:
        problems.append(f"the killed instance {killed} still answered {len(ghost)} requests sent after the kill: "
                        f"the kill did not take")
    return problems


# -- ChaosPartition -----------------------------------------------------------------------------------

def partition_false_fail_rate(requests: int, *, attempts: int, instances: int) -> float:
    """Exact chance that a correct mesh fails the partition check: each try draws one of ``instances``
    endpoints uniformly and independently (random balancing), and a request fails only when all
    ``attempts + 1`` tries draw the partitioned one."""
    per_request = (1.0 / instances) ** (attempts + 1)
    return -math.expm1(requests * math.log1p(-per_request))


def judge_partition(shots: Sequence[Shot], *, start_ns: int, end_ns: int, partitioned: str,
                    latency_bound_s: float) -> list[str]:
    """The problems of a load during which ``partitioned``'s hop refused connections (``start_ns`` after
    the partition was in place, ``end_ns`` before it was healed): every request sent in between is
    answered 200 by another instance within ``latency_bound_s`` of its send; nothing failed before."""
    problems: list[str] = []
    during = [s for s in shots if start_ns <= s.sent_ns and s.done_ns <= end_ns]
    before = [s for s in shots if s.done_ns < start_ns]
    if any(not s.ok for s in before):
        bad = [s for s in before if not s.ok]
        problems.append(f"{len(bad)} requests failed before the partition (statuses {_statuses(bad)})")
    if not during:
        return problems + ["no request was sent and answered while the endpoint was partitioned"]
    failed = [s for s in during if not s.ok]
    if failed:
        problems.append(f"the service did not keep answering: {len(failed)} of the {len(during)} requests sent while "
                        f"one endpoint was partitioned failed (statuses {_statuses(failed)}): its refused connections "
                        f"were not retried on the other endpoints")
    slow = [s for s in during if s.ok and s.latency_s > latency_bound_s]
    if slow:
        problems.append(f"{len(slow)} of the {len(during)} answers took longer than {latency_bound_s * 1e3:.0f} ms "
                        f"(the slowest {max(s.latency_s for s in slow) * 1e3:.0f} ms)")
    ghost = [s for s in during if s.endpoint == partitioned]
    if ghost:
        problems.append(f"the partitioned endpoint {partitioned} answered {len(ghost)} requests: the partition was "
                        f"not in place")
    return problems


# -- ChaosSlowNetwork ---------------------------------------------------------------------------------

def judge_route_timeout(elapsed_s: Sequence[float], statuses: Sequence[int | None], *, timeout_s: float,
                        early_s: float, late_s: float, hop_latency_s: float) -> list[str]:
    """Every request over a hop slower than the route timeout gets the mesh's 504 at the timeout:
    ``timeout − early ≤ elapsed ≤ timeout + late``."""
    problems: list[str] = []
    answered = [(e, s) for e, s in zip(elapsed_s, statuses) if s == 200]
    if answered:
        problems.append(f"the route timeout did not fire: {len(answered)} of {len(statuses)} requests got 200 after "
                        f"{min(e for e, _ in answered) * 1e3:.0f}-{max(e for e, _ in answered) * 1e3:.0f} ms over a hop "
                        f"adding {hop_latency_s * 1e3:.0f} ms (timeout {timeout_s * 1e3:.0f} ms)")
    other = [s for s in statuses if s not in (200, 504)]
    if other:
        problems.append(f"{len(other)} requests got {sorted({str(s) for s in other})} instead of the timeout's 504")
    timed_out = [e for e, s in zip(elapsed_s, statuses) if s == 504]
    outside = [e for e in timed_out if not timeout_s - early_s <= e <= timeout_s + late_s]
    if outside:
        problems.append(f"{len(outside)} timeouts fired outside [{(timeout_s - early_s) * 1e3:.0f}, "
                        f"{(timeout_s + late_s) * 1e3:.0f}] ms: at {sorted(round(e * 1e3) for e in outside)} ms")
    return problems


def judge_per_try_timeout(requests: Sequence[tuple[int | None, int, Sequence[int]]], *, per_try_s: float,
                          tries: int, early_s: float, late_s: float) -> list[str]:
    """Each request is ``(status, done_ns, arrival_ns of each try at the echo)``. Over a hop slower than
    the per-try timeout every try is cut: the echo sees exactly ``tries`` arrivals, the client gets 504,
    the last try ends within ``per_try − early`` and ``per_try + late`` after it reached the echo, and
    no earlier try was cut sooner than ``per_try − early`` after it arrived. (How long after that cut
    the next try arrives is connection setup over the slow hop, reported, not judged.)"""
    problems: list[str] = []
    for i, (status, done_ns, arrivals) in enumerate(requests, 1):
        if status == 200:
            problems.append(f"request {i}: the per-try timeout did not fire: 200 after {len(arrivals)} tries over "
                            f"a hop slower than the per-try timeout {per_try_s * 1e3:.0f} ms")
            continue
        if status != 504:
            problems.append(f"request {i}: got {status}, want the timeout's 504")
        if len(arrivals) != tries:
            problems.append(f"request {i}: the echo saw {len(arrivals)} tries, want exactly {tries}")
        if not arrivals:
            continue
        for n, (a, b) in enumerate(zip(arrivals, arrivals[1:]), 1):
            gap = (b - a) / 1e9
            if gap < per_try_s - early_s:
                problems.append(f"request {i}: try {n + 1} arrived {gap * 1e3:.0f} ms after try {n}: try {n} was cut "
                                f"before the per-try timeout {per_try_s * 1e3:.0f} ms")
        last = (done_ns - arrivals[-1]) / 1e9
        if not per_try_s - early_s <= last <= per_try_s + late_s:
            problems.append(f"request {i}: the last try ended {last * 1e3:.0f} ms after it arrived, outside "
                            f"[{(per_try_s - early_s) * 1e3:.0f}, {(per_try_s + late_s) * 1e3:.0f}] ms")
    return problems


# -- ChaosSidecarRestart ------------------------------------------------------------------------------

def judge_restart(shots: Sequence[Shot], *, begin_ns: int, ready_ns: int, recovery_s: float) -> list[str]:
    """The problems of a load during which the destination's sidecar was restarted: the restart began at
    ``begin_ns`` and the adapter reported it ready (and its configuration in effect) at ``ready_ns``.
    Only requests in flight at ``begin_ns`` or sent before ``ready_ns + recovery_s`` may fail; every
    later one must succeed, and some must have been sent."""
    problems: list[str] = []
    limit = ready_ns + int(recovery_s * 1e9)
    early = [s for s in shots if not s.ok and s.done_ns < begin_ns]
    if early:
        problems.append(f"{len(early)} requests failed before the restart began (statuses {_statuses(early)})")
    tail = [s for s in shots if s.sent_ns > limit]
    late = [s for s in tail if not s.ok]
    if not tail:
        problems.append(f"the load sent nothing later than {recovery_s:.2f} s after the restarted sidecar was ready")
    elif late:
        problems.append(f"traffic did not recover: {len(late)} of the {len(tail)} requests sent later than "
                        f"{recovery_s:.2f} s after the restarted sidecar was ready failed (statuses "
                        f"{_statuses(late)}), the last sent {_after_s(late[-1].sent_ns, ready_ns):.2f} s after it")
    return problems


def outage(shots: Sequence[Shot], begin_ns: int) -> tuple[float, float] | None:
    """(first, last) failed request's send time in s after ``begin_ns``; None when nothing failed."""
    failed = [s.sent_ns for s in shots if not s.ok and s.done_ns >= begin_ns]
    if not failed:
        return None
    return _after_s(min(failed), begin_ns), _after_s(max(failed), begin_ns)


# -- ChaosControlPlaneKill ----------------------------------------------------------------------------

def judge_control_plane_kill(shots: Sequence[Shot], after: Sequence[Shot], *, kill_ns: int, back_begin_ns: int,
                             back_ns: int, changed_ns: int | None, old: str, new: str) -> list[str]:
    """The problems of a load during which the control plane was killed at ``kill_ns`` and started again
    from ``back_begin_ns`` (the adapter reported it back and in effect at ``back_ns``), a configuration
    change (``old`` → ``new``) having been applied while it was down; ``changed_ns`` is when that apply
    returned (in effect; None: it never did). ``after``: sequential requests once the load ended.

    Every request of the load is answered 200 (zero errors, before, during and after the outage); by
    ``old`` when sent before the control plane came back (the last configuration is kept, and nothing
    can change it while the control plane is away); by ``old`` or ``new`` while it came back; by ``new``
    when sent after both its return and the change being in effect; every request of ``after`` by ``new``
    (the change made while it was down took effect once it returned)."""
    problems: list[str] = []
    settled_ns = max(back_ns, changed_ns) if changed_ns is not None else None
    phases = [("before the kill", lambda s: s.sent_ns < kill_ns, {old}),
              ("while the control plane was down", lambda s: kill_ns <= s.sent_ns < back_begin_ns, {old}),
              ("while the control plane came back", lambda s: back_begin_ns <= s.sent_ns <= (settled_ns or back_ns),
               {old, new}),
              ("after the control plane was back and the change in effect",
               lambda s: settled_ns is not None and s.sent_ns > settled_ns, {new}),
              ("after the control plane was back (the change never in effect)",
               lambda s: settled_ns is None and s.sent_ns > back_ns, {old, new})]
    for name, inside, allowed in phases:
        sent = [s for s in shots if inside(s)]
        failed = [s for s in sent if not s.ok]
        if failed:
            last = "" if name != "while the control plane was down" else \
                f", the last {_after_s(failed[-1].sent_ns, kill_ns):.2f} s after the kill"
            problems.append(f"the data plane did not keep serving {name}: {len(failed)} of {len(sent)} requests "
                            f"failed (statuses {_statuses(failed)}){last}")
        moved = [s for s in sent if s.ok and s.endpoint not in allowed]
        if moved and allowed == {old}:
            problems.append(f"{len(moved)} requests sent {name} were answered by {sorted({s.endpoint for s in moved})}, "
                            f"not by {old}: the last configuration was not kept")
        elif moved:
            problems.append(f"the change made while the control plane was down did not take effect once it returned: "
                            f"{len(moved)} of {len(sent)} requests sent {name} were answered by "
                            f"{sorted({s.endpoint for s in moved})}, not by {new}")
    if not any(kill_ns <= s.sent_ns < back_begin_ns for s in shots):
        problems.append("no request was sent while the control plane was down")
    if not after:
        problems.append("no request was sent after the configuration change")
    wrong = [s for s in after if s.endpoint != new]
    if wrong:
        problems.append(f"the change made while the control plane was down did not take effect once it returned: "
                        f"{len(wrong)} of {len(after)} requests sent after it were not answered by {new} (answers "
                        f"{sorted({str(s.endpoint or s.status) for s in wrong})})")
    return problems


@dataclass(frozen=True)
class Renewal:
    """What one workload's presented certificate did around a control-plane outage. ``down_*``: the
    certificate it presented at the end of the outage (serial; its half-life and expiry as seconds after
    the control plane was back, negative when earlier); ``renewed_s``: seconds after the control plane was
    back when it first presented another one (None: not within the bound); ``error``: why a handshake
    with it failed (e.g. an expired certificate), if one did."""
    workload: str
    down_serial: str
    down_half_life_s: float
    down_expiry_s: float
    renewed_s: float | None
    error: str | None = None


def judge_renewal(renewals: Sequence[Renewal], *, bound_s: float, ttl_s: float) -> list[str]:
    """Certificate renewal resumes after the outage: every watched workload, whose certificate presented
    while the control plane was down was past half its lifetime when the control plane came back (so its
    renewal fell inside the outage: SPIFFE/Istio agents and the reference renew at half-life at the
    latest) and not yet expired, presents a new certificate within ``bound_s`` after the return. A
    certificate that was not yet due, or that expired during the outage, is a premise the check states
    and does not meet (``ttl_s`` is the scenario's cert_ttl): reported, never passed."""
    problems: list[str] = []
    if not renewals:
        problems.append("no workload's certificate was watched")
    for r in renewals:
        if r.error:
            problems.append(f"{r.workload}: a handshake with it failed after the outage ({r.error})")
        if r.down_expiry_s <= 0:
            problems.append(f"{r.workload}: its certificate {r.down_serial} expired {-r.down_expiry_s:.1f} s before the "
                            f"control plane was back: the premise (no certificate expires during the outage, "
                            f"cert_ttl {ttl_s:.0f} s) does not hold")
        elif r.down_half_life_s > 0:
            problems.append(f"{r.workload}: its certificate {r.down_serial} was not due for renewal during the outage "
                            f"(half its lifetime passes {r.down_half_life_s:.1f} s after the control plane was back): "
                            f"the premise (a renewal falls inside the outage, cert_ttl {ttl_s:.0f} s) does not hold")
        elif r.renewed_s is None:
            problems.append(f"certificate renewal did not resume after the control plane came back: {r.workload} still "
                            f"presented {r.down_serial} {bound_s:.0f} s after it, past half its lifetime since "
                            f"{-r.down_half_life_s:.1f} s before the return and expiring {r.down_expiry_s:.1f} s after it")
    return problems


@dataclass(frozen=True)
class Probe:
    """One look at a sidecar started while the control plane was down: when (CLOCK_MONOTONIC ns), what
    its readiness said, and what a request through it got (a :class:`Shot`)."""
    at_ns: int
    ready: bool
    shot: Shot


def judge_started_while_down(probes: Sequence[Probe], arrivals_ns: Sequence[int], *, workload: str, back_begin_ns: int,
                             started_s: float | None, bound_s: float, after: Shot | None) -> list[str]:
    """A sidecar (``workload``) started while the control plane was down: every probe taken before the
    control plane was started again found it not ready, and no request through it was answered by an
    echo nor arrived at one (``arrivals_ns``: the destination echoes' arrivals of the probes' key; one
    before ``back_begin_ns`` is a request served without the mesh's certificate and configuration).
    After the return it becomes ready within ``bound_s`` (``started_s``: seconds after the return when
    the start returned; None: not within the bound) and serves (``after``: a request through it then)."""
    problems: list[str] = []
    down = [p for p in probes if p.at_ns < back_begin_ns]
    if len(down) < 3:
        problems.append(f"only {len(down)} probes of {workload} were taken while the control plane was down (want 3)")
    ready = [p for p in down if p.ready]
    if ready:
        problems.append(f"a sidecar started while the control plane was down reported ready: {len(ready)} of "
                        f"{len(down)} readiness probes of {workload} said ready before it could have a certificate "
                        f"and configuration from the control plane")
    served = [p for p in down if p.shot.ok]
    early = [t for t in arrivals_ns if t < back_begin_ns]
    if served or early:
        problems.append(f"a sidecar started while the control plane was down served unverified: {len(served)} of "
                        f"{len(down)} requests through {workload} were answered by {sorted({p.shot.endpoint for p in served})} "
                        f"and the destination's echoes saw {len(early)} of them arrive before the control plane was back")
    if started_s is None:
        problems.append(f"the sidecar of {workload} started while the control plane was down was not ready "
                        f"{bound_s:.0f} s after the control plane was back")
    elif after is None or not after.ok:
        problems.append(f"the sidecar of {workload} started while the control plane was down did not serve once "
                        f"ready (status {None if after is None else after.status})")
    return problems
