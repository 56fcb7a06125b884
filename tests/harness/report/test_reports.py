"""Report writers are pure functions from the result model: tested on hand-built runs."""

from datetime import datetime, timezone

import yaml
from hdrh.histogram import HdrHistogram

from harness.adapters.base import Implementation
from harness.checks import ConformanceCheck
from harness.features import Feature, Level, Profile
from harness.outcome import Outcome
from harness.report.html_report import render_html
from harness.report.model import CheckResult, RunResult, summarize
from harness.report.smp import latencies_ms_from_histogram, render_smp
from harness.report.yaml_report import render_yaml

IMPL = Implementation("Acme", "fakemesh", "https://example.invalid", "1.2.3")


def result(name, outcome, features, profile=Profile.ROUTING, level=Level.CORE, evidence=None, missing=()):
    check = ConformanceCheck(name, "d", frozenset(features), profile, level)
    return CheckResult(check, f"t.py::{name}", outcome, 0.5, None, evidence or {}, frozenset(missing))


def run_of(*results):
    return RunResult("fake", IMPL, datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "0.1.0", tuple(results))


def test_a_feature_is_claimed_only_when_a_covering_test_passed_and_none_failed():
    run = run_of(
        result("A", Outcome.PASSED, [Feature.WEIGHTED_ROUTING]),
        result("B", Outcome.PASSED, [Feature.HEADER_MATCH]),
        result("C", Outcome.FAILED, [Feature.HEADER_MATCH, Feature.PATH_MATCH]),
        result("D", Outcome.SKIPPED, [Feature.WEIGHT_SHIFT]),
        result("E", Outcome.NOT_SUPPORTED, [Feature.LB_RING_HASH, Feature.WEIGHTED_ROUTING],
               missing=[Feature.LB_RING_HASH]),
    )
    (routing,) = summarize(run)
    core = routing.levels[Level.CORE]
    assert core.supported_features == (Feature.WEIGHTED_ROUTING,)
    assert core.unsupported_features == (Feature.LB_RING_HASH,)
    assert (core.result, core.passed, core.failed, core.not_supported, core.skipped) == ("failure", 2, 1, 1, 1)
    assert core.failed_tests == ("C",) and core.skipped_tests == ("D", "E")


def test_level_results_follow_gateway_api():
    def level_result(level, *outcomes):
        run = run_of(*(result(f"T{i}", o, [Feature.RETRIES], Profile.RESILIENCE, level) for i, o in enumerate(outcomes)))
        return summarize(run)[0].levels[level].result

    assert level_result(Level.CORE, Outcome.PASSED, Outcome.PASSED) == "success"
    assert level_result(Level.CORE, Outcome.PASSED, Outcome.NOT_SUPPORTED) == "partial"
    assert level_result(Level.EXTENDED, Outcome.PASSED, Outcome.NOT_SUPPORTED) == "success"
    assert level_result(Level.EXTENDED, Outcome.PASSED, Outcome.SKIPPED) == "partial"
    assert level_result(Level.CORE, Outcome.PASSED, Outcome.ERROR) == "failure"


def test_yaml_report_round_trips_and_explains_its_fields():
    run = run_of(result("A", Outcome.PASSED, [Feature.METRICS], Profile.OBSERVABILITY, Level.EXTENDED,
                        evidence={"samples": 10}))
    text = render_yaml(run)
    assert all(line.startswith("#") for line in text.split("apiVersion:")[0].splitlines())
    doc = yaml.safe_load(text)
    assert doc["date"] == "2025-01-02T03:04:05Z"
    assert doc["profiles"] == [{"name": "MESH-OBSERVABILITY", "extended": {
        "result": "success", "statistics": {"Passed": 1, "Failed": 0, "NotSupported": 0, "Skipped": 0},
        "failedTests": [], "skippedTests": [], "supportedFeatures": ["Metrics"], "unsupportedFeatures": []}}]
    assert doc["tests"][0]["evidence"] == {"samples": 10}


def test_html_report_colours_outcomes_and_inlines_plots():
    plot = {"title": "latency", "kind": "line", "xlabel": "", "ylabel": "",
            "data": {"x": [50, 99], "series": {"direct": [30, 60], "mesh": [70, 120]}}}
    run = run_of(result("A", Outcome.PASSED, [Feature.LATENCY_OVERHEAD], Profile.PERFORMANCE,
                        evidence={"plots": [plot, {**plot, "kind": "cdf", "data": {"values": [1, 2, 3]}}]}),
                 result("B", Outcome.FAILED, [Feature.THROUGHPUT], Profile.PERFORMANCE))
    run = run_of(run.results[0], CheckResult(**{**run.results[1].__dict__, "reason": "p99 <script> over budget"}))
    html = render_html(run)
    assert html.count("data:image/png;base64,") == 2
    assert 'class="PASSED"' in html and 'class="FAILED"' in html
    assert "<script>" not in html and "p99 &lt;script&gt; over budget" in html  # autoescaped


def test_smp_results_from_hdr_histogram():
    hist = HdrHistogram(1, 60_000_000, 3)
    for us in range(100, 1100):
        hist.record_value(us)
    lat = latencies_ms_from_histogram(hist)
    assert lat["min"] == 0.1 and abs(lat["p50"] - 0.6) < 0.002 and abs(lat["max"] - 1.099) < 0.002
    run = run_of(result("Overhead", Outcome.PASSED, [Feature.LATENCY_OVERHEAD], Profile.PERFORMANCE,
                        evidence={"performance": [{"label": "mesh@500", "latencies_ms": lat, "actual_qps": 499.2}]}))
    (smp,) = yaml.safe_load(render_smp(run))["results"]
    assert smp["id"] == "Overhead/mesh@500" and smp["actual_qps"] == 499.2
    assert set(smp["latencies_ms"]) == {"min", "average", "p50", "p90", "p99", "max"}
    assert render_smp(run_of(result("A", Outcome.PASSED, [Feature.METRICS]))) is None
