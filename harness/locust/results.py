"""A load run's own result files, from the merged result the Locust master wrote (pure rendering).

- ``percentiles-us.json``: exact percentiles in µs of every response (HdrHistogram, 3 significant
  digits), the request and failure counts beside Locust's own, each worker's count, the labelled
  counts (which version answered, retries that recovered), the split observed on each weighted route
  beside its declared weights, and the encoded histogram itself (merge it with other runs' exactly);
- ``smp.yaml``: the same run as one Service Mesh Performance result (harness/report/smp.py).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import yaml

from harness.load import hdr
from harness.locust.plan import TrafficPlan
from harness.report.smp import latencies_ms_from_histogram, smp_result


def percentiles_document(result: Mapping[str, Any], plan: TrafficPlan, run: Mapping[str, Any]) -> dict[str, Any]:
    histogram = hdr.decode(result.get("histogram", ""))
    count = histogram.get_total_count()
    duration = float(result.get("duration_s") or 0.0)
    return {
        **run,
        "unit": "us",
        "count": count,
        "failures": int(result.get("failures", 0)),
        "locust": result.get("locust", {}),
        "duration_s": duration,
        "actual_qps": count / duration if duration > 0 else 0.0,
        "percentiles_us": {**hdr.summary_us(histogram), "mean": histogram.get_mean_value() if count else 0.0},
        "workers": result.get("workers", {}),
        "counts": result.get("counts", {}),
        "split": observed_split(plan, result.get("counts", {})),
        "histogram": result.get("histogram", ""),
    }


def observed_split(plan: TrafficPlan, counts: Mapping[str, int]) -> dict[str, Any]:
    """For each route over two or more versions: declared and observed share of each version."""
    split = {}
    for route in plan.routes:
        if len(route.versions) < 2:
            continue
        seen = {v: int(counts.get(f"{route.label} → {v}", 0)) for v in route.weights}
        total_seen, total_weight = sum(seen.values()), sum(route.weights.values())
        if not total_seen:
            continue
        split[route.label] = {
            "answers": total_seen,
            "declared": {v: w / total_weight for v, w in route.weights.items()},
            "observed": {v: n / total_seen for v, n in seen.items()},
        }
    return split


def smp_document(result: Mapping[str, Any], *, test_id: str, mesh: str, mesh_version: str,
                 requested_qps: float | None) -> dict[str, Any]:
    histogram = hdr.decode(result.get("histogram", ""))
    duration = float(result.get("duration_s") or 0.0)
    stopped = result.get("stopped_at")
    end = (datetime.fromtimestamp(stopped, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if stopped else None)
    latencies = latencies_ms_from_histogram(histogram) if histogram.get_total_count() else \
        {k: 0.0 for k in ("min", "avg", "p50", "p90", "p99", "max")}
    entry = smp_result(test_id=test_id, mesh=mesh, mesh_version=mesh_version, latencies_ms=latencies,
                       actual_qps=histogram.get_total_count() / duration if duration > 0 else 0.0,
                       requested_qps=requested_qps, duration_s=duration, end_time=end)
    entry["config"]["client"]["load_generator"] = "locust"
    return {"results": [entry]}


def write(percentiles_path: Path, smp_path: Path, percentiles: Mapping[str, Any], smp: Mapping[str, Any]) -> None:
    percentiles_path.write_text(json.dumps(percentiles, indent=2, ensure_ascii=False) + "\n")
    smp_path.write_text("# Service Mesh Performance (SMP) result of a `meshconform load` run.\n"
                        + yaml.safe_dump(dict(smp), sort_keys=False, allow_unicode=True))
