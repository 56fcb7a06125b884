"""Performance results in the Service Mesh Performance (SMP) shape (SPEC §5).

SMP's ``PerformanceTestResult`` carries ``latencies_ms {min, average, p50, p90, p99, max}`` and
``actual_qps`` beside the test's identity and times; this module renders every ``evidence.performance``
entry of a run as one such result each, in a YAML list, and converts an HdrHistogram of microseconds
into the latency block. Pure functions: nothing here measures.
"""

from __future__ import annotations

from typing import Any, Mapping

import yaml

from harness.report.model import RunResult, display_name

SMP_VERSION = "v0.0.1"


def latencies_ms_from_histogram(histogram: Any) -> dict[str, float]:
    """``{min, avg, p50, p90, p99, max}`` in milliseconds from an ``HdrHistogram`` recorded in µs."""
    return {
        "min": histogram.get_min_value() / 1000.0,
        "avg": histogram.get_mean_value() / 1000.0,
        "p50": histogram.get_value_at_percentile(50) / 1000.0,
        "p90": histogram.get_value_at_percentile(90) / 1000.0,
        "p99": histogram.get_value_at_percentile(99) / 1000.0,
        "max": histogram.get_max_value() / 1000.0,
    }


def smp_result(*, test_id: str, mesh: str, mesh_version: str, latencies_ms: Mapping[str, float],
               actual_qps: float, requested_qps: float | None = None, duration_s: float | None = None,
               end_time: str | None = None, start_time: str | None = None,
               proxies: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Any]:
    """One SMP result; ``proxies`` (CPU and memory of each proxy process, when measured) go under
    ``metrics.proxies``."""
    lat = latencies_ms
    out = {
        "smp_version": SMP_VERSION,
        "id": test_id,
        "mesh": {"type": mesh, "version": mesh_version},
        "config": {"client": {"load_generator": "meshconform", "protocol": "http", "rps": requested_qps},
                   "duration_s": duration_s},
        "start_time": start_time,
        "end_time": end_time,
        "latencies_ms": {"min": lat["min"], "average": lat["avg"], "p50": lat["p50"], "p90": lat["p90"],
                         "p99": lat["p99"], "max": lat["max"]},
        "actual_qps": actual_qps,
    }
    if proxies:
        out["metrics"] = {"proxies": {name: dict(values) for name, values in proxies.items()}}
    return out


def render_smp(run: RunResult) -> str | None:
    """A YAML list of SMP results, or None when no test recorded performance."""
    results = [
        smp_result(test_id=f"{display_name(r)}/{p['label']}", mesh=run.mesh, mesh_version=run.implementation.version,
                   latencies_ms=p["latencies_ms"], actual_qps=p["actual_qps"], requested_qps=p.get("requested_qps"),
                   duration_s=p.get("duration_s"), start_time=p.get("start_time"),
                   end_time=p.get("end_time") or run.date.strftime("%Y-%m-%dT%H:%M:%SZ"), proxies=p.get("proxies"))
        for r in run.results for p in r.evidence.get("performance", [])
    ]
    if not results:
        return None
    return "# Service Mesh Performance (SMP) results written by meshconform.\n" + yaml.safe_dump(
        {"results": results}, sort_keys=False)
