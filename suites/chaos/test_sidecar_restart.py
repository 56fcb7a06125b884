"""A destination's sidecar restarted under load (SPEC §4 Chaos): traffic recovers within a stated time.

Destination ``restart`` has one instance and no retries (scenario.yaml), so every request sent while its
sidecar is down fails and the outage is visible. An open-loop load runs before, through and after
``ProcessControl.restart("<workload>")``, which stops the sidecar (gracefully if it runs), starts it
again and returns once it is ready and the mesh's configuration is in effect again (the adapter's
observation, never a sleep). Ground truth: each request's send and answer times on CLOCK_MONOTONIC and
the echo that answered it. Deterministic timing check: no statistics, no retries.
"""

from __future__ import annotations

import time
import uuid

from harness.adapters.base import ProcessControl
from harness.checks import conformance
from harness.features import Feature, Level, Profile
from suites.conftest import require

from ._decisions import judge_restart, outage
from ._support import OpenLoad, status_counts, timeline, warm_up, workload

SERVICE = "restart"
ENDPOINT = workload(SERVICE)
RATE = 50.0  # requests/s, open loop
PRE_S = 1.0  # load before the restart
# from "ready again" (restart() returned) to the first request that must succeed: a caller noticing the
# connections the old sidecar closed (a pooled connection is checked when taken) and a 2-vCPU machine
RECOVERY_S = 1.0
HOLD_S = 2.0  # load after the recovery bound: all ~100 requests must succeed
RESTART_BUDGET_S = 15.0  # the longest the load waits for restart() (a Python sidecar starts in ~1 s here)


@conformance(
    short_name="MeshChaosSidecarRestart",
    description=f"One instance, no retries, open-loop load of {RATE:.0f} requests/s; after {PRE_S:.0f} s its sidecar "
                f"is restarted (ProcessControl.restart: stopped, started, back once ready and in effect). Pass: "
                f"nothing fails before the restart; only requests in flight when it began or sent before "
                f"{RECOVERY_S * 1e3:.0f} ms after it was ready again may fail; every request of the next "
                f"{HOLD_S:.0f} s succeeds. The outage (first to last failed request) and the recovery time are "
                f"reported. Deterministic: false failures only from timing (a stall longer than "
                f"{RECOVERY_S * 1e3:.0f} ms right after the restart).",
    features=[Feature.CHAOS_SIDECAR_RESTART], profile=Profile.CHAOS, level=Level.CORE)
def test_sidecar_restart(mesh, chaos_mesh, evidence):
    problems = measure_sidecar_restart(mesh, chaos_mesh, evidence)
    assert not problems, "sidecar restart not survived: " + "; ".join(problems)


def measure_sidecar_restart(mesh, chaos_mesh, evidence) -> list[str]:
    """The check's run and decision: its problems (none: it passed)."""
    require(mesh, ProcessControl, "restart a sidecar")
    key = uuid.uuid4().hex
    problem = warm_up(mesh, SERVICE, "/", key, [ENDPOINT])
    if problem:
        return [problem]
    load = OpenLoad(mesh, SERVICE, "/", key, rate=RATE, max_s=PRE_S + RESTART_BUDGET_S + RECOVERY_S + HOLD_S)
    with load:
        load.wait_answered_after(load.start_ns, int(RATE * PRE_S), timeout=PRE_S + 10.0,
                                 what="the load's answers before the restart")
        begin_ns = time.monotonic_ns()
        mesh.restart(ENDPOINT)
        ready_ns = time.monotonic_ns()
        load.wait_answered_after(ready_ns + int((RECOVERY_S + HOLD_S) * 1e9), 1, timeout=RECOVERY_S + HOLD_S + 10.0,
                                 what="the load's answers after the hold")
        load.stop()
        shots = load.join()
    seen = outage(shots, begin_ns)
    recovered = next((s.sent_ns for s in shots if s.sent_ns > begin_ns and s.ok
                      and all(t.ok for t in shots if t.sent_ns >= s.sent_ns)), None)
    evidence.samples = len(shots)
    evidence["statuses"] = status_counts(shots)
    evidence.measure("restart_seconds", round((ready_ns - begin_ns) / 1e9, 4), unit="s")
    evidence.measure("failed_requests", sum(1 for s in shots if not s.ok))
    if seen:
        evidence.measure("outage", round(seen[1] - seen[0], 4), unit="s")
    if recovered is not None:  # the first request of the unbroken run of successes that ends the load
        evidence.measure("recovered_after_restart_began", round((recovered - begin_ns) / 1e9, 4), unit="s")
        evidence.measure("recovered_after_ready", round((recovered - ready_ns) / 1e9, 4), unit="s")
    evidence.interval("recovered_within_after_ready", 0.0, RECOVERY_S, confidence=1.0, method="tolerance")
    timeline(evidence, shots, begin_ns, f"sidecar restart: answers ({ENDPOINT}'s sidecar restarted at 0 s)",
             {"restart": begin_ns, "ready": ready_ns})
    return judge_restart(shots, begin_ns=begin_ns, ready_ns=ready_ns, recovery_s=RECOVERY_S)
