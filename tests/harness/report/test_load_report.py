"""A load run's HTML page and a check's background load in the conformance report: pure renderers,
tested on a hand-built percentiles document (the shape harness/locust/results.py writes)."""

from datetime import datetime, timezone

from harness.adapters.base import Implementation
from harness.checks import ConformanceCheck
from harness.features import Feature, Level, Profile
from harness.load import hdr
from harness.outcome import Outcome
from harness.report.html_report import render_html
from harness.report.load_report import latency_spectrum, load_summary, render_load_html
from harness.report.model import CheckResult, RunResult


def _doc():
    histogram = hdr.new_histogram()
    for us in range(1_000, 3_000):
        hdr.record_us(histogram, us)
    return {"mesh": "reference", "mesh_version": "0.1.0", "source": "client-v1-0", "outbound": "127.9.9.10:15001",
            "locustfiles": ["/pkg/harness/locust/locustfiles/mesh_canary.py"], "users": 5, "rate_per_user": 10.0,
            "locust_workers": 2, "count": 2_000, "failures": 3, "locust": {"requests": 2_000, "failures": 3},
            "duration_s": 4.0, "actual_qps": 500.0, "percentiles_us": hdr.summary_us(histogram),
            "workers": {"worker-a": {"count": 1_200, "failures": 3}, "worker-b": {"count": 800, "failures": 0}},
            "counts": {"backend → v1": 1_880, "backend → v2": 120},
            "split": {"backend": {"answers": 2_000, "declared": {"v1": 0.95, "v2": 0.05},
                                  "observed": {"v1": 0.94, "v2": 0.06}}},
            "histogram": hdr.encode(histogram)}


def test_the_load_page_shows_percentiles_workers_split_and_plots():
    html = render_load_html(_doc())
    assert "<td>2,000</td>" in html and "<td>2,999</td>" in html  # requests, max µs
    assert "<td>worker-a</td><td>1,200</td><td>3</td>" in html
    assert "<td>95.0%</td>" in html and "<td>6.00%</td>" in html  # declared, observed
    assert "a Locust master and 2 workers" in html and "mesh_canary.py" in html
    assert html.count("data:image/png;base64,") == 2  # latency by percentile, one split


def test_the_summary_drops_the_histogram_and_the_spectrum_rises():
    summary = load_summary(_doc())
    assert "histogram" not in summary and summary["requests"] == 2_000
    assert summary["locustfiles"] == ["mesh_canary.py"]
    spectrum = latency_spectrum(_doc()["histogram"])["series"]["every response"]
    assert spectrum[0] == 1_000 and spectrum == sorted(spectrum) and spectrum[-1] >= 2_997
    assert latency_spectrum("") == {"x": [], "series": {"every response": []}}


def test_a_check_under_background_load_shows_the_load_in_its_entry():
    check = ConformanceCheck("MeshWeightedSplit95x5", "d", frozenset([Feature.WEIGHTED_ROUTING]), Profile.ROUTING,
                             Level.CORE)
    plain = ConformanceCheck("MeshWeightedSplit70x30", "d", frozenset([Feature.WEIGHTED_ROUTING]), Profile.ROUTING,
                             Level.CORE)
    run = RunResult("reference", Implementation("o", "p", "https://example.invalid", "1"),
                    datetime(2025, 1, 2, tzinfo=timezone.utc), "0.1.0", (
                        CheckResult(check, "t.py::a", Outcome.PASSED, 1.0, None,
                                    {"background_load": load_summary(_doc())}, frozenset()),
                        CheckResult(plain, "t.py::b", Outcome.PASSED, 1.0, None, {"samples": 3}, frozenset())))
    html = render_html(run)
    assert html.count("Under background load:") == 1
    entry = html[html.index('id="MeshWeightedSplit95x5"'):html.index('id="MeshWeightedSplit70x30"')]
    assert "Under background load:" in entry and "<td>2,000</td>" in entry and "<td>94.00%</td>" in entry
