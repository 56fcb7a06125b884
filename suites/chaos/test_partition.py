"""A partitioned endpoint (SPEC §4 Chaos): retries keep the service answering.

Destination ``part`` has three instances picked at random on every try, and a route retrying
connect-failure and reset up to ``attempts`` times with a per-try timeout (scenario.yaml). A fault proxy
is put on the hop to one instance (``HopInterposer``) and disabled: Toxiproxy's "down", the spec's
partition — its listener closes (every new connection is refused) and its open connections are reset.
The mechanism under test is the route's retries: each refused or reset try goes to a fresh random pick,
and the per-try timeout bounds any try that would hang. An open-loop load runs before and through the
partition; the partition is healed (the callers pointed back, the proxy stopped) when the check ends.
"""

from __future__ import annotations

import time
import uuid

from harness.adapters.base import HopInterposer
from harness.checks import conformance
from harness.faults.hop import proxy_on_hop
from harness.features import Feature, Level, Profile
from suites.conftest import require

from ._decisions import judge_partition, partition_false_fail_rate
from ._support import OpenLoad, status_counts, timeline, warm_up, workload
from .conftest import SCENARIO

SERVICE = "part"
INSTANCES = 3
RETRIES = next(r for r in SCENARIO.routes if r.name == "part").retries
RATE = 100.0  # requests/s, open loop
PRE_S = 0.5  # load before the partition
DURING_S = 3.0  # load while it lasts
REQUESTS_BOUND = int(RATE * (PRE_S + DURING_S + 1.0))  # the most the load can send (for the stated rate)
FALSE_FAIL = partition_false_fail_rate(REQUESTS_BOUND, attempts=RETRIES.attempts, instances=INSTANCES)
# a refused try costs a loopback connect (well under 1 ms) and a backoff under max_interval: 13 of them take
# < 50 ms. The bound is two per-try timeouts (a request whose tries hung twice would exceed it), leaving the
# rest for a busy 2-vCPU machine: the slowest of 10 runs at load average 10-12 was 658 ms
LATENCY_BOUND_S = 2 * RETRIES.per_try_timeout
PARTITIONED = workload(SERVICE, 0)


@conformance(
    short_name="MeshChaosPartition",
    description=f"3 instances picked at random per try, retries attempts={RETRIES.attempts} on connect-failure and "
                f"reset with per_try_timeout {RETRIES.per_try_timeout * 1e3:.0f} ms; open-loop load of {RATE:.0f} "
                f"requests/s; one instance's hop is partitioned (a fault proxy disabled: connections refused, open "
                f"ones reset) for {DURING_S:.0f} s. Pass: every request sent during the partition is answered 200 by "
                f"another instance (success rate 100%) within {LATENCY_BOUND_S * 1e3:.0f} ms of its send, and none "
                f"failed before it. False-fail rate: a request fails only when all {RETRIES.attempts + 1} tries draw "
                f"the partitioned instance, (1/3)^{RETRIES.attempts + 1} each, {FALSE_FAIL:.1e} over at most "
                f"{REQUESTS_BOUND} requests (exact), plus timing for the latency bound; without connect-failure "
                f"retries a third of the requests fail.",
    features=[Feature.CHAOS_PARTITION, Feature.RETRIES], profile=Profile.CHAOS, level=Level.CORE)
def test_partition(mesh, chaos_mesh, evidence):
    problems = measure_partition(mesh, chaos_mesh, evidence)
    assert not problems, "partition not survived: " + "; ".join(problems)


def measure_partition(mesh, chaos_mesh, evidence) -> list[str]:
    """The check's run and decision: its problems (none: it passed)."""
    require(mesh, HopInterposer, "partition one endpoint's hop")
    key = uuid.uuid4().hex
    endpoints = [workload(SERVICE, i) for i in range(INSTANCES)]
    with proxy_on_hop(mesh, PARTITIONED) as proxy:  # the callers reach the instance through the proxy now
        problem = warm_up(mesh, SERVICE, "/", key, endpoints)
        if problem:
            return [problem]
        load = OpenLoad(mesh, SERVICE, "/", key, rate=RATE, max_s=PRE_S + DURING_S + 1.0)
        with load:
            load.wait_answered_after(load.start_ns, int(RATE * PRE_S), timeout=PRE_S + 10.0,
                                     what="the load's answers before the partition")
            proxy.enabled = False  # returns once the listener is closed and open connections are reset
            start_ns = time.monotonic_ns()
            load.wait_answered_after(start_ns + int(DURING_S * 1e9), 1, timeout=DURING_S + 10.0,
                                     what="the load's answers during the partition")
            load.stop()
            shots = load.join()
        end_ns = time.monotonic_ns()  # every request has been answered; the partition heals after this
    during = [s for s in shots if start_ns <= s.sent_ns and s.done_ns <= end_ns]
    latencies = sorted(s.latency_s for s in during)
    evidence.samples = len(shots)
    evidence["answers_per_endpoint"] = {w: sum(1 for s in during if s.endpoint == w) for w in endpoints}
    evidence["statuses"] = status_counts(during)
    evidence.measure("requests_during_partition", len(during))
    evidence.measure("success_rate", round(sum(1 for s in during if s.ok) / len(during), 6) if during else 0.0)
    if latencies:
        evidence.measure("latency_p50", round(latencies[len(latencies) // 2], 5), unit="s")
        evidence.measure("latency_max", round(latencies[-1], 5), unit="s")
    evidence.interval("false_fail_rate", 0.0, FALSE_FAIL, confidence=1.0, method="exact")
    timeline(evidence, shots, start_ns, f"partition: answers per endpoint ({PARTITIONED} partitioned from 0 s)",
             {"partition": start_ns, "heal": end_ns})
    return judge_partition(shots, start_ns=start_ns, end_ns=end_ns, partitioned=PARTITIONED,
                           latency_bound_s=LATENCY_BOUND_S)
