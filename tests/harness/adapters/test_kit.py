"""The adapter kit: claims, the hop lease, and the boundaries that keep adapters independent."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import threading

from harness.adapters.kit import FeatureClaims, InterposedHop, Withdrawal
from harness.features import Feature

ROOT = Path(__file__).resolve().parents[3]


def test_a_feature_nobody_lists_is_not_supported_and_says_why():
    claims = FeatureClaims.of("demo", supported=[Feature.RETRIES], reasons={Feature.METRICS: "no counters"})
    assert claims.supported == {Feature.RETRIES}
    assert claims.reason(Feature.METRICS) == "no counters"
    assert claims.reason(Feature.TRACING) == "the demo adapter does not claim TracePropagation"


def test_a_feature_cannot_be_claimed_and_refused_at_once():
    with pytest.raises(ValueError, match="Retries"):
        FeatureClaims.of("demo", supported=[Feature.RETRIES], reasons={Feature.RETRIES: "no"})


def test_heal_restores_once():
    calls = []
    hop = InterposedHop("backend-v1-0", proxy=object(), restore=lambda: calls.append(1))
    hop.heal()
    hop.heal()
    assert calls == [1] and hop.healed


def test_a_withdrawal_readmits_once_from_many_threads():
    calls = []
    lease = Withdrawal("ring-v1-2", readmit=lambda: calls.append(1), seconds=0.1)
    threads = [threading.Thread(target=lease.heal) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    assert calls == [1] and lease.healed and lease.seconds == 0.1


@pytest.mark.parametrize("adapter", ["harness.adapters.haproxy", "harness.adapters.nginx"])
def test_loading_a_third_party_adapter_does_not_load_the_reference_adapter(adapter):
    code = f"import sys, {adapter}; print('harness.adapters.reference' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_no_module_imports_a_private_name_from_another_package():
    offenders = []
    for package in ("harness", "meshproxy", "meshscenario", "fixtures", "suites"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    if node.module.split(".")[0] != package:
                        offenders += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}"
                                      for a in node.names if a.name.startswith("_") and a.name != "__all__"]
    assert not offenders, offenders
