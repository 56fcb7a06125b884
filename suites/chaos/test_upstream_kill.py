"""An upstream instance killed under load (SPEC §4 Chaos): errors stay bounded and stop once the mesh
routes around the dead instance.

Destination ``kill`` has three instances behind round robin with an active HTTP health check and no
retries (scenario.yaml), so the mechanism under test is the health check alone: the killed echo's
``/healthz``, probed through its still-running sidecar, stops answering 200 and the mesh takes the
instance out. An open-loop load (``RATE`` requests/s, at most 16 in flight) runs before and after the
kill; the kill is SIGKILL of the echo process (``ProcessControl.kill("<workload>/echo")``), timed on
the harness's CLOCK_MONOTONIC just before the signal, and the echo is restarted when the check ends
(a lease, harness/faults/process.py). Deterministic timing check: no statistics, no retries.
"""

from __future__ import annotations

import uuid

from harness.adapters.base import ProcessControl
from harness.checks import conformance
from harness.faults.process import killed
from harness.features import Feature, Level, Profile
from suites.conftest import require

from ._decisions import judge_upstream_kill, kill_error_budget
from ._support import OpenLoad, status_counts, timeline, warm_up, workload
from .conftest import SCENARIO

SERVICE = "kill"
INSTANCES = 3
HC = SCENARIO.policy(SERVICE).load_balancing.health_check
PROPAGATION_S = 0.1  # the kill call itself, a request already picked for the instance, transit
# the health suite's removal bound: the first failing probe starts at most one interval after the kill,
# each of unhealthy_threshold probes takes at most `timeout`, HAProxy-like meshes need them all
STOP_BOUND_S = HC.unhealthy_threshold * HC.interval + (HC.unhealthy_threshold + 1) * HC.timeout + PROPAGATION_S
RATE = 100.0  # requests/s, open loop
PRE_S = 1.0  # load before the kill
HOLD_S = 2.0  # load after the stop bound: the killed instance's third of it (~67 requests) must all succeed
VICTIM = workload(SERVICE, 0)
SURVIVORS = [workload(SERVICE, i) for i in range(1, INSTANCES)]
MECHANISM = (f"active health check GET {HC.path} every {HC.interval * 1e3:.0f} ms, timeout {HC.timeout * 1e3:.0f} ms, "
             f"unhealthy_threshold {HC.unhealthy_threshold}")


@conformance(
    short_name="MeshChaosUpstreamKill",
    description=f"3 instances behind round robin, open-loop load of {RATE:.0f} requests/s; one instance's upstream "
                f"process is killed (SIGKILL) after {PRE_S:.0f} s. The scenario relies on the {MECHANISM} (no "
                f"retries, no outlier detection) to route around it. Pass: nothing fails before the kill; no request "
                f"sent later than {STOP_BOUND_S * 1e3:.0f} ms after the kill fails ({HC.unhealthy_threshold} x interval "
                f"+ {HC.unhealthy_threshold + 1} x timeout + {PROPAGATION_S * 1e3:.0f} ms, the health suite's removal "
                f"bound), over the next {HOLD_S:.0f} s; at most (requests in flight at the kill + 1/3 of those sent "
                f"within the bound, round robin's exact share) fail; both survivors keep answering. Deterministic: "
                f"false failures only from timing (a stall longer than the bound's tolerance).",
    features=[Feature.CHAOS_UPSTREAM_KILL, Feature.HEALTH_CHECK_ACTIVE], profile=Profile.CHAOS, level=Level.CORE)
def test_upstream_kill(mesh, chaos_mesh, evidence):
    problems = measure_upstream_kill(mesh, chaos_mesh, evidence)
    assert not problems, "upstream kill not survived: " + "; ".join(problems)


def measure_upstream_kill(mesh, chaos_mesh, evidence) -> list[str]:
    """The check's run and decision: its problems (none: it passed)."""
    require(mesh, ProcessControl, "kill an upstream instance")
    key = uuid.uuid4().hex
    problem = warm_up(mesh, SERVICE, "/", key, [VICTIM, *SURVIVORS])
    if problem:
        return [problem]
    load = OpenLoad(mesh, SERVICE, "/", key, rate=RATE, max_s=PRE_S + STOP_BOUND_S + HOLD_S + 5.0)
    with load:
        load.wait_answered_after(load.start_ns, int(RATE * PRE_S), timeout=PRE_S + 10.0,
                                 what="the load's answers before the kill")
        with killed(mesh, f"{VICTIM}/echo") as fault:  # restarted when the block ends, after the load
            kill_ns = fault.at_ns
            load.wait_answered_after(kill_ns + int((STOP_BOUND_S + HOLD_S) * 1e9), 1,
                                     timeout=STOP_BOUND_S + HOLD_S + 10.0, what="the load's answers after the hold")
            load.stop()
            shots = load.join()
    failed = [s for s in shots if not s.ok and s.done_ns >= kill_ns]
    budget = kill_error_budget(shots, kill_ns=kill_ns, stop_bound_s=STOP_BOUND_S, instances=INSTANCES)
    evidence.samples = len(shots)
    evidence["mechanism"] = MECHANISM
    evidence["answers_per_endpoint"] = {w: sum(1 for s in shots if s.endpoint == w) for w in [VICTIM, *SURVIVORS]}
    evidence["statuses"] = status_counts(shots)
    evidence.measure("failed_requests", len(failed))
    evidence.measure("failed_requests_allowed", budget)
    if failed:
        evidence.measure("last_failure_sent_after_kill", round((failed[-1].sent_ns - kill_ns) / 1e9, 4), unit="s")
    evidence.interval("failures_stop_within", 0.0, STOP_BOUND_S, confidence=1.0, method="tolerance")
    evidence.measure("send_lag_max", round(max((s.sent_ns - s.due_ns) / 1e9 for s in shots), 4), unit="s")
    timeline(evidence, shots, kill_ns, f"upstream kill: answers per endpoint ({VICTIM}'s echo killed at 0 s)",
             {"kill": kill_ns, "stop bound": kill_ns + int(STOP_BOUND_S * 1e9)})
    return judge_upstream_kill(shots, kill_ns=kill_ns, killed=VICTIM, survivors=SURVIVORS, stop_bound_s=STOP_BOUND_S,
                               instances=INSTANCES, mechanism="its active health check")
