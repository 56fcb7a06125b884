"""False failures of the chaos suite's checks against the correct reference mesh.

    python bench/false_failures_chaos.py [--runs 20] [--check MeshChaosUpstreamKill ...]

The partition check's retry draws have an exact false-fail rate (suites/chaos/_decisions.py
``partition_false_fail_rate``, 2.8e-4); everything else the chaos checks apply is a timing tolerance
(failures stop within the health check's removal bound, answers within a latency bound, timeouts within
−5/+150 ms, recovery within 1 s of "ready again"). This runs each check's own measurement and decision
(the ``measure_*`` functions the checks call) ``--runs`` times against one reference mesh deployed with
suites/chaos/scenario.yaml and prints one row per check with the machine's load average and, per check,
the measured value closest to its bound (``worst``). Each run starts with the check's own warm-up.
The control-plane check takes ~25 s a run: leave it out with ``--check`` for quick rounds.
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

SUITE = "chaos"


def _checks():
    from suites.chaos import (test_control_plane_kill as cp, test_partition as part, test_sidecar_restart as restart,
                              test_slow_network as slow, test_upstream_kill as kill)
    # check -> (its measurement, the measurement whose largest value is reported as "worst")
    return {
        "MeshChaosUpstreamKill": (kill.measure_upstream_kill, "last_failure_sent_after_kill"),
        "MeshChaosPartition": (part.measure_partition, "latency_max"),
        "MeshChaosSlowNetworkRouteTimeout": (slow.measure_route_timeout, "elapsed_max"),
        "MeshChaosSlowNetworkBandwidthTimeout": (slow.measure_bandwidth_timeout, "elapsed_max"),
        "MeshChaosSlowNetworkPerTryTimeout": (slow.measure_per_try_timeout, "gap_max"),
        "MeshChaosSidecarRestart": (restart.measure_sidecar_restart, "recovered_after_ready"),
        "MeshChaosControlPlaneKill": (cp.measure_control_plane_kill, "failed_requests"),
    }


def run(runs: int = 20, checks: list[str] | None = None, progress=print) -> list[dict[str, Any]]:
    from harness.adapters.reference import ReferenceAdapter
    from harness.evidence import Evidence
    from suites.chaos.conftest import SCENARIO

    table = _checks()
    unknown = sorted(set(checks or ()) - set(table))
    if unknown:
        raise SystemExit(f"unknown check(s) {unknown}; known: {', '.join(table)}")
    adapter = ReferenceAdapter()
    rows = []
    try:
        deployment = adapter.deploy(SCENARIO)
        for name in checks or table:
            (measure, worst_of), seconds, failures, samples, worst = table[name], [], [], [], []
            load_before = os.getloadavg()[0]
            for i in range(runs):
                evidence = Evidence()
                began = time.monotonic()
                problems = measure(adapter, deployment, evidence)
                seconds.append(time.monotonic() - began)
                samples.append(evidence.samples or 0)
                value = evidence.get("measurements", {}).get(worst_of, {}).get("value")
                if value is not None:
                    worst.append(value)
                if problems:
                    failures.append(f"run {i + 1} (load {os.getloadavg()[0]:.2f}): {'; '.join(problems)[:300]}")
                if progress and (i + 1) % 5 == 0:
                    progress(f"  {name}: {i + 1}/{runs}, {len(failures)} failed, load {os.getloadavg()[0]:.2f}")
            rows.append({"suite": SUITE, "check": name, "runs": runs, "false_failures": len(failures),
                         "undecided": 0, "requests_median": median(samples),
                         "requests_p90": sorted(samples)[int(0.9 * (runs - 1))],
                         "seconds_median": median(seconds), "seconds_total": sum(seconds),
                         "worst": (worst_of, max(worst, default=None)),
                         "load_before": load_before, "load_after": os.getloadavg()[0], "reasons": failures[:5]})
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
        print(f"{r['check']}: load average {r['load_before']:.2f} before, {r['load_after']:.2f} after; "
              f"worst {r['worst'][0]} = {r['worst'][1]}")
        for reason in r["reasons"]:
            print(f"  {reason}")


if __name__ == "__main__":
    main()
