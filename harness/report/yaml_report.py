"""The conformance report as YAML: a superset of Gateway API's ConformanceReport (SPEC §5)."""

from __future__ import annotations

from typing import Any

import yaml

from harness.report.model import LevelSummary, RunResult, display_name, summarize

API_VERSION = "meshconform.io/v1alpha1"
KIND = "ConformanceReport"

HEADER = """\
# meshconform conformance report.
# apiVersion, kind: the schema of this file; fields are only ever added within a version.
# date: when the run ended (UTC). mesh: the adapter name given to --mesh.
# implementation: who makes the mesh (organization, project, url, version, contact).
# meshconformVersion: the harness that judged it. mode: the adapter's mode of operation.
# declaredFeatures: what the adapter (or --supported-features) claimed; exemptFeatures: --exempt-features.
# profiles[].core / .extended: result is failure if any test failed or errored, partial if any was
#   skipped (or, for core, not supported), else success. statistics counts tests: Passed, Failed
#   (FAILED + ERROR), NotSupported, Skipped. supportedFeatures lists a feature only if a test covering
#   it passed and none failed; unsupportedFeatures lists features a test found missing.
# tests[]: one entry per test run: shortName, profile, level, features, outcome (PASSED | FAILED |
#   NOT_SUPPORTED | SKIPPED | ERROR), durationS (setup + call + teardown), reason (the assertion
#   message or the skip / not-supported reason), evidence (samples, measurements, statistical
#   intervals, notes and plot data the test recorded, pass or fail).
"""


def render_yaml(run: RunResult) -> str:
    return HEADER + yaml.safe_dump(report_document(run), sort_keys=False, allow_unicode=True, width=110)


def report_document(run: RunResult) -> dict[str, Any]:
    impl = run.implementation
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "date": run.date.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mesh": run.mesh,
        "implementation": {"organization": impl.organization, "project": impl.project, "url": impl.url,
                           "version": impl.version, "contact": list(impl.contact)},
        "meshconformVersion": run.meshconform_version,
        "mode": run.mode,
        "declaredFeatures": sorted(f.value for f in run.declared_features),
        "exemptFeatures": sorted(f.value for f in run.exempt_features),
        "profiles": [
            {"name": p.profile.value, **{level.value: _level(s) for level, s in p.levels.items()}}
            for p in summarize(run)
        ],
        "tests": [
            {"shortName": display_name(r), "description": r.check.description, "profile": r.check.profile.value,
             "level": r.check.level.value, "features": sorted(f.value for f in r.check.features),
             "outcome": r.outcome.value, "durationS": round(r.duration_s, 6), "reason": r.reason,
             "evidence": r.evidence}
            for r in run.results
        ],
    }


def _level(s: LevelSummary) -> dict[str, Any]:
    return {
        "result": s.result,
        "statistics": {"Passed": s.passed, "Failed": s.failed, "NotSupported": s.not_supported,
                       "Skipped": s.skipped},
        "failedTests": list(s.failed_tests),
        "skippedTests": list(s.skipped_tests),
        "supportedFeatures": [f.value for f in s.supported_features],
        "unsupportedFeatures": [f.value for f in s.unsupported_features],
    }
