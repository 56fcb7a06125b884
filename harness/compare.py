"""Several conformance reports side by side: features × meshes (``meshconform compare REPORT...``).

Each cell sums up the tests of one mesh's report that cover one feature:

- ``fail k/n``   — k of the n tests covering it failed or errored (failures win over passes);
- ``pass n``     — every test covering it that ran passed;
- ``not supported`` — the tests were NOT_SUPPORTED, or no test ran and the mesh did not declare it;
- ``untested``   — declared by the mesh, but no test covering it ran in this report.

"Key numbers" are the first two measurements the covering tests recorded (e.g. convergence_time, a
split's share), so a reader sees how well, not only whether. The model is pure data; rendering to a
rich table (terminal) or Markdown are pure functions of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from harness.features import Feature

KEY_NUMBERS_PER_CELL = 2
FAILED_OUTCOMES = ("FAILED", "ERROR")


@dataclass(frozen=True)
class Cell:
    status: str  # "pass" | "fail" | "not supported" | "untested"
    passed: int = 0
    failed: int = 0
    numbers: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()  # why tests failed or why the feature is not supported

    @property
    def label(self) -> str:
        if self.status == "fail":
            return f"fail {self.failed}/{self.passed + self.failed}"
        if self.status == "pass":
            return f"pass {self.passed}"
        return self.status


@dataclass(frozen=True)
class Comparison:
    meshes: tuple[str, ...]  # column order: as the reports were given
    versions: Mapping[str, str]
    features: tuple[str, ...]  # row order: the catalogue order of harness.features
    cells: Mapping[tuple[str, str], Cell]  # (feature, mesh) -> cell
    failures: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # mesh -> "Test: reason"


def load_report(path: str | Path) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict) or data.get("kind") != "ConformanceReport":
        raise ValueError(f"{path} is not a meshconform conformance report (kind: ConformanceReport)")
    return data


def compare(reports: Sequence[Mapping[str, Any]]) -> Comparison:
    meshes = tuple(r["mesh"] for r in reports)
    if len(set(meshes)) != len(meshes):
        raise ValueError(f"two reports for the same mesh: {', '.join(meshes)}")
    order = [f.value for f in Feature]
    seen = {f for r in reports for t in r.get("tests", []) for f in t.get("features", [])}
    seen |= {f for r in reports for f in r.get("declaredFeatures", [])}
    features = tuple([f for f in order if f in seen] + sorted(seen - set(order)))
    cells = {(feature, r["mesh"]): _cell(feature, r) for r in reports for feature in features}
    failures = {r["mesh"]: tuple(f"{t['shortName']}: {_one_line(t.get('reason'))}" for t in r.get("tests", [])
                                 if t.get("outcome") in FAILED_OUTCOMES) for r in reports}
    versions = {r["mesh"]: str((r.get("implementation") or {}).get("version", "")) for r in reports}
    return Comparison(meshes=meshes, versions=versions, features=features, cells=cells, failures=failures)


def _cell(feature: str, report: Mapping[str, Any]) -> Cell:
    tests = [t for t in report.get("tests", []) if feature in t.get("features", [])]
    ran = [t for t in tests if t.get("outcome") in ("PASSED", *FAILED_OUTCOMES)]
    failed = [t for t in ran if t["outcome"] in FAILED_OUTCOMES]
    numbers = tuple(_numbers(ran))[:KEY_NUMBERS_PER_CELL]
    if failed:
        return Cell("fail", passed=len(ran) - len(failed), failed=len(failed), numbers=numbers,
                    reasons=tuple(_one_line(t.get("reason")) for t in failed))
    if ran:
        return Cell("pass", passed=len(ran), numbers=numbers)
    not_supported = [t for t in tests if t.get("outcome") == "NOT_SUPPORTED"]
    if not_supported or feature not in report.get("declaredFeatures", []):
        return Cell("not supported", reasons=tuple(dict.fromkeys(_one_line(t.get("reason")) for t in not_supported)))
    return Cell("untested")


def _numbers(tests: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    for t in tests:
        for name, m in ((t.get("evidence") or {}).get("measurements") or {}).items():
            value = m.get("value") if isinstance(m, Mapping) else m
            unit = (m.get("unit") or "") if isinstance(m, Mapping) else ""
            if isinstance(value, (int, float)):
                yield f"{name}={_fmt(value)}{(' ' + unit) if unit and unit != 'ratio' else ''}"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _one_line(text: Any, limit: int = 160) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


# -- rendering ----------------------------------------------------------------------------------------

_STYLE = {"pass": "green", "fail": "bold red", "not supported": "yellow", "untested": "dim"}


def render_table(comparison: Comparison):
    """A rich Table: one row per feature, one column per mesh."""
    from rich.table import Table

    table = Table(title="meshconform: features × meshes", show_lines=False)
    table.add_column("feature", style="bold")
    for mesh in comparison.meshes:
        table.add_column(f"{mesh} {comparison.versions.get(mesh, '')}".strip())
    for feature in comparison.features:
        row = []
        for mesh in comparison.meshes:
            cell = comparison.cells[(feature, mesh)]
            text = f"[{_STYLE[cell.status]}]{cell.label}[/]"
            if cell.numbers:
                text += "\n[dim]" + "; ".join(cell.numbers) + "[/]"
            row.append(text)
        table.add_row(feature, *row)
    return table


def render_markdown(comparison: Comparison) -> str:
    lines = ["| feature | " + " | ".join(f"{m} {comparison.versions.get(m, '')}".strip()
                                         for m in comparison.meshes) + " |",
             "|---|" + "---|" * len(comparison.meshes)]
    for feature in comparison.features:
        cells = []
        for mesh in comparison.meshes:
            cell = comparison.cells[(feature, mesh)]
            text = f"**{cell.label}**" if cell.status == "fail" else cell.label
            if cell.numbers:
                text += "<br>" + "; ".join(cell.numbers)
            cells.append(text.replace("|", "\\|"))
        lines.append(f"| {feature} | " + " | ".join(cells) + " |")
    for mesh in comparison.meshes:
        if comparison.failures.get(mesh):
            lines += ["", f"**{mesh}: failed checks**", ""]
            lines += [f"- {line}".replace("|", "\\|") for line in comparison.failures[mesh]]
    return "\n".join(lines) + "\n"
