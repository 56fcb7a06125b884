"""Every observability check passes on the reference mesh and fails against the defect that breaks
what it checks (meshproxy/defects.py; docs/architecture.md's defect list).

Each test is a real ``pytest suites/observability --mesh=reference`` run with defects (see conftest).
"""

from __future__ import annotations

import pytest

from tests.sensitivity.conftest import assert_fails, judge

SUITE = "observability"
CHECKS = ["MeshMetricsAgreeWithTraffic", "MeshTracePropagation", "MeshAccessLogs", "MeshServiceGraph"]


def test_every_observability_check_passes_on_the_correct_mesh(tmp_path):
    entries = judge(tmp_path, SUITE, CHECKS, None)
    for name in CHECKS:
        assert entries[name]["outcome"] == "PASSED", f"{name}: {entries[name].get('reason')}"


@pytest.mark.parametrize("defect, check, words", [
    ("metrics_miss_retries", "MeshMetricsAgreeWithTraffic", ["destination metrics retries", "destination: client-v1-0 -> metrics-v1-0"]),
    ("drop_traceparent", "MeshTracePropagation", ["trace id not kept"]),
    ("span_wrong_parent", "MeshTracePropagation", ["the inbound span's parent is"]),
    ("access_log_skips_errors", "MeshAccessLogs", ["outbound 500 record(s) missing", "inbound 500 record(s) missing"]),
    ("graph_wrong_source", "MeshServiceGraph", ["edge caller-a-v1-0", "the test made"]),
])
def test_each_check_fails_against_its_defect(tmp_path, defect, check, words):
    entries = judge(tmp_path, SUITE, [check], {defect: True})
    assert_fails(entries[check], *words)
