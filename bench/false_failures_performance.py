"""False failures of the performance suite's checks against the correct reference mesh.

    python bench/false_failures_performance.py [--runs 20] [--check MeshLatencyOverhead ...]

The performance checks are timing checks, not statistical tests with a derived error rate: what fails
a correct mesh is this machine's tail latency (scheduling, other processes), against the stated
budgets (default p99 <= 2 ms per hop at 500 and 2,000 req/s; propagation p99 <= 5 s; no memory growth
over 1 MiB). So their false-fail rate is measured: this runs each check's own measurement and decision
(the ``measure_*`` functions the checks call, with the default budgets) ``--runs`` times against one
reference mesh deployed with suites/performance/scenario.yaml, and prints one row per check with the
load average before and after (a row is evidence only from a quiet machine).
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # run as a script: the repo's packages

import argparse
import os
import time
from statistics import median
from typing import Any

SUITE = "performance"
from harness.settings import default_performance

DEFAULTS = default_performance()  # the checks' own defaults, so this measures what a run without flags applies
RATES, REPEATS, BUDGET_MS = DEFAULTS.latency_rates, DEFAULTS.latency_repeats, DEFAULTS.latency_budget_ms
PROPAGATION_S, RESOURCE_RATE = DEFAULTS.propagation_budget_s, DEFAULTS.resource_rate


def _checks():
    from suites.performance import test_latency, test_propagation, test_resources, test_throughput
    return {
        "MeshLatencyOverhead": lambda a, d, e: test_latency.measure_overhead(
            a, d, e, rates=RATES, repeats=REPEATS, budget_ms=BUDGET_MS),
        "MeshThroughput": lambda a, d, e: test_throughput.measure_throughput(
            a, d, e, budget_ms=BUDGET_MS, required=max(RATES)),
        "MeshConfigPropagation": lambda a, d, e: test_propagation.measure_propagation(
            a, d, e, budget_s=PROPAGATION_S),
        "MeshResourceUse": lambda a, d, e: test_resources.measure_resources(
            a, e, rate=RESOURCE_RATE, cpu_budget=None, memory_budget_mb=None),
    }


def run(runs: int = 20, checks: list[str] | None = None, progress=print) -> list[dict[str, Any]]:
    from harness.adapters.reference import ReferenceAdapter
    from harness.evidence import Evidence
    from suites.performance.conftest import SCENARIO

    table = _checks()
    unknown = sorted(set(checks or ()) - set(table))
    if unknown:
        raise SystemExit(f"unknown check(s) {unknown}; known: {', '.join(table)}")
    adapter = ReferenceAdapter()
    rows = []
    try:
        deployment = adapter.deploy(SCENARIO)
        for name in checks or table:
            measure, seconds, failures, samples, headline = table[name], [], [], [], []
            load_before = os.getloadavg()[0]
            for i in range(runs):
                evidence = Evidence()
                began = time.monotonic()
                problems = measure(adapter, deployment, evidence)
                seconds.append(time.monotonic() - began)
                samples.append(evidence.samples or 0)
                first = next(iter(evidence.get("measurements", {}).items()), None)
                if first is not None:
                    headline.append(f"{first[0]}={first[1]['value']}")
                if problems:
                    failures.append(f"run {i + 1} (load {os.getloadavg()[0]:.2f}): {'; '.join(problems)[:300]}")
                if progress:
                    progress(f"  {name}: {i + 1}/{runs}, {len(failures)} failed, load {os.getloadavg()[0]:.2f}, "
                             f"{headline[-1] if headline else ''}")
            rows.append({"suite": SUITE, "check": name, "runs": runs, "false_failures": len(failures),
                         "undecided": 0, "requests_median": median(samples),
                         "requests_p90": sorted(samples)[int(0.9 * (runs - 1))],
                         "seconds_median": median(seconds), "seconds_total": sum(seconds),
                         "load_before": load_before, "load_after": os.getloadavg()[0], "reasons": failures[:5],
                         "headlines": headline})
    finally:
        adapter.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--check", action="append", help="short name (repeatable); default: all")
    args = parser.parse_args()
    from false_failures import print_table  # bench/ is the script's directory

    rows = run(args.runs, args.check)
    print_table(rows)
    for r in rows:
        print(f"{r['check']}: load average {r['load_before']:.2f} before, {r['load_after']:.2f} after")
        for reason in r["reasons"]:
            print(f"  {reason}")


if __name__ == "__main__":
    main()
