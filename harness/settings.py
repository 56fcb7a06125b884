"""The plugin's options, each with an ini twin, parsed once into a frozen :class:`Settings`."""

from __future__ import annotations

from collections.abc import Callable

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
    ("--runtime", "meshconform_runtime", "meshconform_runtime", "string", "local",
     "where the mesh runs: local (processes) or docker (containers; reference mesh); passed to the adapter "
     "as its option runtime=... unless local (default: local)"),
]
MESH_OPTION = ("--mesh-option", "meshconform_mesh_options", "meshconform_mesh_options")
# The performance checks' budgets (suites/performance), same shape as OPTIONS; parsed by read_performance.
PERFORMANCE_OPTIONS = [
    ("--latency-budget", "meshconform_latency_budget", "meshconform_latency_budget", "string", "2",
     "MeshLatencyOverhead/MeshThroughput: added p99 per proxy hop, in ms (default: 2)"),
    ("--latency-rates", "meshconform_latency_rates", "meshconform_latency_rates", "string", "500,2000",
     "MeshLatencyOverhead: open-loop rates in req/s, comma list (default: 500,2000)"),
    ("--latency-repeats", "meshconform_latency_repeats", "meshconform_latency_repeats", "string", "9",
     "MeshLatencyOverhead: interleaved repeats per rate, at least 5 (default: 9)"),
    ("--propagation-budget", "meshconform_propagation_budget", "meshconform_propagation_budget", "string", "5",
     "MeshConfigPropagation: p99 seconds from apply to the first request served by the new route (default: 5)"),
    ("--resource-rate", "meshconform_resource_rate", "meshconform_resource_rate", "string", "1000",
     "MeshResourceUse: the rate in req/s at which CPU and memory are measured (default: 1000)"),
    ("--cpu-budget", "meshconform_cpu_budget", "meshconform_cpu_budget", "string", "",
     "MeshResourceUse: optional vCPU per proxy per 1,000 req/s (Istio publishes 0.20)"),
    ("--memory-budget", "meshconform_memory_budget", "meshconform_memory_budget", "string", "",
     "MeshResourceUse: optional peak resident MB per proxy (Istio publishes 60)"),
]

# Locust load on the mesh while the checks that ask for it run (harness/locust/background.py), same shape
# as OPTIONS; parsed by read_background_load.
BACKGROUND_LOAD_OPTIONS = [
    ("--background-load", "meshconform_background_load", "meshconform_background_load", "string", "0",
     "run the checks that ask for it (the weighted splits) while this many Locust users load the mesh; "
     "0 = off (default: 0)"),
    ("--background-load-locustfile", "meshconform_background_locustfile",
     "meshconform_background_load_locustfile", "string", "routes",
     "the background load's locustfile: shipped canary, routes or retries, or a path; comma list "
     "(default: routes)"),
]


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("meshconform", "mesh conformance (meshconform)")
    for flag, dest, ini, ini_type, default, help_text in OPTIONS:
        group.addoption(flag, dest=dest, default=None, help=help_text)
        parser.addini(ini, help_text, type=ini_type, default=default)
    for flag, dest, ini, ini_type, default, help_text in PERFORMANCE_OPTIONS + BACKGROUND_LOAD_OPTIONS:
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
    runtime: str = "local"


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
    runtime = raw["meshconform_runtime"].strip() or "local"
    if runtime not in ("local", "docker"):
        raise pytest.UsageError(f"meshconform: --runtime must be local or docker, got {runtime!r}")
    if runtime != "local":
        options.setdefault("runtime", runtime)
    return Settings(
        mesh=raw["meshconform_mesh"].strip() or "reference",
        supported=supported,
        exempt=exempt,
        skip_tests=_names(raw["meshconform_skip"]),
        run_tests=_names(raw["meshconform_run"]),
        report_dir=report_dir if report_dir.is_absolute() else config.invocation_params.dir / report_dir,
        mesh_options=options,
        runtime=runtime,
    )


@dataclass(frozen=True)
class PerformanceSettings:
    latency_budget_ms: float
    latency_rates: tuple[float, ...]
    latency_repeats: int
    propagation_budget_s: float
    resource_rate: float
    cpu_budget: float | None  # vCPU per proxy per 1,000 req/s
    memory_budget_mb: float | None


def read_performance(config: pytest.Config) -> PerformanceSettings:
    """The performance budgets, command line over ini over default; a bad value names its flag."""

    def raw(flag: str) -> str:
        _, dest, ini, *_ = next(o for o in PERFORMANCE_OPTIONS if o[0] == flag)
        given = config.getoption(dest)
        return (given if given is not None else config.getini(ini)).strip()

    return _performance(raw)


def default_performance() -> PerformanceSettings:
    """The performance budgets a run gets when it sets none (what benchmarks of the checks must use)."""
    return _performance(lambda flag: next(o[4] for o in PERFORMANCE_OPTIONS if o[0] == flag))


def _performance(raw: Callable[[str], str]) -> PerformanceSettings:

    def number(flag: str, *, low: float, optional: bool = False) -> float | None:
        text = raw(flag)
        if optional and not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise pytest.UsageError(f"meshconform: {flag} wants a number, got {text!r}") from None
        if not value >= low or value != value or value == float("inf"):
            raise pytest.UsageError(f"meshconform: {flag} must be a finite number >= {low:g}, got {text!r}")
        return value

    rates_text = raw("--latency-rates")
    try:
        rates = tuple(float(r) for r in rates_text.split(",") if r.strip())
    except ValueError:
        raise pytest.UsageError(f"meshconform: --latency-rates wants a comma list of req/s, got {rates_text!r}") from None
    if not rates or any(not 1 <= r <= 100_000 for r in rates):
        raise pytest.UsageError(f"meshconform: --latency-rates wants rates in 1..100000 req/s, got {rates_text!r}")
    repeats = number("--latency-repeats", low=5)
    if repeats != int(repeats):
        raise pytest.UsageError(f"meshconform: --latency-repeats wants a whole number, got {raw('--latency-repeats')!r}")
    return PerformanceSettings(
        latency_budget_ms=number("--latency-budget", low=0.001),
        latency_rates=rates,
        latency_repeats=int(repeats),
        propagation_budget_s=number("--propagation-budget", low=0.001),
        resource_rate=number("--resource-rate", low=1),
        cpu_budget=number("--cpu-budget", low=0.0, optional=True),
        memory_budget_mb=number("--memory-budget", low=0.0, optional=True),
    )


@dataclass(frozen=True)
class BackgroundLoadSettings:
    users: int  # 0: off
    locustfiles: tuple[Path, ...]  # resolved paths, shipped ones included

    @property
    def on(self) -> bool:
        return self.users > 0


def read_background_load(config: pytest.Config) -> BackgroundLoadSettings:
    """--background-load and its locustfile, command line over ini over default; a bad value names its flag."""
    from harness.locust.options import LoadUsageError, resolve_locustfiles

    def raw(flag: str) -> str:
        _, dest, ini, *_ = next(o for o in BACKGROUND_LOAD_OPTIONS if o[0] == flag)
        given = config.getoption(dest)
        return (given if given is not None else config.getini(ini)).strip()

    text = raw("--background-load")
    try:
        users = int(text)
    except ValueError:
        raise pytest.UsageError(f"meshconform: --background-load wants a whole number of Locust users "
                                f"(0 = off), got {text!r}") from None
    if users < 0:
        raise pytest.UsageError(f"meshconform: --background-load must be at least 0 (0 = off), got {text!r}")
    try:
        locustfiles = resolve_locustfiles(raw("--background-load-locustfile"), flag="--background-load-locustfile")
    except LoadUsageError as exc:
        raise pytest.UsageError(f"meshconform: {exc}") from None
    return BackgroundLoadSettings(users=users, locustfiles=locustfiles)


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip() for n in text.split(",") if n.strip())
