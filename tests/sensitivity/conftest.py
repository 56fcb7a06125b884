"""Sensitivity: run conformance checks against a reference mesh broken on purpose, read the verdicts.

Each run is a real ``pytest suites/... --mesh=reference`` in a subprocess (so the mesh, its processes
and the plugin are exactly what users run), with the defects handed to the reference mesh through the
adapter option ``defects`` (``MESHPROXY_DEFECTS``, see meshproxy/defects.py). The verdicts come from the
YAML conformance report that run writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 300


def judge(tmp_path: Path, suite: str, short_names: list[str], defects: Mapping[str, Any] | None,
          *extra: str) -> dict[str, dict[str, Any]]:
    """Run ``short_names`` of ``suite`` (a path under suites/) against the reference mesh with
    ``defects``; returns the report entry of each check by short name."""
    out = tmp_path / "reports"
    args = [sys.executable, "-m", "pytest", str(ROOT / "suites" / suite), "--mesh=reference",
            f"--run-test={','.join(short_names)}", f"--report-output={out}", "-p", "no:cacheprovider",
            "-q", "--no-header", *extra]
    if defects:
        args.append(f"--mesh-option=defects={json.dumps(dict(defects))}")
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    report = out / "conformance-reference.yaml"
    if not report.exists():
        pytest.fail(f"the run wrote no report (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    tests = {t["shortName"]: t for t in yaml.safe_load(report.read_text())["tests"]}
    missing = set(short_names) - set(tests)
    assert not missing, f"checks {sorted(missing)} did not run:\n{proc.stdout[-3000:]}"
    return tests


def assert_fails(entry: Mapping[str, Any], *words: str) -> None:
    """The check FAILED (not errored, not skipped) and its reason names the defect."""
    assert entry["outcome"] == "FAILED", f"{entry['shortName']} was {entry['outcome']} against a broken mesh: {entry.get('reason')}"
    reason = (entry.get("reason") or "").lower()
    for word in words:
        assert word.lower() in reason, f"{entry['shortName']}'s reason does not name {word!r}: {entry.get('reason')}"
