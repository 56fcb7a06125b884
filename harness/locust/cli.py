"""``meshconform load``: Locust load through a mesh, with exact latency percentiles.

    meshconform load [--mesh=NAME] [--scenario FILE | --state FILE] [--locustfile canary|routes|retries|F,...]
                     [--users N] [--spawn-rate R] [--run-time 30s] [--rate-per-user R]
                     [--workers K [--local-workers L] [--master-host H[:PORT]]] [--out DIR]
    meshconform load --worker --master-host H[:PORT] [--workers K]     # K workers for a master elsewhere

It starts the mesh through its adapter (or uses the reference mesh `meshconform up --state` runs), then
Locust headless in processes of its own (never in this one: ``import locust`` monkey-patches the
interpreter): one process, or with ``--workers K`` Locust's master and K workers. Every Locust
process records each response in µs into HdrHistogram; the master merges the workers' histograms
exactly. Into ``--out`` (default ``reports/load-<mesh>/``): Locust's CSV and HTML, ``percentiles-us.json``,
``smp.yaml`` and our page of the run, ``meshconform-load.html`` (harness/report/load_report.py). It
stops by itself after ``--run-time``; Ctrl-C or SIGTERM stops every Locust process and the mesh it
started. Exit codes: 0 no failed request, 1 failures or a runtime failure, 2 bad
flags, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console
from rich.table import Table

from harness.locust.options import SHIPPED, LoadOptions, LoadUsageError, validate

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 400)

POLL_S = 0.2  # pace of the progress loop
START_GRACE_S = 60.0  # Locust start-up and shutdown, beyond --run-time (and the workers' wait)


class _Stop(Exception):
    """Raised from the SIGINT/SIGTERM handler so the run unwinds through its finally: block."""


class _Interrupts:
    """Ctrl-C and SIGTERM. Outside the progress loops they raise at once (_Stop); inside them they only
    set ``requested``, which the loop checks every POLL_S: an exception raised asynchronously inside rich's
    refresh code can leave its console lock held, and the Live display's exit then waits for its refresh
    thread forever (CI saw ``meshconform load`` hang 30 s after a Ctrl-C)."""

    deferred = False
    requested = False

    @classmethod
    def handler(cls, signum, frame):
        if cls.deferred:
            cls.requested = True
            return
        raise _Stop()

    @classmethod
    @contextmanager
    def polling(cls) -> Iterator[None]:
        cls.deferred = True
        try:
            yield
        finally:
            cls.deferred = False
        if cls.requested:
            raise _Stop()


def add_load_command(sub: Any) -> None:
    """Add ``load`` to the ``meshconform`` command's subcommands."""
    load = sub.add_parser("load", help="run Locust through a mesh (exact µs percentiles, Locust's distributed mode)",
                          description=__doc__.split("\n\n")[0])
    load.error = _usage_error  # one line naming the flag, exit 2
    add = load.add_argument
    add("--mesh", metavar="NAME", help="mesh adapter to start (default: reference)")
    add("--scenario", metavar="FILE", help="scenario YAML/JSON to deploy (default: the bundled default scenario)")
    add("--state", metavar="FILE",
        help="use the reference mesh `meshconform up --state FILE` runs instead of starting one")
    add("--locustfile", metavar="F", default="canary",
        help=f"shipped ({', '.join(SHIPPED)}) or your own, comma-separated (default: canary)")
    add("--users", metavar="N", help="Locust users (default 10)")
    add("--spawn-rate", metavar="R", help="users started per second (default 10)")
    add("--run-time", metavar="T", help="how long the load runs: 30s, 2m, 1h30m (default 30s)")
    add("--rate-per-user", metavar="R", help="requests per second per user, 0 = back to back (default 10)")
    add("--workers", metavar="K", help="run Locust's master and this many workers (default: one process)")
    add("--local-workers", metavar="L",
        help="of --workers, how many to start here (default all; the rest join with --worker)")
    add("--master-host", metavar="HOST[:PORT]",
        help="where the master listens and workers connect (default: a free loopback address)")
    add("--worker", action="store_true", help="only start --workers workers for the master at --master-host")
    add("--out", metavar="DIR", help="output directory (default reports/load-<mesh>/)")
    load.set_defaults(run=run_load)


def _usage_error(message: str) -> None:
    errors.print(f"meshconform load: {message}", markup=False)
    sys.exit(2)


def run_load(args: argparse.Namespace) -> int:
    from harness.locust.target import mesh_names

    try:
        opts = validate(args, [] if args.worker else mesh_names())
    except LoadUsageError as exc:
        errors.print(f"meshconform load: {exc}", markup=False)
        return 2
    if importlib.util.find_spec("locust") is None:
        errors.print("meshconform load: Locust is not installed (pip install 'meshconform[load]')", markup=False)
        return 1
    try:
        with _interrupts_handled():
            return _workers_only(opts) if opts.worker_only else _load(opts)
    except (KeyboardInterrupt, _Stop):
        errors.print("meshconform load: interrupted; Locust and the mesh are stopped", markup=False)
        return 130


def _load(opts: LoadOptions) -> int:
    from harness.locust import results
    from harness.locust.command import WORKERS_MAX_WAIT_S, RunFiles, load_argv, worker_argv
    from harness.locust.plan import build_plan
    from harness.locust.progress import LoadProgress, read_status
    from harness.locust.supervisor import LocustProcesses
    from harness.locust.target import TargetError, attach, load_scenario_file, start
    from harness.report.formats import LOAD_FORMATS
    from harness.report.writer import write_reports

    files = RunFiles(opts.out)
    procs = LocustProcesses(f"load-{uuid.uuid4().hex[:12]}")
    mesh = None
    try:
        try:
            scenario = None if opts.state else load_scenario_file(opts.scenario)
            if scenario is not None:
                _require_traffic(opts, build_plan(scenario, rate_per_user=opts.rate_per_user))
            with console.status(f"starting the {opts.mesh} mesh…" if scenario else "reading the running mesh…"):
                mesh = attach(opts.state) if opts.state else start(opts.mesh, scenario)
            plan = build_plan(mesh.scenario, mesh.workloads, rate_per_user=opts.rate_per_user)
            _require_traffic(opts, plan)
            opts.out.mkdir(parents=True, exist_ok=True)
            for stale in (files.status, files.result, files.percentiles, files.smp):
                stale.unlink(missing_ok=True)
        except LoadUsageError as exc:
            errors.print(f"meshconform load: {exc}", markup=False)
            return 2
        except TargetError as exc:
            errors.print(f"meshconform load: {exc}", markup=False)
            return 2 if exc.usage else 1
        for label, why in plan.skipped:
            console.print(f"route {label} gets no traffic: {why}", markup=False)
        master = None
        if opts.workers:
            master = (opts.master_host or _loopback_master(opts.master_port), opts.master_port, opts.workers)
        python = sys.executable
        main = procs.start("locust-master" if master else "locust",
                           load_argv(python, opts.locustfiles, files, users=opts.users, spawn_rate=opts.spawn_rate,
                                     run_time_s=opts.run_time_s, target=plan.outbound, plan_json=plan.to_json(),
                                     master=master),
                           files.log("locust-master" if master else "locust"))
        workers = [procs.start(f"locust-worker-{i + 1}", worker_argv(python, opts.locustfiles, master[0], master[1]),
                               files.log(f"locust-worker-{i + 1}"))
                   for i in range(opts.local_workers)] if master else []
        console.print(f"{opts.mesh}: {plan.source} → outbound {plan.outbound}, {opts.users} users, "
                      f"{opts.run_time_s} s" + (f", master {master[0]}:{master[1]} + {opts.workers} workers"
                                                if master else ""), markup=False)
        deadline = time.monotonic() + opts.run_time_s + START_GRACE_S + (WORKERS_MAX_WAIT_S if master else 0)
        with _Interrupts.polling(), LoadProgress(console, opts.run_time_s, opts.workers) as progress:
            while main.running() and not _Interrupts.requested:
                progress.update(read_status(files.status))
                dead = next((w for w in workers if w.exit_code() not in (None, 0)), None)
                if dead is not None:
                    errors.print(f"meshconform load: {dead.name} exited with code {dead.exit_code()}:\n"
                                 f"{dead.log_tail()}", markup=False)
                    return 1
                if time.monotonic() > deadline:
                    errors.print(f"meshconform load: Locust did not stop by itself by {opts.run_time_s} s + grace",
                                 markup=False)
                    return 1
                time.sleep(POLL_S)  # pace of the progress display
            if not _Interrupts.requested:
                progress.update(read_status(files.status))
        result = _read_json(files.result)
        if result is None:
            errors.print(f"meshconform load: Locust exited with code {main.exit_code()} and wrote no result:\n"
                         f"{main.log_tail()}", markup=False)
            return 1
        percentiles = results.percentiles_document(result, plan, _run_facts(opts, mesh, plan))
        smp = results.smp_document(result, test_id=f"load/{'+'.join(p.stem for p in opts.locustfiles)}",
                                   mesh=mesh.name, mesh_version=mesh.version,
                                   requested_qps=opts.users * opts.rate_per_user if opts.rate_per_user else None)
        results.write(files.percentiles, files.smp, percentiles, smp)
        pages, page_errors = write_reports(percentiles, opts.out, mesh.name, formats=LOAD_FORMATS)
        for error in page_errors:
            errors.print(f"meshconform load: could not write {error}", markup=False)
        _print_summary(percentiles, files, pages)
        if not result.get("csv_caught_up", True):
            console.print("note: Locust's CSV did not catch up with its final numbers", markup=False)
        failed = percentiles["failures"] or percentiles["locust"].get("failures", 0)
        if failed:
            errors.print(f"meshconform load: {failed} failed requests (see {files.csv_prefix}_failures.csv)",
                         markup=False)
        return 1 if failed else 0
    finally:
        with _signals_ignored():
            leftovers = procs.stop()
            if leftovers:
                errors.print(f"meshconform load: killed leftover Locust processes {leftovers}", markup=False)
            if mesh is not None:
                mesh.close()


def _workers_only(opts: LoadOptions) -> int:
    """Workers for a master on another host; they fetch the locustfiles from it and quit with it."""
    from harness.locust.command import RunFiles, worker_argv
    from harness.locust.supervisor import LocustProcesses

    files = RunFiles(opts.out)
    opts.out.mkdir(parents=True, exist_ok=True)
    procs = LocustProcesses(f"load-workers-{uuid.uuid4().hex[:12]}")
    try:
        workers = [procs.start(f"locust-worker-{i + 1}", worker_argv(sys.executable, None, opts.master_host,
                                                                     opts.master_port),
                               files.log(f"locust-worker-{i + 1}")) for i in range(opts.workers)]
        with _Interrupts.polling(), console.status(
                f"{opts.workers} Locust workers for the master at {opts.master_host}:{opts.master_port}…"):
            while any(w.running() for w in workers) and not _Interrupts.requested:
                time.sleep(POLL_S)  # pace of polling the workers
        failed = [w for w in workers if w.exit_code() != 0]
        for w in failed:
            errors.print(f"meshconform load: {w.name} exited with code {w.exit_code()}:\n{w.log_tail()}",
                         markup=False)
        console.print(f"{len(workers) - len(failed)} of {len(workers)} workers finished; logs in {opts.out}",
                      markup=False)
        return 1 if failed else 0
    finally:
        with _signals_ignored():
            procs.stop()


def _require_traffic(opts: LoadOptions, plan) -> None:
    for name in sorted(opts.shipped):
        why = plan.lacks(name)
        if why:
            raise LoadUsageError(f"--locustfile {name}: {why}")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _loopback_master(port: int) -> str:
    """A free loopback address for the master, from a block no one uses (meshruntime/layout.py)."""
    from meshruntime.layout import port_is_free, random_block

    return f"{random_block(free=lambda block: port_is_free(f'{block}.1', port))}.1"


def _run_facts(opts: LoadOptions, mesh, plan) -> dict[str, Any]:
    return {"mesh": mesh.name, "mesh_version": mesh.version, "source": plan.source, "outbound": plan.outbound,
            "locustfiles": [str(p) for p in opts.locustfiles], "users": opts.users, "spawn_rate": opts.spawn_rate,
            "run_time_s": opts.run_time_s, "rate_per_user": opts.rate_per_user, "locust_workers": opts.workers}


def _print_summary(doc: dict[str, Any], files, pages: list[str]) -> None:
    p = doc["percentiles_us"]
    table = Table(title=f"meshconform load · {doc['mesh']} · {doc['count']} requests, {doc['failures']} failures, "
                        f"{doc['actual_qps']:.0f} req/s")
    for column in ("p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"):
        table.add_column(column, justify="right")
    table.add_row(*(f"{p[k]:,}" for k in ("p50", "p90", "p99", "p99_9", "max")))
    console.print(table)
    for label, split in doc["split"].items():
        shares = ", ".join(f"{v} {split['observed'][v]:.1%} (declared {split['declared'][v]:.0%})"
                           for v in split["declared"])
        console.print(f"split {label}: {shares} over {split['answers']} answers", markup=False)
    written = [f"{files.csv_prefix}_stats.csv", files.html, files.percentiles, files.smp, *pages]
    console.print(f"files: {', '.join(map(str, written))}", markup=False)


@contextmanager
def _interrupts_handled() -> Iterator[None]:
    """Route SIGINT and SIGTERM to _Interrupts for one run; a request left from an earlier run is dropped."""
    _Interrupts.requested = False
    previous = signal.signal(signal.SIGINT, _Interrupts.handler), signal.signal(signal.SIGTERM, _Interrupts.handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """A second Ctrl-C or SIGTERM must not interrupt the cleanup."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])



