"""The control plane killed (SPEC §4 Chaos): the data plane keeps serving with its last configuration,
with zero errors, and configuration flows again once the control plane is back.

Destination ``steady`` has versions v1 and v2, its route sending everything to v1 (scenario.yaml). An
open-loop load runs while the control plane is killed (SIGKILL, ``ProcessControl.kill("controlplane")``)
for ``DOWN_S`` seconds and while it is started again (the lease's heal: ``restart``, which returns once
every sidecar found it again and acked its configuration — the adapter's observation). Then the route
is moved to v2 (``apply``, which returns once in effect) and every request must reach v2; the original
scenario is applied again when the check ends. Certificate rotation while the control plane is away is
not covered here (workload certificates live far longer than the check).
"""

from __future__ import annotations

import time
import uuid

from harness.adapters.base import ProcessControl
from harness.checks import conformance
from harness.faults.process import killed
from harness.features import Feature, Level, Profile
from meshscenario import Backend
from suites.conftest import require

from ._decisions import judge_control_plane_kill
from ._support import OpenLoad, send, status_counts, timeline, warm_up
from .conftest import SCENARIO

SERVICE = "steady"
OLD, NEW = "steady-v1-0", "steady-v2-0"
RATE = 20.0  # requests/s, open loop: 400 requests while the control plane is down
PRE_S = 0.5
DOWN_S = 20.0  # several times any sidecar's retry interval for its config watch (the reference: 5 s at most)
AFTER_S = 1.0  # load after the control plane is back
AFTER_REQUESTS = 10
RETURN_BUDGET_S = 30.0  # the longest the load waits for the control plane's return


def _moved():
    routes = [r.model_copy(update={"backends": [Backend(version="v2", weight=1)]}) if r.name == "steady" else r
              for r in SCENARIO.routes]
    return SCENARIO.model_copy(update={"routes": routes})


@conformance(
    short_name="MeshChaosControlPlaneKill",
    description=f"Open-loop load of {RATE:.0f} requests/s to a route sending everything to v1; the control plane is "
                f"killed (SIGKILL) for {DOWN_S:.0f} s and started again. Pass: zero failed requests before, during "
                f"and after the outage, every one answered by v1 (the last configuration); once the control plane is "
                f"back, the route moved to v2 (applied, in effect) sends all of {AFTER_REQUESTS} sequential requests "
                f"to v2. Deterministic.",
    features=[Feature.CHAOS_CONTROL_PLANE_KILL], profile=Profile.CHAOS, level=Level.CORE)
def test_control_plane_kill(mesh, chaos_mesh, evidence):
    problems = measure_control_plane_kill(mesh, chaos_mesh, evidence)
    assert not problems, "control plane outage not survived: " + "; ".join(problems)


def measure_control_plane_kill(mesh, chaos_mesh, evidence) -> list[str]:
    """The check's run and decision: its problems (none: it passed)."""
    require(mesh, ProcessControl, "kill the control plane")
    key = uuid.uuid4().hex
    problem = warm_up(mesh, SERVICE, "/", key, [OLD])
    if problem:
        return [problem]
    load = OpenLoad(mesh, SERVICE, "/", key, rate=RATE, max_s=PRE_S + DOWN_S + RETURN_BUDGET_S + AFTER_S)
    with load:
        load.wait_answered_after(load.start_ns, int(RATE * PRE_S), timeout=PRE_S + 10.0,
                                 what="the load's answers before the kill")
        with killed(mesh, "controlplane") as fault:  # started again when the block ends
            kill_ns = fault.at_ns
            load.wait_answered_after(kill_ns + int(DOWN_S * 1e9), 1, timeout=DOWN_S + 10.0,
                                     what="the load's answers while the control plane is down")
            back_begin_ns = time.monotonic_ns()
        back_ns = fault.healed_ns
        load.wait_answered_after(back_ns + int(AFTER_S * 1e9), 1, timeout=AFTER_S + 10.0,
                                 what="the load's answers after the control plane is back")
        load.stop()
        shots = load.join()
    try:
        apply_s = mesh.apply(_moved())
        after = [send(mesh, SERVICE, "/", key) for _ in range(AFTER_REQUESTS)]
    finally:
        mesh.apply(SCENARIO)
    down = [s for s in shots if kill_ns <= s.sent_ns < back_begin_ns]
    evidence.samples = len(shots) + len(after)
    evidence["statuses"] = status_counts(shots)
    evidence.measure("requests_while_down", len(down))
    evidence.measure("failed_requests", sum(1 for s in shots if not s.ok))
    evidence.measure("down_seconds", round((back_begin_ns - kill_ns) / 1e9, 3), unit="s")
    evidence.measure("return_seconds", round((back_ns - back_begin_ns) / 1e9, 3), unit="s")
    evidence.measure("apply_after_return_seconds", round(apply_s, 4), unit="s")
    evidence["answers_after_change"] = {str(w): sum(1 for s in after if s.endpoint == w) for w in {s.endpoint for s in after}}
    timeline(evidence, shots, kill_ns, "control plane killed at 0 s: answers", {"kill": kill_ns,
             "restart": back_begin_ns, "back": back_ns})
    return judge_control_plane_kill(shots, after, kill_ns=kill_ns, back_begin_ns=back_begin_ns, back_ns=back_ns,
                                    old=OLD, new=NEW)
