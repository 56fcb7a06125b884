"""The result model every report is rendered from, and the summaries derived from it.

Profile results follow Gateway API's ConformanceReport: per profile and level, ``failure`` if any test
FAILED or hit an ERROR, else ``partial`` if any was SKIPPED (or, at core level, NOT_SUPPORTED: every mesh
is expected to have core features), else ``success``. A feature is *supported* only if a test covering
it passed and none covering it failed; it is *unsupported* if a test covering it was NOT_SUPPORTED
because of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from harness.adapters.base import Implementation
from harness.checks import ConformanceCheck
from harness.features import Feature, Level, Profile
from harness.outcome import Outcome


@dataclass(frozen=True)
class CheckResult:
    check: ConformanceCheck
    nodeid: str  # one check may run as several parametrised tests
    outcome: Outcome
    duration_s: float
    reason: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    missing_features: frozenset[Feature] = frozenset()  # why NOT_SUPPORTED


@dataclass(frozen=True)
class RunResult:
    mesh: str
    implementation: Implementation
    date: datetime
    meshconform_version: str
    results: tuple[CheckResult, ...]
    mode: str = "default"
    declared_features: frozenset[Feature] = frozenset()  # what the adapter or --supported-features said
    exempt_features: frozenset[Feature] = frozenset()


@dataclass(frozen=True)
class LevelSummary:
    result: str  # success | partial | failure
    passed: int
    failed: int  # FAILED and ERROR
    not_supported: int
    skipped: int
    failed_tests: tuple[str, ...]
    skipped_tests: tuple[str, ...]  # SKIPPED and NOT_SUPPORTED
    supported_features: tuple[Feature, ...]
    unsupported_features: tuple[Feature, ...]


@dataclass(frozen=True)
class ProfileSummary:
    profile: Profile
    levels: dict[Level, LevelSummary]  # only levels that have tests


def summarize(run: RunResult) -> list[ProfileSummary]:
    out = []
    for profile in Profile:
        levels = {}
        for level in Level:
            results = [r for r in run.results if r.check.profile is profile and r.check.level is level]
            if results:
                levels[level] = summarize_level(results, level)
        if levels:
            out.append(ProfileSummary(profile, levels))
    return out


def summarize_level(results: list[CheckResult], level: Level) -> LevelSummary:
    count = {o: sum(r.outcome is o for r in results) for o in Outcome}
    failed = count[Outcome.FAILED] + count[Outcome.ERROR]
    not_complete = count[Outcome.SKIPPED] + (count[Outcome.NOT_SUPPORTED] if level is Level.CORE else 0)
    result = "failure" if failed else "partial" if not_complete else "success"
    return LevelSummary(
        result=result,
        passed=count[Outcome.PASSED],
        failed=failed,
        not_supported=count[Outcome.NOT_SUPPORTED],
        skipped=count[Outcome.SKIPPED],
        failed_tests=_names(r for r in results if r.outcome in (Outcome.FAILED, Outcome.ERROR)),
        skipped_tests=_names(r for r in results if r.outcome in (Outcome.SKIPPED, Outcome.NOT_SUPPORTED)),
        supported_features=tuple(sorted(supported_features(results), key=_order)),
        unsupported_features=tuple(sorted(unsupported_features(results), key=_order)),
    )


def supported_features(results: Iterable[CheckResult]) -> frozenset[Feature]:
    """Features covered by a PASSED test and by no FAILED/ERROR test."""
    results = list(results)
    passed = {f for r in results if r.outcome is Outcome.PASSED for f in r.check.features}
    failing = {f for r in results if r.outcome in (Outcome.FAILED, Outcome.ERROR) for f in r.check.features}
    return frozenset(passed - failing)


def unsupported_features(results: Iterable[CheckResult]) -> frozenset[Feature]:
    return frozenset(f for r in results if r.outcome is Outcome.NOT_SUPPORTED for f in r.missing_features)


def display_name(result: CheckResult) -> str:
    """The short name, with the parameter id when a check ran as several tests."""
    _, bracket, params = result.nodeid.partition("[")
    return result.check.short_name + (f"[{params}" if bracket else "")


def _names(results: Iterable[CheckResult]) -> tuple[str, ...]:
    return tuple(sorted(display_name(r) for r in results))


def _order(feature: Feature) -> int:
    return list(Feature).index(feature)
