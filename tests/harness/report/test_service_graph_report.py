"""The HTML report draws a check's service graph (evidence plot kind ``graph``: networkx layout,
matplotlib PNG embedded as a data URI)."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timezone

import pytest

from harness.adapters.base import Implementation
from harness.checks import ConformanceCheck
from harness.evidence import Evidence
from harness.features import Feature, Level, Profile
from harness.observability.graph import graph_plot_data
from harness.outcome import Outcome
from harness.report.html_report import render_html
from harness.report.model import CheckResult, RunResult

TITLE = "service graph (reporter destination)"


def _run_with(evidence: Evidence) -> RunResult:
    check = ConformanceCheck("MeshServiceGraph", "d", frozenset([Feature.SERVICE_GRAPH]), Profile.OBSERVABILITY,
                             Level.EXTENDED)
    result = CheckResult(check, "t.py::test_service_graph", Outcome.FAILED, 0.5, "edge wrong", evidence.to_dict(),
                         frozenset())
    return RunResult("fake", Implementation("Acme", "fakemesh", "https://example.invalid", "1"),
                     datetime(2026, 1, 2, tzinfo=timezone.utc), "0.1.0", (result,))


def test_the_html_report_embeds_the_service_graph_as_a_png():
    evidence = Evidence()
    made = {("caller-a-v1-0", "graph-x-v1-0"): 3, ("caller-b-v1-0", "graph-x-v1-0"): 4}
    got = {("caller-a-v1-0", "graph-x-v1-0"): 7}  # the wrong source credited with b's calls
    evidence.plot(TITLE, kind="graph", data=graph_plot_data(got, made))
    page = render_html(_run_with(evidence))
    assert TITLE in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 1
    png = base64.b64decode(images[0])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000  # a drawing, not an empty canvas


def test_graph_plot_data_is_checked_when_recorded():
    with pytest.raises(ValueError, match="graph plot"):
        Evidence().plot("g", kind="graph", data={"nodes": ["a"], "edges": [{"source": "a", "target": "b",
                                                                            "count": 1}]})
