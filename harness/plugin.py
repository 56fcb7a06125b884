"""meshconform's pytest plugin (entry point ``pytest11: meshconform``): thin glue to pytest.

It stays dormant unless collection selects a conformance check (a test decorated with
``harness.checks.conformance``) or a test uses the ``mesh`` fixture: a plain ``pytest tests/`` loads no
adapter, starts no mesh and writes no report. When active it

- registers each collected check (a duplicate short name is a collection error naming both places),
- applies ``--run-test`` / ``--skip-tests``, constructs the adapter named by ``--mesh``,
- gives each check NOT_SUPPORTED (its own outcome, letter ``N``) when a feature it needs is not
  supported or is exempt, in ``pytest_runtest_setup`` before any fixture could start a mesh,
- with ``--background-load=USERS``, runs the checks that ask for ``background_load`` under Locust load
  (in processes of its own, harness/locust/background.py),
- collects outcomes and ``evidence``, and at the end writes the YAML, JUnit, HTML (and SMP) reports
  under ``--report-output`` and prints profile results in the terminal summary.

Adapters register by name through the entry-point group ``meshconform.adapters`` or the hook
``pytest_meshconform_adapters(config) -> {name: factory}``. Heavy modules (report writers, jinja2,
matplotlib, the adapter itself) are imported only when used.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from harness.checks import ATTRIBUTE, MARKER, ConformanceCheck, DuplicateCheck, check_of
from harness.evidence import Evidence
from harness.locust import background as _background
from harness.outcome import NotSupported, reason_of
from harness.session import ConformanceSession, adapter_factories
from harness.settings import (BackgroundLoadSettings, add_options, read_background_load, read_performance,
                              read_settings)

_SESSION = pytest.StashKey[ConformanceSession]()
_EVIDENCE = pytest.StashKey[Evidence]()
_BACKGROUND_LOAD = pytest.StashKey[BackgroundLoadSettings]()
_NOT_SUPPORTED_PROPERTY = ("meshconform_outcome", "NOT_SUPPORTED")


class _HookSpecs:
    @pytest.hookspec
    def pytest_meshconform_adapters(self, config: pytest.Config) -> dict[str, Any]:
        """Return ``{name: factory}``; ``factory(options=dict)`` builds an unstarted MeshAdapter."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(_HookSpecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(check): a meshconform conformance check (set by @conformance)")
    config.stash[_SESSION] = ConformanceSession(read_settings(config))
    config.stash[_BACKGROUND_LOAD] = read_background_load(config)
    read_performance(config)  # a bad --latency-budget etc. is a usage error now, not an error mid-run


def _session(config: pytest.Config) -> ConformanceSession:
    return config.stash[_SESSION]


# -- collection ------------------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    check = getattr(obj, ATTRIBUTE, None) if callable(obj) else None
    if isinstance(check, ConformanceCheck):
        try:
            _session(collector.config).registry.add(check)
        except DuplicateCheck as exc:
            raise collector.CollectError(str(exc)) from None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    state = _session(config)
    _check_names(state, "--run-test", state.settings.run_tests)
    _check_names(state, "--skip-tests", state.settings.skip_tests)
    keep, drop = [], []
    for item in items:
        check = check_of(item)
        name = check.short_name if check else None
        if state.settings.run_tests and name not in state.settings.run_tests:
            drop.append(item)
        elif name is not None and name in state.settings.skip_tests:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    for item in items:
        check = check_of(item)
        if check is not None:
            from harness.session import Tracked

            state.tracked[item.nodeid] = Tracked(check)
    if state.tracked or any("mesh" in getattr(item, "fixturenames", ()) for item in items):
        state.activate(adapter_factories(config))
        if state.tracked:
            _point_junit_at_reports(config, state)


def _check_names(state: ConformanceSession, flag: str, names: frozenset[str]) -> None:
    unknown = sorted(n for n in names if n not in state.registry)
    if unknown:
        known = ", ".join(c.short_name for c in state.registry) or "none collected"
        raise pytest.UsageError(f"meshconform: {flag} names checks that were not collected: "
                                f"{', '.join(unknown)} (collected: {known})")


def _point_junit_at_reports(config: pytest.Config, state: ConformanceSession) -> None:
    """Use pytest's own junitxml for the JUnit report unless the user chose a file (or disabled it).

    junitxml creates its writer in ``pytest_configure`` — too early to know whether checks run — so this
    does the same thing it does, once collection has decided.
    """
    if config.option.xmlpath or not config.pluginmanager.has_plugin("junitxml") or hasattr(config, "workerinput"):
        return
    from _pytest import junitxml

    path = state.settings.report_dir / f"junit-{state.file_stem()}.xml"
    config.option.xmlpath = str(path)
    xml = junitxml.LogXML(str(path), config.option.junitprefix, config.getini("junit_suite_name"),
                          config.getini("junit_logging"), config.getini("junit_duration_report"),
                          config.getini("junit_family"), config.getini("junit_log_passing_tests"))
    config.stash[junitxml.xml_key] = xml
    config.pluginmanager.register(xml)
    xml.pytest_sessionstart()
    state.report_paths.append(str(path))


def pytest_collection_finish(session: pytest.Session) -> None:
    state = _session(session.config)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if state.active and reporter is not None:
        impl = state.implementation
        reporter.write_line(f"meshconform: mesh={state.settings.mesh} implementation={impl.project} {impl.version}")


# -- fixtures --------------------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture (a session-scoped ``mesh`` would otherwise start first), so an unsupported
    check never starts a mesh."""
    state = item.config.stash.get(_SESSION, None)
    if state is not None and state.active:
        state.gate(item.nodeid)


@pytest.fixture(scope="session")
def mesh(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The adapter of the mesh under test, set up once per session and closed at its end (Ctrl-C too)."""
    state = _session(request.config)
    if not state.active:
        pytest.fail("meshconform: no mesh adapter is active")
    request.addfinalizer(state.close_mesh)
    yield state.set_up_mesh()


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    """What this test observed; lands in the report for this test, pass or fail."""
    ev = Evidence()
    request.node.stash[_EVIDENCE] = ev
    return ev


@pytest.fixture
def background_load(request: pytest.FixtureRequest, evidence: Evidence) -> Iterator[Any]:
    """With ``--background-load=USERS``, Locust users load the check's deployment while it runs (in processes
    of their own, all stopped after it), recorded in its evidence; None when off (harness/locust/background.py)."""
    yield from _background.run(request, evidence, request.config.stash[_BACKGROUND_LOAD],
                               _session(request.config).settings.report_dir)


# -- outcomes --------------------------------------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(NotSupported):
        report.meshconform_not_supported = True
        item.user_properties.append(_NOT_SUPPORTED_PROPERTY)  # junitxml reads them from the teardown report
    tracked = _session(item.config).tracked.get(item.nodeid)
    if tracked is not None:
        tracked.phases.add(report.when, report.passed, report.failed, report.skipped,
                           not_supported=getattr(report, "meshconform_not_supported", False),
                           reason=None if report.passed else reason_of(report),
                           duration_s=report.duration, xfail=hasattr(report, "wasxfail"))
        ev = item.stash.get(_EVIDENCE, None)
        if ev is not None:
            tracked.evidence = ev.to_dict()
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    if getattr(report, "meshconform_not_supported", False):
        return "not_supported", "N", ("NOT_SUPPORTED", {"yellow": True})
    return None


# -- end of session ----------------------------------------------------------------------------------

def pytest_sessionfinish(session: pytest.Session) -> None:
    state = _session(session.config)
    if state.active and state.tracked:
        from harness.report.writer import write_reports

        run = state.finish()
        if run.results:
            paths, errors = write_reports(run, state.settings.report_dir, state.file_stem())
            state.report_paths[:0] = paths
            state.report_errors += errors


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(_SESSION, None)
    if state is None or state.run is None or not state.run.results:
        return
    from harness.report.terminal import summary_lines

    terminalreporter.section("meshconform")
    for line, markup in summary_lines(state.run, state.report_paths, state.report_errors):
        terminalreporter.write_line(line, **markup)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_SESSION, None)
    if state is not None:
        state.close_mesh()  # normally closed by the fixture finalizer; this is the last resort
