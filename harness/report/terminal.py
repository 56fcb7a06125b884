"""Lines for pytest's terminal summary: one per profile and level, NOT_SUPPORTED apart, report paths."""

from __future__ import annotations

from typing import Iterator

from harness.outcome import Outcome
from harness.report.model import RunResult, display_name, summarize

_COLOUR = {"success": {"green": True}, "partial": {"yellow": True}, "failure": {"red": True, "bold": True}}


def summary_lines(run: RunResult, paths: list[str], errors: list[str]) -> Iterator[tuple[str, dict]]:
    impl = run.implementation
    yield f"mesh={run.mesh} implementation={impl.project} {impl.version}", {}
    for profile in summarize(run):
        for level, s in profile.levels.items():
            yield (f"{profile.profile.value:<19} {level.value:<8} {s.result:<8} passed={s.passed} "
                   f"failed={s.failed} not_supported={s.not_supported} skipped={s.skipped}"), _COLOUR[s.result]
    for r in run.results:
        if r.outcome is Outcome.NOT_SUPPORTED:
            yield f"NOT_SUPPORTED {display_name(r)}: {r.reason}", {"yellow": True}
    for path in paths:
        yield f"report: {path}", {}
    for error in errors:
        yield f"report not written: {error}", {"red": True}
