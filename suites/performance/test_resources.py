"""CPU and resident memory of the proxies on the path, per 1,000 req/s (SPEC §4 Performance).

After a warm-up, three identical open-loop loads of ``LOAD_S`` at ``--resource-rate`` (default 1,000 req/s)
go through client's outbound listener to backend. For each proxy on the path (client's, backend's:
``MeshDataPlane.proxy_pids``, with their child processes) harness/performance/resources.py reads CPU
seconds (utime + stime) and the kernel's resident high-water mark over each load. Reported beside
Istio's published sidecar figure (0.20 vCPU and 60 MB per 1,000 req/s).
"""

from __future__ import annotations

from harness.checks import conformance
from harness.features import Feature, Level, Profile
from harness.load import OpenLoop, measure
from harness.performance.resources import ISTIO_MB_PER_SIDECAR, ISTIO_VCPU_PER_KRPS, ResourceSample

from ._support import BACKEND, CLIENT, MAX_CONNECTIONS, data_plane, mesh_target, record_performance, utc_now

WARM_S = 1.0
LOAD_S = 2.0
LOADS = 3
# memory that grows with requests: resident memory grew by more than this over EACH of the last two loads
# (512 bytes a request at 1,000/s). One load of growth is allowed: HAProxy's pools, for one, grow to the
# working set once (2 MB here) and then stay; a leak grows by the same amount load after load.
GROWTH_LIMIT_BYTES = 1 << 20
MB = 1 << 20


@conformance(
    short_name="MeshResourceUse",
    description="Three identical open-loop loads of 2 s at --resource-rate (default 1,000 req/s) through client's "
                "outbound listener after a 1 s warm-up. For each proxy on the path (with its child processes): CPU "
                "(utime + stime) per 1,000 req/s in vCPU and its resident high-water mark during the loads, "
                "reported beside Istio's published 0.20 vCPU and 60 MB per sidecar. Fails when a request got no "
                "answer, when a proxy's resident memory grew by more than 1 MiB over each of the last two loads "
                "(memory that grows with requests; one load of growth, a pool reaching its working set, is allowed), or when --cpu-budget / --memory-budget (optional) is exceeded.",
    features=[Feature.RESOURCE_USE], profile=Profile.PERFORMANCE, level=Level.EXTENDED)
def test_resource_use(mesh, perf_mesh, budgets, evidence):
    problems = measure_resources(mesh, evidence, rate=budgets.resource_rate, cpu_budget=budgets.cpu_budget,
                                 memory_budget_mb=budgets.memory_budget_mb)
    assert not problems, "resource use: " + "; ".join(problems)


def measure_resources(mesh, evidence, *, rate: float, cpu_budget: float | None,
                      memory_budget_mb: float | None) -> list[str]:
    plane = data_plane(mesh)
    target = mesh_target(plane)
    proxies = {w: plane.proxy_pids(w) for w in (CLIENT, BACKEND)}
    missing = [w for w, pids in proxies.items() if not pids]
    if missing:
        return [f"the adapter names no proxy process for {', '.join(missing)}"]
    load = OpenLoop(rate=rate, duration_s=LOAD_S, max_connections=MAX_CONNECTIONS)
    started = utc_now()
    measure(target, OpenLoop(rate=rate, duration_s=WARM_S, max_connections=MAX_CONNECTIONS))
    results, uses = [], []
    for _ in range(LOADS):
        sample = ResourceSample(proxies)
        results.append(measure(target, load))
        uses.append(sample.stop())

    problems = []
    answered = sum(r.count for r in results)
    failed = sum(r.errors for r in results)
    if failed:
        problems.append(f"{failed} of {sum(r.sent for r in results)} requests got no answer or a 5xx")
    figures = {}
    for w in proxies:
        cpu_s = sum(u[w].cpu_s for u in uses)
        vcpu = cpu_s / answered * 1000 if answered else 0.0
        peak_mb = max(u[w].rss_peak_bytes for u in uses) / MB
        growths = [b[w].rss_bytes - a[w].rss_bytes for a, b in zip(uses, uses[1:])]
        figures[w] = (uses[0][w], vcpu, peak_mb, growths)
    # the headline first (a comparison table shows the first two): the caller's proxy CPU and memory
    _, vcpu, peak_mb, _ = figures[CLIENT]
    evidence.measure(f"{CLIENT}_vcpu_per_1000rps", round(vcpu, 3), unit="vCPU")
    evidence.measure(f"{CLIENT}_rss_peak", round(peak_mb, 1), unit="MB")
    per_load = results[-1].count
    for w, (first_use, vcpu, peak_mb, growths) in figures.items():
        evidence.measure(f"{w}_vcpu_per_1000rps", round(vcpu, 3), unit="vCPU")
        evidence.measure(f"{w}_cpu_per_request", round(vcpu * 1000, 1), unit="µs")
        evidence.measure(f"{w}_rss_peak", round(peak_mb, 1), unit="MB")
        evidence.measure(f"{w}_rss_growth_per_load", [round(g / MB, 3) for g in growths], unit="MB")
        evidence.measure(f"{w}_processes", first_use.processes)
        if first_use.peak_since_start:
            evidence.note(f"{w}: the kernel refused to reset the resident high-water mark; peak is since start")
        if min(growths) > GROWTH_LIMIT_BYTES:
            problems.append(f"{w}'s proxy grew by {', then '.join(f'{g / MB:.1f}' for g in growths)} MB of resident "
                            f"memory over the last {len(growths)} loads of {per_load} requests (limit "
                            f"{GROWTH_LIMIT_BYTES / MB:.0f} MB each): memory that grows per request "
                            f"({min(growths) / max(per_load, 1):.0f} bytes each)")
        if cpu_budget is not None and vcpu > cpu_budget:
            problems.append(f"{w}'s proxy uses {vcpu:.3f} vCPU per 1,000 req/s, over --cpu-budget {cpu_budget:g}")
        if memory_budget_mb is not None and peak_mb > memory_budget_mb:
            problems.append(f"{w}'s proxy peaked at {peak_mb:.1f} MB resident, over --memory-budget "
                            f"{memory_budget_mb:g}")
    evidence.measure("istio_published_vcpu_per_1000rps", ISTIO_VCPU_PER_KRPS, unit="vCPU")
    evidence.measure("istio_published_memory", ISTIO_MB_PER_SIDECAR, unit="MB")
    evidence.measure("rate", rate, unit="req/s")
    evidence.samples = answered
    record_performance(evidence, f"mesh@{rate:g}/s", results, rate, LOAD_S, start_time=started,
                       proxies={w: {"cpu_vcpu_per_1000rps": round(f[1], 3), "rss_peak_mb": round(f[2], 1)}
                                for w, f in figures.items()})
    evidence.plot("CPU per 1,000 req/s (vCPU)", kind="bar", ylabel="vCPU",
                  data={"labels": [*proxies, "Istio (published)"],
                        "values": [evidence["measurements"][f"{w}_vcpu_per_1000rps"]["value"] for w in proxies]
                        + [ISTIO_VCPU_PER_KRPS]})
    return problems
