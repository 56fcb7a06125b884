"""A check under Locust load: ``--background-load=USERS`` and the ``background_load`` fixture.

A check asks for the fixture (harness/plugin.py registers it); with ``--background-load`` 0, the
default, it yields None and touches nothing. Above 0, for the duration of the check:

- the traffic plan is built from the check's deployment — its suite's ``scenario`` and ``deployment``
  fixtures, with each workload's outbound listener from the adapter's MeshDataPlane
  (harness/locust/plan.py, target.py) — so the Locust users play the scenario's client app;
- Locust runs headless in one process of its own (command.py's command line, supervisor.py's
  :class:`LocustProcesses`; never in pytest's process: ``import locust`` monkey-patches it), and the
  check starts only once every user runs and requests flow (the status file, polled to a deadline);
- after the check, pass or fail, Locust is asked to stop (``--mc-stop``: it quits as at the end of
  ``--run-time``, so its result holds its last numbers), then every Locust process of the run is
  stopped and looked for with psutil — none is left;
- what ran lands in the check's evidence under ``background_load`` (users, requests, failures, exact
  percentiles in µs, the split the load saw, where its files are) with a latency plot, and the run's
  own files (Locust's CSV and HTML, percentiles-us.json, smp.yaml, meshconform-load.html) under
  ``<report dir>/background-load/<check>/``.

Failed load requests do not fail the check (its own assertions judge the mesh); a load that never
started, died during the check or sent nothing is an error of the check, never a silent pass.
"""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.settings import BackgroundLoadSettings

SPAWN_RATE_MAX = 100.0  # users started per second (Locust warns above 100 per process)
MAX_RUN_TIME_S = 1800  # Locust's own --run-time: the bound should the stop request never come
START_DEADLINE_S = 60.0  # until every user runs and the first requests are answered
STOP_DEADLINE_S = 30.0  # from the stop request until Locust has written its result and exited
POLL_S = 0.1


@dataclass(frozen=True)
class BackgroundLoad:
    """The load running during the check (what the fixture yields when it is on)."""

    users: int
    run_id: str  # every Locust process carries it (MESHCONFORM_RUN_ID)
    directory: Path
    source: str  # the workload whose app the users play
    outbound: str  # its outbound listener, where the load goes

    def status(self) -> dict[str, Any] | None:
        """Locust's latest progress (state, users, requests, failures), or None."""
        from harness.locust.progress import read_status

        return read_status(self.directory / "status.json")


def run(request: pytest.FixtureRequest, evidence: Any, settings: BackgroundLoadSettings,
        report_dir: Path) -> Iterator[BackgroundLoad | None]:
    """The fixture's body (``yield from`` it): None when off, else the load around the check."""
    if not settings.on:
        yield None
        return
    from harness.locust import results
    from harness.locust.command import RunFiles, load_argv
    from harness.locust.options import shipped_names
    from harness.locust.plan import build_plan
    from harness.locust.progress import read_status
    from harness.locust.supervisor import LocustProcesses
    from harness.locust.target import TargetError, workload_states
    from meshruntime.processes import wait_ready, wait_until

    name = _check_name(request)
    adapter = request.getfixturevalue("mesh")
    scenario = _suite_fixture(request, "scenario", "the scenario the check's suite deployed")
    deployment = _suite_fixture(request, "deployment", "the check's deployment (what `mesh.deploy` returned)")
    try:
        plan = build_plan(scenario, workload_states(adapter, deployment))
    except TargetError as exc:
        pytest.fail(f"--background-load: {exc}", pytrace=False)
    for shipped in sorted(shipped_names(settings.locustfiles)):
        why = plan.lacks(shipped)
        if why:
            pytest.fail(f"--background-load-locustfile {shipped}: {why}", pytrace=False)

    files = RunFiles(report_dir / "background-load" / re.sub(r"[^A-Za-z0-9_.-]+", "_", name))
    files.out.mkdir(parents=True, exist_ok=True)
    for stale in (files.status, files.result, files.stop, files.percentiles, files.smp):
        stale.unlink(missing_ok=True)
    spawn_rate = min(float(settings.users), SPAWN_RATE_MAX)
    load = BackgroundLoad(users=settings.users, run_id=f"bgload-{uuid.uuid4().hex[:12]}", directory=files.out,
                          source=plan.source, outbound=plan.outbound)
    procs = LocustProcesses(load.run_id)
    facts = {"mesh": adapter.name, "mesh_version": _version(adapter), "source": plan.source,
             "outbound": plan.outbound, "locustfiles": [str(p) for p in settings.locustfiles],
             "users": settings.users, "spawn_rate": spawn_rate, "rate_per_user": plan.rate_per_user,
             "locust_workers": 0, "background_of": name, "run_id": load.run_id}
    result = None
    died: str | None = None
    leftovers: list[int] = []
    try:
        proc = procs.start("locust", load_argv(sys.executable, settings.locustfiles, files, users=settings.users,
                                               spawn_rate=spawn_rate, run_time_s=MAX_RUN_TIME_S,
                                               target=plan.outbound, plan_json=plan.to_json(), master=None,
                                               stoppable=True),
                           files.log("locust"))
        try:
            wait_ready(proc, f"--background-load: {settings.users} Locust users sending to {plan.outbound}",
                       time.monotonic() + START_DEADLINE_S,
                       lambda: _flowing(read_status(files.status), settings.users), interval=POLL_S)
        except TimeoutError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield load
        if not proc.running():
            died = f"Locust exited with code {proc.exit_code()} during the check:\n{proc.log_tail()}"
        files.stop.touch()
        try:
            wait_until(lambda: not proc.running(), timeout=STOP_DEADLINE_S, what="Locust to stop", interval=POLL_S)
        except TimeoutError:
            died = died or f"Locust did not stop within {STOP_DEADLINE_S:.0f} s of the stop request"
        result = _read_json(files.result)
    finally:
        leftovers = procs.stop()
    if result is None:
        pytest.fail(f"--background-load: {died or 'Locust wrote no result'}\n{files.log('locust')}", pytrace=False)
    doc = results.percentiles_document(result, plan, facts)
    smp = results.smp_document(result, test_id=f"background-load/{name}", mesh=adapter.name,
                               mesh_version=facts["mesh_version"],
                               requested_qps=settings.users * plan.rate_per_user or None)
    results.write(files.percentiles, files.smp, doc, smp)
    _record(evidence, doc, files, leftovers)
    if died:
        pytest.fail(f"--background-load: {died}", pytrace=False)
    if not doc["count"]:
        pytest.fail(f"--background-load: Locust sent no request to {plan.outbound} (see {files.log('locust')})",
                    pytrace=False)


def _record(evidence: Any, doc: dict[str, Any], files: Any, leftovers: list[int]) -> None:
    from harness.report.formats import LOAD_FORMATS
    from harness.report.load_report import latency_spectrum, load_summary
    from harness.report.writer import write_reports

    written, errors = write_reports(doc, files.out, "", formats=LOAD_FORMATS)
    summary = load_summary(doc)
    summary.update(run_id=doc["run_id"], background_of=doc["background_of"], leftover_locust_processes=leftovers,
                   files={"directory": str(files.out), "locust_html": str(files.html),
                          "percentiles": str(files.percentiles), "pages": written, "page_errors": errors})
    offered = summary["users"] * summary["rate_per_user"]
    summary["offered_qps"] = offered or None  # None: back to back, no stated rate
    evidence["background_load"] = summary
    p = summary["percentiles_us"]
    evidence.note(f"under background load: {summary['users']} Locust users sent {summary['requests']:,} requests "
                  f"({summary['failures']:,} failed, {summary['actual_qps']:.0f} req/s"
                  + (f" of {offered:,.0f} offered" if offered else "")
                  + f"), p50 {p['p50']:,} µs, p99 {p['p99']:,} µs")
    spectrum = latency_spectrum(doc.get("histogram", ""))
    if spectrum["x"]:
        evidence.plot("background load: latency by percentile", kind="line", xlabel="percentile", ylabel="µs",
                      data=spectrum)


def _flowing(status: dict[str, Any] | None, users: int) -> bool:
    """Every user runs and requests are being answered."""
    return bool(status) and status.get("users", 0) >= users and status.get("requests", 0) > 0


def _suite_fixture(request: pytest.FixtureRequest, fixture: str, what: str) -> Any:
    try:
        return request.getfixturevalue(fixture)
    except pytest.FixtureLookupError:
        pytest.fail(f"--background-load: the check's suite has no `{fixture}` fixture ({what}), so the load "
                    "does not know where to go", pytrace=False)


def _check_name(request: pytest.FixtureRequest) -> str:
    from harness.checks import check_of

    check = check_of(request.node)
    return check.short_name if check is not None else request.node.name


def _version(adapter: Any) -> str:
    try:
        return adapter.implementation().version
    except Exception:  # the version is a label; its absence must not fail the check
        return "unknown"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
