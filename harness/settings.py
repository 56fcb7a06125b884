"""The plugin's options, each with an ini twin, parsed once into a frozen :class:`Settings`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.features import Feature, UnknownFeature, parse_features

# (command-line flag, dest, ini name, ini type, default, help)
OPTIONS = [
    ("--mesh", "meshconform_mesh", "meshconform_mesh", "string", "reference",
     "mesh adapter to test, by name in the meshconform.adapters entry points (default: reference)"),
    ("--supported-features", "meshconform_supported", "meshconform_supported_features", "string", "",
     "comma list of features the mesh supports (default: what the adapter declares)"),
    ("--exempt-features", "meshconform_exempt", "meshconform_exempt_features", "string", "",
     "comma list of features to treat as unsupported"),
    ("--skip-tests", "meshconform_skip", "meshconform_skip_tests", "string", "",
     "comma list of check short names to deselect"),
    ("--run-test", "meshconform_run", "meshconform_run_tests", "string", "",
     "comma list of check short names to run; every other test is deselected"),
    ("--report-output", "meshconform_report_dir", "meshconform_report_output", "string", "reports",
     "directory for the conformance, JUnit, HTML and SMP reports (default: reports)"),
]
MESH_OPTION = ("--mesh-option", "meshconform_mesh_options", "meshconform_mesh_options")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("meshconform", "mesh conformance (meshconform)")
    for flag, dest, ini, ini_type, default, help_text in OPTIONS:
        group.addoption(flag, dest=dest, default=None, help=help_text)
        parser.addini(ini, help_text, type=ini_type, default=default)
    flag, dest, ini = MESH_OPTION
    group.addoption(flag, dest=dest, action="append", default=None, metavar="KEY=VALUE",
                    help="an option for the mesh adapter; repeatable")
    parser.addini(ini, "options for the mesh adapter, one KEY=VALUE a line", type="linelist", default=[])


@dataclass(frozen=True)
class Settings:
    mesh: str
    supported: frozenset[Feature] | None  # None: ask the adapter
    exempt: frozenset[Feature]
    skip_tests: frozenset[str]
    run_tests: frozenset[str]
    report_dir: Path
    mesh_options: dict[str, str]


def read_settings(config: pytest.Config) -> Settings:
    """Command line over ini over default; a bad feature name or option is a usage error."""

    def value(dest: str, ini: str) -> str:
        given = config.getoption(dest)
        return given if given is not None else config.getini(ini)

    raw = {dest: value(dest, ini) for _, dest, ini, *_ in OPTIONS}
    try:
        supported = parse_features(raw["meshconform_supported"]) if raw["meshconform_supported"].strip() else None
        exempt = parse_features(raw["meshconform_exempt"])
    except UnknownFeature as exc:
        raise pytest.UsageError(f"meshconform: {exc}") from None
    flag, dest, ini = MESH_OPTION
    pairs = config.getoption(dest) or config.getini(ini)
    options = {}
    for pair in pairs:
        key, eq, val = pair.partition("=")
        if not eq or not key.strip():
            raise pytest.UsageError(f"meshconform: {flag} wants KEY=VALUE, got {pair!r}")
        options[key.strip()] = val.strip()
    report_dir = Path(raw["meshconform_report_dir"])
    return Settings(
        mesh=raw["meshconform_mesh"].strip() or "reference",
        supported=supported,
        exempt=exempt,
        skip_tests=_names(raw["meshconform_skip"]),
        run_tests=_names(raw["meshconform_run"]),
        report_dir=report_dir if report_dir.is_absolute() else config.invocation_params.dir / report_dir,
        mesh_options=options,
    )


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip() for n in text.split(",") if n.strip())
