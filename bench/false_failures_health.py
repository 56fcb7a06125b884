"""False failures of the health suite's checks against the correct reference mesh.

    python bench/false_failures_health.py [--runs 200] [--check MeshActiveHealthCheckRemoves ...]

The active health checks are not statistical: what can fail a correct mesh are their timing tolerances
(the failing endpoint's last arrival within unhealthy_threshold x interval + tolerance of the flip, its
first arrival again within healthy_threshold x interval + tolerance of the recovery; see
suites/health/_support.py). This runs each check's own measurement and decision (the ``measure_*``
functions the checks call) ``--runs`` times against one reference mesh deployed with
suites/health/scenario.yaml, and prints one row per check with the machine's load average. Each run
starts with the check's own warm-up (every endpoint answering), so the previous run's endpoint is back.
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

SUITE = "health"


def _checks():
    from suites.health import test_active_health as hc
    return {
        "MeshActiveHealthCheckRemoves": hc.measure_removal,
        "MeshActiveHealthCheckRestores": hc.measure_return,
    }


def run(runs: int = 200, checks: list[str] | None = None, progress=print) -> list[dict[str, Any]]:
    from harness.adapters.reference import ReferenceAdapter
    from harness.evidence import Evidence
    from suites.health.conftest import SCENARIO

    table = _checks()
    unknown = sorted(set(checks or ()) - set(table))
    if unknown:
        raise SystemExit(f"unknown check(s) {unknown}; known: {', '.join(table)}")
    adapter = ReferenceAdapter()
    rows = []
    try:
        deployment = adapter.deploy(SCENARIO)
        for name in checks or table:
            measure, seconds, failures, samples, timings = table[name], [], [], [], []
            load_before = os.getloadavg()[0]
            for i in range(runs):
                evidence = Evidence()
                began = time.monotonic()
                problems = measure(adapter, deployment, evidence)
                seconds.append(time.monotonic() - began)
                samples.append(evidence.samples or 0)
                measured = evidence.get("measurements", {})
                timings += [m["value"] for m in measured.values()]
                if problems:
                    failures.append(f"run {i + 1} (load {os.getloadavg()[0]:.2f}): {'; '.join(problems)[:300]}")
                if progress and (i + 1) % 10 == 0:
                    progress(f"  {name}: {i + 1}/{runs}, {len(failures)} failed, load {os.getloadavg()[0]:.2f}")
            rows.append({"suite": SUITE, "check": name, "runs": runs, "false_failures": len(failures),
                         "undecided": 0, "requests_median": median(samples),
                         "requests_p90": sorted(samples)[int(0.9 * (runs - 1))],
                         "seconds_median": median(seconds), "seconds_total": sum(seconds),
                         "timing_max_s": max(timings, default=None),
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
        print(f"{r['check']}: load average {r['load_before']:.2f} before, {r['load_after']:.2f} after; "
              f"slowest removal/return {r['timing_max_s']:.3f} s")
        for reason in r["reasons"]:
            print(f"  {reason}")


if __name__ == "__main__":
    main()
