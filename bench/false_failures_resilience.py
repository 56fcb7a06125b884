"""False failures of the resilience suite's statistical checks against the correct reference mesh.

    python bench/false_failures_resilience.py [--runs 200] [--checks backoff,abort,delay]

Deploys suites/resilience/scenario.yaml once on a local reference mesh and runs each statistical
check's own measurement and decision (the functions the check calls) ``--runs`` times, printing per
check: runs, false failures, samples per run and seconds. Each check's false-fail rate is ≤ 0.1% with
all its rules (share or distribution tests, magnitude, errors), so 200 runs should show 0 (P(≥1) ≤ 18%).
The rates themselves, exact or simulated on the pure decisions, come from bench/error_budgets.py.
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # run as a script: the repo's packages

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.adapters.reference import ReferenceAdapter  # noqa: E402
from suites.resilience import test_backoff, test_fault_injection  # noqa: E402
from suites.resilience._decisions import judge_errors  # noqa: E402
from suites.resilience.conftest import SCENARIO  # noqa: E402


def _backoff(mesh, deployment):
    sample = test_backoff.collect_backoff_sample(mesh, deployment)
    errors_ok = judge_errors(sample.errors, sample.requests).passed
    retries_ok = not sample.wrong_arrivals and not sample.wrong_answers
    passed = errors_ok and retries_ok and test_backoff.decide_backoff(sample).passed
    return passed, sum(len(g) for g in sample.gaps.values())


def _abort(mesh, deployment):
    f = test_fault_injection
    sample = f.collect_fault_sample(mesh, deployment, "/fault-abort", f.N_ABORT)
    passed = f.decide_abort(sample).passed and judge_errors(sample.errors, len(sample.statuses)).passed
    return passed, len(sample.keys)


def _delay(mesh, deployment):
    f = test_fault_injection
    sample = f.collect_delay_sample(mesh, deployment, f.N_DELAY, f.M_DELAY)
    passed = f.decide_delay(sample).passed and judge_errors(sample.errors, sample.requests).passed
    return passed, sample.requests


CHECKS = {"backoff": ("MeshRetryBackoffFullJitter", _backoff), "abort": ("MeshFaultInjectionAbort", _abort),
          "delay": ("MeshFaultInjectionDelay", _delay)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--checks", default=",".join(CHECKS))
    args = parser.parse_args(argv)
    mesh = ReferenceAdapter()
    try:
        deployment = mesh.deploy(SCENARIO)
        print(f"{'check':32} {'runs':>5} {'false fails':>11} {'samples/run':>11} {'seconds':>9}")
        total_false = 0
        for name in args.checks.split(","):
            short_name, run = CHECKS[name]
            false_fails, samples, began = 0, 0, time.monotonic()
            for _ in range(args.runs):
                passed, samples = run(mesh, deployment)
                false_fails += not passed
            total_false += false_fails
            print(f"{short_name:32} {args.runs:>5} {false_fails:>11} {samples:>11} "
                  f"{time.monotonic() - began:>9.1f}", flush=True)
        return 1 if total_false else 0
    finally:
        mesh.close()


if __name__ == "__main__":
    raise SystemExit(main())
