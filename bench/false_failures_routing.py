"""False failures of the routing suite's statistical checks against the correct reference mesh.

Runs the weighted-split decision (suites.routing._support.judge_split, the very function the checks
call) ``runs`` times per split against one live reference mesh deployed with the routing scenario, and
returns one row per check. A correct mesh should fail each at most 0.1% of the time (so 0 of 200 is
expected, 1 is possible: P ≈ 18%). A run that ends UNDECIDED counts as a false failure too.

Part of ``bench/false_failures.py`` (which prints the table); runnable alone:

    python bench/false_failures_routing.py --runs 200     # ~2 s per run, ~30 min for all four splits
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # run as a script: the repo's packages

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from statistics import median
from typing import Any

import numpy as np

SUITE = "routing"


def run(runs: int = 200, checks: list[str] | None = None, progress=print) -> list[dict[str, Any]]:
    """One row per split check: ``{"suite", "check", "runs", "false_failures", "undecided",
    "requests_median", "requests_p90", "seconds_median", "seconds_total", "reasons"}``."""
    from harness.adapters.reference import ReferenceAdapter
    from suites.routing._support import SPLITS, THREADS, judge_split
    from suites.routing.conftest import SCENARIO

    chosen = [SPLITS[c] for c in (checks or SPLITS)]
    adapter = ReferenceAdapter()
    rows = []
    try:
        adapter.deploy(SCENARIO)
        with ThreadPoolExecutor(THREADS) as pool:
            for spec in chosen:
                results, began = [], time.monotonic()
                for i in range(runs):
                    results.append(judge_split(adapter, spec, pool=pool))
                    if progress and (i + 1) % 25 == 0:
                        progress(f"  {spec.short_name}: {i + 1}/{runs}")
                requests = np.array([r.requests for r in results])
                rows.append({
                    "suite": SUITE, "check": spec.short_name, "runs": runs,
                    "false_failures": sum(not r.passed for r in results),
                    "undecided": sum(r.decision.value == "undecided" for r in results),
                    "requests_median": float(np.median(requests)),
                    "requests_p90": float(np.percentile(requests, 90)),
                    "seconds_median": median(r.seconds for r in results),
                    "seconds_total": time.monotonic() - began,
                    "reasons": [r.reason or r.failures[:1] for r in results if not r.passed][:5],
                })
    finally:
        adapter.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--check", action="append", help="short name (repeatable); default: all splits")
    args = parser.parse_args()
    from false_failures import print_table  # bench/ is the script's directory

    print_table(run(args.runs, args.check))


if __name__ == "__main__":
    main()
