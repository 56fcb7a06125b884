"""The registry of report formats: a new format is one pure module plus one line here.

Each entry names the file it writes (``{stem}`` is the run's file stem, e.g. the mesh name) and the
dotted path of its renderer, ``render(run: RunResult) -> str | None`` (None: nothing to write for this
run). Renderers are imported only when reports are written. The first entry is the report of record
and is written first, so one broken writer cannot cost it. ``LOAD_FORMATS`` are the same for a load
run (``meshconform load``, a check's background load): rendered from its percentiles document
(harness/locust/results.py) instead of a RunResult.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from harness.report.model import RunResult


@dataclass(frozen=True)
class ReportFormat:
    file_name: str  # with "{stem}"
    renderer: str  # "module:function"

    def render(self) -> Callable[[Any], str | None]:  # RunResult, or a load run's document
        module, _, function = self.renderer.partition(":")
        return getattr(importlib.import_module(module), function)


FORMATS: tuple[ReportFormat, ...] = (
    ReportFormat("conformance-{stem}.yaml", "harness.report.yaml_report:render_yaml"),
    ReportFormat("conformance-{stem}.html", "harness.report.html_report:render_html"),
    ReportFormat("smp-{stem}.yaml", "harness.report.smp:render_smp"),
)

LOAD_FORMATS: tuple[ReportFormat, ...] = (
    ReportFormat("meshconform-load.html", "harness.report.load_report:render_load_html"),
)
