"""meshconform compare: reports side by side, cell by cell, in rich and Markdown, and via the CLI."""

from __future__ import annotations

import pytest
import yaml

from harness.cli import main
from harness.compare import compare, load_report, render_markdown, render_table


def _report(mesh, tests, declared=()):
    return {"apiVersion": "meshconform.io/v1alpha1", "kind": "ConformanceReport", "mesh": mesh,
            "implementation": {"version": f"{mesh}-1.0"}, "declaredFeatures": list(declared), "tests": tests}


def _test(name, features, outcome, reason=None, measurements=None):
    return {"shortName": name, "features": features, "outcome": outcome, "reason": reason,
            "evidence": {"measurements": measurements or {}}}


REF = _report("reference", [
    _test("MeshWeightShift", ["WeightShift", "WeightedRouting"], "PASSED",
          measurements={"convergence_time": {"value": 0.12345, "unit": "s"}}),
    _test("MeshRetryBackoffFullJitter", ["RetryBackoff", "Retries"], "PASSED"),
    _test("MeshRetriesOnReset", ["Retries"], "PASSED"),
], declared=["WeightShift", "WeightedRouting", "RetryBackoff", "Retries", "Metrics"])
NGINX = _report("nginx", [
    _test("MeshWeightShift", ["WeightShift", "WeightedRouting"], "FAILED", reason="3 request(s) failed\nduring the shift",
          measurements={"convergence_time": {"value": 0.9, "unit": "s"}}),
    _test("MeshRetryBackoffFullJitter", ["RetryBackoff", "Retries"], "NOT_SUPPORTED",
          reason="nginx open source has no retry backoff"),
    _test("MeshRetriesOnReset", ["Retries"], "ERROR", reason="boom"),
], declared=["WeightShift", "WeightedRouting", "Retries"])


def test_cells_follow_the_outcomes():
    c = compare([REF, NGINX])
    assert c.meshes == ("reference", "nginx")
    assert c.cells[("WeightShift", "reference")].label == "pass 1"
    assert c.cells[("WeightShift", "reference")].numbers == ("convergence_time=0.1235 s",)
    assert c.cells[("WeightShift", "nginx")].label == "fail 1/1"
    assert c.cells[("RetryBackoff", "nginx")].status == "not supported"
    assert c.cells[("RetryBackoff", "nginx")].reasons == ("nginx open source has no retry backoff",)
    assert c.cells[("Retries", "nginx")].label == "fail 1/1"  # ERROR counts as a failure; NOT_SUPPORTED not run
    assert c.cells[("Retries", "reference")].label == "pass 2"
    assert c.cells[("Metrics", "reference")].status == "untested"  # declared, no check ran
    assert c.cells[("Metrics", "nginx")].status == "not supported"  # neither declared nor tested
    assert c.failures["nginx"] == ("MeshWeightShift: 3 request(s) failed during the shift", "MeshRetriesOnReset: boom")
    # rows in catalogue order (harness.features), not alphabetical
    assert c.features.index("WeightedRouting") < c.features.index("WeightShift") < c.features.index("Retries")


def test_markdown_table():
    text = render_markdown(compare([REF, NGINX]))
    lines = text.splitlines()
    assert lines[0] == "| feature | reference reference-1.0 | nginx nginx-1.0 |"
    assert "| WeightShift | pass 1<br>convergence_time=0.1235 s | **fail 1/1**<br>convergence_time=0.9 s |" in lines
    assert "- MeshRetriesOnReset: boom" in lines


def test_rich_table_has_a_column_per_mesh():
    table = render_table(compare([REF, NGINX]))
    assert [c.header for c in table.columns] == ["feature", "reference reference-1.0", "nginx nginx-1.0"]
    assert table.row_count == len(compare([REF, NGINX]).features)


def test_two_reports_of_one_mesh_are_refused():
    with pytest.raises(ValueError, match="same mesh"):
        compare([REF, REF])


def test_cli_renders_and_writes_markdown(tmp_path, capsys):
    paths = []
    for report in (REF, NGINX):
        path = tmp_path / f"conformance-{report['mesh']}.yaml"
        path.write_text(yaml.safe_dump(report))
        paths.append(str(path))
    out = tmp_path / "table.md"
    assert main(["compare", *paths, "--markdown", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "WeightShift" in printed and "fail 1/1" in printed and "not supported" in printed
    assert out.read_text() == render_markdown(compare([load_report(p) for p in paths]))


def test_cli_refuses_a_file_that_is_not_a_report(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("kind: Something\n")
    assert main(["compare", str(bad)]) == 2
