"""Write every report of a run to a directory: the only report module that touches the filesystem."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.report.formats import FORMATS, ReportFormat
from harness.report.model import RunResult


def write_reports(run: RunResult | Mapping[str, Any], directory: Path, stem: str,
                  formats: Sequence[ReportFormat] = FORMATS) -> tuple[list[str], list[str]]:
    """(paths written, errors). One broken writer must not cost the others: YAML is written first.
    ``formats``: LOAD_FORMATS for a load run's document."""
    directory.mkdir(parents=True, exist_ok=True)
    paths, errors = [], []
    for report_format in formats:
        name = report_format.file_name.format(stem=stem)
        try:
            text = report_format.render()(run)
        except Exception as exc:  # reported in the terminal summary; the YAML is the report of record
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        if text is None:
            continue
        path = directory / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)  # a reader never sees half a report
        paths.append(str(path))
    return paths, errors
