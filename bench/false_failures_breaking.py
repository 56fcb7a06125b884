"""False failures of the breaking suite's checks against the correct reference mesh.

    python bench/false_failures_breaking.py [--runs 200] [--check MeshOutlierEjection ...]

The breaking checks are not statistical: a mesh that keeps its limits can never show the echo more than
the limit in flight, and the ejection lower bounds are exact. What can fail a correct mesh are the timing
tolerances (overflow answered within half the hold at the 95th percentile; an accepted pending request
within 2.5 holds; an ejected host back within one interval + 150 ms). This runs each check's own
measurement and decision (the ``measure_*`` functions the checks call) ``--runs`` times against one
reference mesh deployed with suites/breaking/scenario.yaml, and prints one row per check with the
machine's load average, so a false failure is seen with the load it came with.
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

SUITE = "breaking"


def _checks():
    from suites.breaking import test_circuit_breaking as cb
    from suites.breaking import test_outlier_detection as od
    return {
        "MeshCircuitBreakerMaxRequests": cb.measure_max_requests,
        "MeshCircuitBreakerMaxPendingRequests": cb.measure_max_pending_requests,
        "MeshCircuitBreakerMaxConnections": cb.measure_max_connections,
        "MeshCircuitBreakerMaxRetries": cb.measure_max_retries,
        "MeshOutlierEjection": od.measure_outlier_ejection,
        # the two cap checks eject for 20 s per run (a second run would start with a host ejected), so
        # they are not repeated here: they are deterministic (no timing rule at all)
    }


def _settle_outlier(adapter) -> None:
    """After an ejection run: the failing endpoint is back (its next request answered 200 with a fresh
    key) and has stayed in for three intervals, so the multiplier has decayed to 0 (one per interval)."""
    import uuid

    from suites.breaking import test_outlier_detection as od
    from suites.breaking._support import drive

    bad = od.INSTANCES[0]
    first_back: list[int] = []

    def settled(sent) -> bool:
        if not first_back:
            first_back.extend(x.sent_ns for x in sent if x.endpoint == bad and x.status == 200)
        return bool(first_back) and sent[-1].sent_ns - first_back[0] >= 3 * od.OD.interval * 1e9
    sent = drive(adapter, "od", uuid.uuid4().hex, period_s=0.01, max_s=5.0, max_requests=500, done=settled)
    if not settled(sent):
        raise RuntimeError("the failing endpoint did not come back within 5 s")


def run(runs: int = 200, checks: list[str] | None = None, progress=print) -> list[dict[str, Any]]:
    from harness.adapters.reference import ReferenceAdapter
    from harness.evidence import Evidence
    from suites.breaking.conftest import SCENARIO

    table = _checks()
    unknown = sorted(set(checks or ()) - set(table))
    if unknown:
        raise SystemExit(f"unknown check(s) {unknown}; known: {', '.join(table)}")
    adapter = ReferenceAdapter()
    rows = []
    try:
        deployment = adapter.deploy(SCENARIO)
        for name in checks or table:
            measure, seconds, failures, samples = table[name], [], [], []
            load_before = os.getloadavg()[0]
            for i in range(runs):
                evidence = Evidence()
                began = time.monotonic()
                problems = measure(adapter, deployment, evidence)
                seconds.append(time.monotonic() - began)
                if name == "MeshOutlierEjection":
                    _settle_outlier(adapter)
                samples.append(evidence.samples or 0)
                if problems:
                    failures.append(f"run {i + 1} (load {os.getloadavg()[0]:.2f}): {'; '.join(problems)[:300]}")
                if progress and (i + 1) % 10 == 0:
                    progress(f"  {name}: {i + 1}/{runs}, {len(failures)} failed, load {os.getloadavg()[0]:.2f}")
            rows.append({"suite": SUITE, "check": name, "runs": runs, "false_failures": len(failures),
                         "undecided": 0, "requests_median": median(samples), "requests_p90": sorted(samples)[int(0.9 * (runs - 1))],
                         "seconds_median": median(seconds), "seconds_total": sum(seconds),
                         "load_before": load_before, "load_after": os.getloadavg()[0], "reasons": failures[:5]})
    finally:
        adapter.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--check", action="append", help="short name (repeatable); default: all")
    args = parser.parse_args()
    from false_failures import print_table  # bench/ is the script's directory

    rows = run(args.runs, args.check)
    print_table(rows)
    for r in rows:
        print(f"{r['check']}: load average {r['load_before']:.2f} before, {r['load_after']:.2f} after")


if __name__ == "__main__":
    main()
