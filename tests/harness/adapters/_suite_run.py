"""Run the security and routing suites against a third-party adapter in a subprocess, and read the report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
SUITES = ["suites/security", "suites/routing"]
DEFINITE = {"PASSED", "FAILED", "NOT_SUPPORTED"}
RUN_LIMIT_S = 600  # both suites take ~40 s against either proxy on 2 vCPUs


def run_suites(mesh: str, out: Path) -> tuple[subprocess.CompletedProcess, dict]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *SUITES, f"--mesh={mesh}", "-p", "no:cacheprovider", "-q",
         f"--report-output={out}", "--junitxml", str(out / "junit.xml")],
        cwd=REPO, capture_output=True, text=True, timeout=RUN_LIMIT_S)
    report_path = out / f"conformance-{mesh}.yaml"
    assert report_path.exists(), f"no report written:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
    return result, yaml.safe_load(report_path.read_text())


def collected_checks() -> int:
    result = subprocess.run([sys.executable, "-m", "pytest", *SUITES, "--collect-only", "-q", "-p", "no:cacheprovider",
                             "--mesh=reference"], cwd=REPO, capture_output=True, text=True, timeout=120)
    return sum(1 for line in result.stdout.splitlines() if "::" in line)


def assert_definite(report: dict, stdout: str) -> list[dict]:
    """Every check has a definite outcome, and every non-pass says why."""
    tests = report["tests"]
    assert len(tests) == collected_checks(), f"{len(tests)} outcomes for {collected_checks()} checks:\n{stdout[-3000:]}"
    undefined = [(t["shortName"], t["outcome"], t["reason"]) for t in tests if t["outcome"] not in DEFINITE]
    assert not undefined, f"checks without a definite outcome (adapter bugs): {undefined}"
    unexplained = [t["shortName"] for t in tests if t["outcome"] != "PASSED" and not t["reason"]]
    assert not unexplained, f"non-passing checks without a reason: {unexplained}"
    return tests
