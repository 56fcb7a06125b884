"""What the performance checks share: who calls whom, the meter's targets, and SMP entries.

Every check loads ``client``'s outbound listener with Host ``backend`` (two proxies: the client's
outbound side and the backend's inbound side) and compares it with the same meter calling the backend's
echo directly. Both need the adapter's :class:`~harness.adapters.base.MeshDataPlane`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from harness.adapters.base import MeshDataPlane
from harness.load import Target
from harness.load import hdr
from harness.report.smp import latencies_ms_from_histogram
from suites.conftest import require

CLIENT = "client-v1-0"
BACKEND = "backend-v1-0"
HOST = "backend"
PATH = "/perf"
MAX_CONNECTIONS = 64  # an overloaded path queues in the meter (clocks running) instead of opening hundreds


def data_plane(mesh) -> MeshDataPlane:
    return require(mesh, MeshDataPlane, "load a workload's outbound listener with the meter and read its proxies")


def direct_target(deployment) -> Target:
    return Target(deployment.workloads[BACKEND].app, path=PATH, host=HOST)


def mesh_target(plane: MeshDataPlane) -> Target:
    return Target(plane.outbound_address(CLIENT), path=PATH, host=HOST)


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_performance(evidence, label: str, results, rate: float, duration_s: float, *,
                       start_time: str | None = None, proxies=None) -> None:
    """One SMP entry for several meter runs of one path (their histograms merged exactly)."""
    merged = hdr.merge_encoded(r.histogram for r in results)
    if merged.get_total_count() == 0:
        return
    evidence.performance(label, latencies_ms=latencies_ms_from_histogram(merged),
                         actual_qps=sum(r.achieved_rate for r in results) / len(results),
                         requested_qps=rate, duration_s=duration_s * len(results),
                         start_time=start_time, end_time=utc_now() if start_time else None, proxies=proxies)
