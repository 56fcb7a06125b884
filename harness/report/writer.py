"""Write every report of a run to a directory: the only report module that touches the filesystem."""

from __future__ import annotations

from pathlib import Path

from harness.report.model import RunResult


def write_reports(run: RunResult, directory: Path, stem: str) -> tuple[list[str], list[str]]:
    """(paths written, errors). One broken writer must not cost the others: YAML is written first."""
    from harness.report.html_report import render_html
    from harness.report.smp import render_smp
    from harness.report.yaml_report import render_yaml

    directory.mkdir(parents=True, exist_ok=True)
    paths, errors = [], []
    renderers = [(f"conformance-{stem}.yaml", render_yaml), (f"conformance-{stem}.html", render_html),
                 (f"smp-{stem}.yaml", render_smp)]
    for name, render in renderers:
        try:
            text = render(run)
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
