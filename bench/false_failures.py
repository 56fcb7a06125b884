"""How often each statistical check fails the CORRECT reference mesh (its false failures), SPEC §4.

Each suite keeps its part in ``bench/false_failures_<suite>.py`` exposing
``run(runs: int, checks: list[str] | None = None, progress=print) -> list[dict]`` with one row per check:
``{"suite", "check", "runs", "false_failures", "undecided", "requests_median", "requests_p90",
"seconds_median", "seconds_total", "reasons"}``. This script runs every part present and prints one
table (and writes JSON with ``--json``). Every check states a false-fail rate ≤ 0.1%, so 0 of 200 is
expected.

    python bench/false_failures.py [--runs 200] [--suite routing] [--json reports/false_failures.json]
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # run as a script: the repo's packages

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Iterable

PARTS = ("routing", "resilience", "breaking", "balancing", "health", "chaos")


def print_table(rows: Iterable[dict[str, Any]]) -> None:
    header = f"{'check':<34} {'runs':>5} {'false fails':>11} {'undecided':>9} {'req p50':>8} {'req p90':>8} {'s p50':>6} {'s total':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['check']:<34} {r['runs']:>5} {r['false_failures']:>11} {r['undecided']:>9} "
              f"{r['requests_median']:>8.0f} {r['requests_p90']:>8.0f} {r['seconds_median']:>6.2f} "
              f"{r['seconds_total']:>8.1f}")
        for reason in r.get("reasons", []):
            print(f"    {reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--suite", action="append", choices=PARTS, help="default: every part present")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    rows: list[dict[str, Any]] = []
    for suite in args.suite or PARTS:
        try:
            part = importlib.import_module(f"false_failures_{suite}")
        except ModuleNotFoundError as exc:
            if exc.name != f"false_failures_{suite}":
                raise
            print(f"({suite}: no bench/false_failures_{suite}.py yet)")
            continue
        if not hasattr(part, "run"):
            print(f"({suite}: bench/false_failures_{suite}.py has no run(); run it on its own)")
            continue
        print(f"{suite}: {args.runs} runs per check against the correct reference mesh")
        rows += part.run(args.runs)
    print_table(rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
