"""CPU and resident memory of the proxies on the path, per 1,000 req/s (SPEC §4 Performance).

After a warm-up, two identical open-loop loads of ``LOAD_S`` at ``--resource-rate`` (default 1,000 req/s)
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
GROWTH_LIMIT_BYTES = 1 << 20  # resident growth allowed over the second load (512 bytes a request at 1,000/s)
MB = 1 << 20


@conformance(
    short_name="MeshResourceUse",
    description="Two identical open-loop loads of 2 s at --resource-rate (default 1,000 req/s) through client's "
                "outbound listener after a 1 s warm-up. For each proxy on the path (with its child processes): CPU "
                "(utime + stime) per 1,000 req/s in vCPU and its resident high-water mark during the loads, "
                "reported beside Istio's published 0.20 vCPU and 60 MB per sidecar. Fails when a request got no "
                "answer, when a proxy's resident memory grew by more than 1 MiB over the second load (memory that "
                "grows with requests), or when --cpu-budget / --memory-budget (optional) is exceeded.",
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
    first_sample = ResourceSample(proxies)
    first = measure(target, load)
    first_use = first_sample.stop()
    second_sample = ResourceSample(proxies)
    second = measure(target, load)
    second_use = second_sample.stop()

    problems = []
    answered = first.count + second.count
    failed = first.errors + second.errors
    if failed:
        problems.append(f"{failed} of {first.sent + second.sent} requests got no answer or a 5xx")
    figures = {}
    for w in proxies:
        a, b = first_use[w], second_use[w]
        vcpu = (a.cpu_s + b.cpu_s) / answered * 1000 if answered else 0.0
        figures[w] = (a, b, vcpu, max(a.rss_peak_bytes, b.rss_peak_bytes) / MB, b.rss_bytes - a.rss_bytes)
    # the headline first (a comparison table shows the first two): the caller's proxy CPU and memory
    _, _, vcpu, peak_mb, _ = figures[CLIENT]
    evidence.measure(f"{CLIENT}_vcpu_per_1000rps", round(vcpu, 3), unit="vCPU")
    evidence.measure(f"{CLIENT}_rss_peak", round(peak_mb, 1), unit="MB")
    for w, (a, b, vcpu, peak_mb, growth) in figures.items():
        evidence.measure(f"{w}_vcpu_per_1000rps", round(vcpu, 3), unit="vCPU")
        evidence.measure(f"{w}_cpu_per_request", round(vcpu * 1000, 1), unit="µs")
        evidence.measure(f"{w}_rss_peak", round(peak_mb, 1), unit="MB")
        evidence.measure(f"{w}_rss_growth_second_load", round(growth / MB, 3), unit="MB")
        evidence.measure(f"{w}_processes", a.processes)
        if a.peak_since_start:
            evidence.note(f"{w}: the kernel refused to reset the resident high-water mark; peak is since start")
        if growth > GROWTH_LIMIT_BYTES:
            problems.append(f"{w}'s proxy grew by {growth / MB:.1f} MB of resident memory over the second "
                            f"{second.count} requests (limit {GROWTH_LIMIT_BYTES / MB:.0f} MB): memory that grows "
                            f"per request ({growth / max(second.count, 1):.0f} bytes each)")
        if cpu_budget is not None and vcpu > cpu_budget:
            problems.append(f"{w}'s proxy uses {vcpu:.3f} vCPU per 1,000 req/s, over --cpu-budget {cpu_budget:g}")
        if memory_budget_mb is not None and peak_mb > memory_budget_mb:
            problems.append(f"{w}'s proxy peaked at {peak_mb:.1f} MB resident, over --memory-budget "
                            f"{memory_budget_mb:g}")
    evidence.measure("istio_published_vcpu_per_1000rps", ISTIO_VCPU_PER_KRPS, unit="vCPU")
    evidence.measure("istio_published_memory", ISTIO_MB_PER_SIDECAR, unit="MB")
    evidence.measure("rate", rate, unit="req/s")
    evidence.samples = answered
    record_performance(evidence, f"mesh@{rate:g}/s", [first, second], rate, LOAD_S, start_time=started,
                       proxies={w: {"cpu_vcpu_per_1000rps": round(f[2], 3), "rss_peak_mb": round(f[3], 1)}
                                for w, f in figures.items()})
    evidence.plot("CPU per 1,000 req/s (vCPU)", kind="bar", ylabel="vCPU",
                  data={"labels": [*proxies, "Istio (published)"],
                        "values": [evidence["measurements"][f"{w}_vcpu_per_1000rps"]["value"] for w in proxies]
                        + [ISTIO_VCPU_PER_KRPS]})
    return problems
