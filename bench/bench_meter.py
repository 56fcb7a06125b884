"""The meter itself, benchmarked: harness.load beside wrk on the same upstreams, in one run.

    python bench/bench_meter.py [--quick] [--repeats N] [--json FILE] [--block 127.A.B] [--profile]

Two upstreams: the project's echo (fixtures.echo, httptools: what the checks measure against) and nginx
answering ``return 200`` from a config this script writes (one process, no master): fast enough that
the meter, not the upstream, is the limit. Against each, interleaved over repeats:

  (a) wrk -t1 -c16 -d3s: requests/s, and wrk's CPU µs per request (utime+stime of the wrk process,
      from the rusage wait4 returns when it exits)
  (b) the meter, closed loop, 16 connections, same duration: requests/s and CPU µs per request
      (LoadResult.cpu_s: the meter process's own CPU from t0 on, interpreter start excluded)
  (d) the meter, open loop at exactly 2,000 req/s: send lag p50/p99 and CPU µs per request
then once per upstream
  (c) harness.load.capacity.meter_capacity: the highest open-loop rate with send lag p99 ≤ 200 µs,
      one meter process, and two side by side (merged with LoadResult.merge)

The upstream's own CPU µs per request is shown beside (a) and (b). Targets: send lag p99 ≤ 100 µs
at 2,000 req/s; meter CPU per request ≤ 2× wrk's (closed loop, same upstream). JSON goes to
bench/results/meter-<date>.json (or --json) with the 1-minute load average at start and end.
``--profile`` adds where the meter's CPU goes at 2,000 req/s and closed loop (perf by shared
object, py-spy by Python function; each when installed); ``--only`` reruns some parts (a noisy row);
``--no-realtime`` skips the diagnostic row of the meter under ``chrt -f 1``. Default run ~2 minutes
(~2.5 with --profile); --quick ~20 s.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import psutil  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

from bench_hop import Processes, start_echo, wait_until_answers  # noqa: E402
from harness.load import ClosedLoop, LoadResult, OpenLoop, Target, measure  # noqa: E402
from harness.load.capacity import meter_capacity  # noqa: E402
from harness.load.cpu import CpuSample  # noqa: E402
from harness.load.spec import load_to_dict  # noqa: E402
from meshruntime.layout import normalise_block, port_is_free, random_block  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FIXED_RATE = 2000
LAG_LIMIT_US = 200
TARGET_LAG_P99_US = 100
TARGET_CPU_RATIO = 2.0
CONNECTIONS = 16
READY_TIMEOUT_S = 15.0

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {{
        listen {listen} backlog=1024;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


@dataclass(frozen=True)
class Budget:
    """How long each measurement runs; --quick shrinks everything to ~20 s in total."""

    repeats: int = 3
    run_s: int = 3  # wrk and the meter's closed loop (wrk wants whole seconds)
    fixed_s: float = 4.0  # open loop at FIXED_RATE
    step_s: float = 0.5  # each step of the capacity search
    deadline_s: float = 10.0  # each capacity search
    resolution: float = 0.1

    @classmethod
    def quick(cls) -> "Budget":
        return cls(repeats=1, run_s=1, fixed_s=1.5, step_s=0.3, deadline_s=5.0, resolution=0.25)


@dataclass
class Upstream:
    name: str
    address: str
    pid: int

    def target(self) -> Target:
        return Target(self.address, path="/bench", host="backend")


# -- upstreams ---------------------------------------------------------------------------------------
def start_nginx(block: str, work: Path, procs: Processes) -> Upstream:
    if shutil.which("nginx") is None:
        raise RuntimeError("nginx is not installed")
    root = work / "nginx"
    root.mkdir()
    listen = f"{block}.61:8080"
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=root, listen=listen))
    # -e: nginx opens its default error log before reading the config; point it at the work dir
    proc = procs.start("nginx", ["nginx", "-e", str(root / "nginx-error.log"), "-p", str(root), "-c", str(conf)])
    wait_until_answers(listen, "backend", proc, "nginx", procs)
    return Upstream("nginx", listen, proc.pid)


def pick_block() -> str:
    """A loopback block whose echo and nginx addresses are free right now (meshruntime's allocator)."""
    return random_block(free=lambda b: port_is_free(f"{b}.60", 8080) and port_is_free(f"{b}.61", 8080))


# -- measuring ---------------------------------------------------------------------------------------
_WRK_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b")
_WRK_ERRORS = re.compile(r"Non-2xx or 3xx responses: (\d+)|Socket errors: connect (\d+), read (\d+), "
                         r"write (\d+), timeout (\d+)")
_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def run_wrk(upstream: Upstream, seconds: int) -> dict[str, Any]:
    """wrk -t1 -c16 -d<seconds>s; its CPU is the rusage of the wrk process itself (wait4)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"error": "wrk is not installed"}
    sample = CpuSample({"upstream": upstream.pid})
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "-H", "Host: backend",
                                 f"http://{upstream.address}/bench"], stdout=out, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
        out.seek(0)
        text = out.read().decode(errors="replace")
    upstream_cpu = sample.elapsed()["upstream"]
    total = _WRK_TOTAL.search(text)
    if proc.returncode != 0 or not total:
        return {"error": f"wrk exited with {proc.returncode}: {text[-300:]}"}
    requests = int(total.group(1))
    elapsed = float(total.group(2)) * _UNIT_S[total.group(3)]
    errors = sum(int(g) for m in _WRK_ERRORS.finditer(text) for g in m.groups() if g)
    cpu = usage.ru_utime + usage.ru_stime
    return {"requests": requests, "errors": errors, "rate": requests / elapsed, "cpu_s": round(cpu, 4),
            "cpu_us_per_request": cpu / requests * 1e6 if requests else None,
            "upstream_cpu_us_per_request": upstream_cpu / requests * 1e6 if requests else None}


def run_meter_closed(upstream: Upstream, seconds: int) -> dict[str, Any]:
    sample = CpuSample({"upstream": upstream.pid})
    r = measure(upstream.target(), ClosedLoop(connections=CONNECTIONS, duration_s=seconds))
    upstream_cpu = sample.elapsed()["upstream"]
    return {"requests": r.count, "errors": r.errors, "rate": r.achieved_rate, "cpu_s": round(r.cpu_s, 4),
            "cpu_us_per_request": r.cpu_s / r.count * 1e6 if r.count else None,
            "upstream_cpu_us_per_request": upstream_cpu / r.count * 1e6 if r.count else None,
            "p50_us": r.p50_us, "p99_us": r.p99_us}


def measure_realtime(target: Target, load: OpenLoop | ClosedLoop) -> LoadResult:
    """As ``measure``, with the meter process at SCHED_FIFO priority 1 (``chrt -f 1``): a diagnostic
    that shows how much of the send lag is the meter waiting for a CPU behind other processes."""
    spec = json.dumps({"target": target.to_dict(), "load": load_to_dict(load)}).encode()
    proc = subprocess.run(["chrt", "-f", "1", sys.executable, "-m", "harness.load.openloop"], input=spec,
                          capture_output=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"meter under chrt exited with {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return LoadResult.from_dict(json.loads(proc.stdout))


def realtime_available() -> bool:
    if shutil.which("chrt") is None:
        return False
    return subprocess.run(["chrt", "-f", "1", "true"], capture_output=True).returncode == 0


def run_meter_fixed(upstream: Upstream, seconds: float, realtime: bool = False) -> dict[str, Any]:
    load = OpenLoop(rate=FIXED_RATE, duration_s=seconds, warm_connections=CONNECTIONS)
    r = (measure_realtime if realtime else measure)(upstream.target(), load)
    return {"sent": r.sent, "errors": r.errors, "achieved_rate": round(r.achieved_rate, 1),
            "send_lag_p50_us": r.send_lag_p50_us, "send_lag_p99_us": r.send_lag_p99_us,
            "cpu_us_per_request": r.cpu_s / r.sent * 1e6 if r.sent else None,
            "p50_us": r.p50_us, "p99_us": r.p99_us, "connections_opened": r.connections_opened, "pacer": r.pacer}


def run_capacity(upstream: Upstream, processes: int, budget: Budget) -> dict[str, Any]:
    cap = meter_capacity(upstream.target(), lag_p99_limit_us=LAG_LIMIT_US, processes=processes,
                         rates=(1000.0 * processes, 32000.0 * processes), step_s=budget.step_s,
                         deadline_s=budget.deadline_s, resolution=budget.resolution)
    return cap.to_dict()


def run_meter_fixed_realtime(upstream: Upstream, seconds: float) -> dict[str, Any]:
    return run_meter_fixed(upstream, seconds, realtime=True)


PARTS = ("closed", "fixed", "capacity")  # (a)+(b), (d), (c)


def measure_all(upstreams: list[Upstream], budget: Budget, console: Console, realtime: bool,
                parts: tuple[str, ...] = PARTS) -> dict[str, Any]:
    kinds = []
    if "closed" in parts:
        kinds += [("wrk", run_wrk, budget.run_s), ("meter_closed", run_meter_closed, budget.run_s)]
    if "fixed" in parts:
        kinds.append(("meter_fixed", run_meter_fixed, budget.fixed_s))
        if realtime:
            kinds.append(("meter_fixed_rt", run_meter_fixed_realtime, budget.fixed_s))
    runs: dict[str, dict[str, list]] = {u.name: {kind: [] for kind, _, _ in kinds} for u in upstreams}
    for u in upstreams:  # warm-up: caches, the upstream's first connections; not recorded
        measure(u.target(), ClosedLoop(connections=CONNECTIONS, duration_s=0.3))
    for repeat in range(budget.repeats if kinds else 0):
        order = upstreams if repeat % 2 == 0 else list(reversed(upstreams))
        for u in order:
            for kind, fn, arg in kinds:
                row = {**fn(u, arg), "load_1m": round(os.getloadavg()[0], 2)}
                runs[u.name][kind].append(row)
                console.log(f"repeat {repeat + 1}/{budget.repeats} {u.name:6} {kind:12} {brief(row)}")
    capacity: dict[str, dict[str, Any]] = {}
    for u in upstreams if "capacity" in parts else ():
        capacity[u.name] = {}
        for n in (1, 2):
            cap = run_capacity(u, n, budget)
            capacity[u.name][str(n)] = {**cap, "load_1m": round(os.getloadavg()[0], 2)}
            console.log(f"capacity {u.name:6} {n} process(es): {cap['rate']} req/s ({cap['reason']}, "
                        f"{len(cap['rows'])} steps, {cap['elapsed_s']} s)")
    return {"runs": runs, "capacity": capacity}


def brief(row: dict[str, Any]) -> str:
    if "error" in row:
        return row["error"]
    keys = ("rate", "cpu_us_per_request", "send_lag_p50_us", "send_lag_p99_us", "errors", "load_1m")
    return " ".join(f"{k} {row[k]:.1f}" if isinstance(row[k], float) else f"{k} {row[k]}" for k in keys if k in row)


# -- profile -----------------------------------------------------------------------------------------
def _meter_process(target: Target, load: OpenLoop | ClosedLoop) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "harness.load.openloop"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    proc.stdin.write(json.dumps({"target": target.to_dict(), "load": load_to_dict(load)}).encode())
    proc.stdin.close()
    # the meter opens its connections just before t0: poll for them (observable), with a deadline
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            if any(c.status == psutil.CONN_ESTABLISHED for c in psutil.Process(proc.pid).net_connections("tcp")):
                return proc
        time.sleep(0.02)  # polling an observable condition, with a deadline
    proc.kill()
    proc.wait()
    raise RuntimeError("the meter process did not connect for profiling")


def perf_by_dso(target: Target, load: OpenLoop | ClosedLoop, seconds: int, work: Path) -> dict[str, float]:
    """Share of the meter process's on-CPU samples by shared object, over ``seconds`` of its run."""
    data = work / f"perf-{uuid.uuid4().hex[:6]}.data"
    proc = _meter_process(target, load)
    try:
        subprocess.run(["perf", "record", "-F", "1999", "-p", str(proc.pid), "-o", str(data), "--", "sleep",
                        str(seconds)], capture_output=True, timeout=seconds + 30)
    finally:
        proc.wait(timeout=60)
    report = subprocess.run(["perf", "report", "-i", str(data), "--sort", "dso", "--stdio", "-g", "none"],
                            capture_output=True, text=True, timeout=60).stdout
    shares: dict[str, float] = {}
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)", line)
        if m and not line.lstrip().startswith("#"):
            shares[m.group(2)] = shares.get(m.group(2), 0.0) + float(m.group(1))
    return shares


def py_spy_by_function(target: Target, load: OpenLoop | ClosedLoop, seconds: int, work: Path) -> dict[str, float]:
    """Share of on-CPU py-spy samples by leaf Python function (native frames folded into their caller)."""
    out = work / f"spy-{uuid.uuid4().hex[:6]}.txt"
    proc = _meter_process(target, load)
    try:
        subprocess.run(["py-spy", "record", "--pid", str(proc.pid), "--rate", "500", "--nonblocking",
                        "--duration", str(seconds), "--format", "raw", "--output", str(out)],
                       capture_output=True, timeout=seconds + 30)
    finally:
        proc.wait(timeout=60)
    counts: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines() if out.exists() else ():
        stack, _, n = line.rpartition(" ")
        if n.isdigit():
            counts[stack.rsplit(";", 1)[-1]] += int(n)
    total = sum(counts.values()) or 1
    return {k: round(100 * v / total, 1) for k, v in counts.most_common(12)}


def profile(upstream: Upstream, work: Path, console: Console) -> dict[str, Any]:
    out: dict[str, Any] = {}
    loads = {f"open {FIXED_RATE}/s": OpenLoop(rate=FIXED_RATE, duration_s=8, warm_connections=CONNECTIONS),
             f"closed {CONNECTIONS} conns": ClosedLoop(connections=CONNECTIONS, duration_s=8)}
    for name, load in loads.items():
        out[name] = {}
        if shutil.which("perf"):
            out[name]["perf_dso_pct"] = perf_by_dso(upstream.target(), load, 5, work)
        if shutil.which("py-spy"):
            out[name]["py_spy_leaf_pct"] = py_spy_by_function(upstream.target(), load, 5, work)
        console.log(f"profiled {name} against {upstream.name}")
    return out


# -- reporting ---------------------------------------------------------------------------------------
def spread(values: list[float | None], digits: int = 0) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    med, lo, hi = statistics.median(vals), min(vals), max(vals)
    if len(vals) == 1:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} [{lo:,.{digits}f}–{hi:,.{digits}f}]"


def median_of(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, runs in report["runs"].items():
        if "meter_fixed" not in runs:
            continue
        lag = median_of(runs["meter_fixed"], "send_lag_p99_us")
        rows.append({"what": f"send lag p99 at {FIXED_RATE:,} req/s, {name} (µs)", "measured": lag,
                     "target": f"≤ {TARGET_LAG_P99_US}", "ok": lag is not None and lag <= TARGET_LAG_P99_US})
    for name, runs in report["runs"].items():
        if "wrk" not in runs:
            continue
        ours, wrk = median_of(runs["meter_closed"], "cpu_us_per_request"), median_of(runs["wrk"], "cpu_us_per_request")
        ratio = ours / wrk if ours and wrk else None
        rows.append({"what": f"meter/wrk CPU per request, closed loop {CONNECTIONS} conns, {name}",
                     "measured": ratio, "target": f"≤ {TARGET_CPU_RATIO}×",
                     "ok": ratio is not None and ratio <= TARGET_CPU_RATIO, "ratio": True})
    return rows


def print_report(console: Console, report: dict[str, Any]) -> None:
    closed = Table(title=escape(f"Closed loop, {CONNECTIONS} connections, {report['budget']['run_s']} s "
                                "(median [min–max] over repeats)"))
    for col in ("upstream", "driver", "requests/s", "driver CPU µs/request", "upstream CPU µs/request", "errors"):
        closed.add_column(col, justify="right" if col not in ("upstream", "driver") else "left")
    for name, runs in report["runs"].items():
        for kind, label in (("wrk", "wrk -t1"), ("meter_closed", "meter")):
            if kind not in runs:
                continue
            rows = [r for r in runs[kind] if "error" not in r]
            if not rows:
                closed.add_row(name, label, escape(runs[kind][0].get("error", "-") if runs[kind] else "-"), "", "", "")
                continue
            closed.add_row(name, label, spread([r["rate"] for r in rows]),
                           spread([r["cpu_us_per_request"] for r in rows], 1),
                           spread([r["upstream_cpu_us_per_request"] for r in rows], 1),
                           str(sum(r["errors"] for r in rows)))
    if closed.row_count:
        console.print(closed)

    fixed = Table(title=escape(f"Meter open loop at {FIXED_RATE:,} req/s, {report['budget']['fixed_s']} s "
                               "(median [min–max] over repeats)"))
    for col in ("upstream", "send lag p50 µs", "send lag p99 µs", "meter CPU µs/request", "latency p50 µs",
                "latency p99 µs", "achieved req/s", "errors"):
        fixed.add_column(col, justify="left" if col == "upstream" else "right")
    for name, runs in report["runs"].items():
        for kind, label in (("meter_fixed", name), ("meter_fixed_rt", f"{name}, meter under chrt -f 1 (diagnostic)")):
            rows = runs.get(kind)
            if not rows:
                continue
            fixed.add_row(label, *(spread([r[k] for r in rows]) for k in ("send_lag_p50_us", "send_lag_p99_us")),
                          spread([r["cpu_us_per_request"] for r in rows], 1),
                          *(spread([r[k] for r in rows]) for k in ("p50_us", "p99_us", "achieved_rate")),
                          str(sum(r["errors"] for r in rows)))
    if fixed.row_count:
        console.print(fixed)

    cap = Table(title=escape(f"Meter capacity: highest open-loop rate with send lag p99 ≤ {LAG_LIMIT_US} µs "
                             "(harness.load.capacity, doubling then bisection)"))
    steps_col = "steps: rate → send lag p99 µs (✗ failed)"
    for col in ("upstream", "processes", "rate req/s", "per process", "stopped by", steps_col, "time s"):
        cap.add_column(col, justify="left" if col in ("upstream", "stopped by", steps_col) else "right")
    for name, by_n in report["capacity"].items():
        for n, c in by_n.items():
            steps = ", ".join(f"{r['rate']:.0f}→{r['send_lag_p99_us']}{'' if r['failed'] is None else '✗'}"
                              for r in c["rows"])
            cap.add_row(name, n, f"{c['rate']:,.0f}" if c["rate"] else "below range",
                        f"{c['per_process_rate']:,.0f}" if c["per_process_rate"] else "-", c["reason"],
                        escape(steps), f"{c['elapsed_s']:.1f}")
    if cap.row_count:
        console.print(cap)

    goals = Table(title="Targets")
    for col in ("target", "measured", "goal", "verdict"):
        goals.add_column(col)
    for row in report["targets"]:
        m = row["measured"]
        text = "-" if m is None else (f"{m:.2f}×" if row.get("ratio") else f"{m:,.0f}")
        goals.add_row(escape(row["what"]), text, row["target"], "[green]met" if row["ok"] else "[red]missed")
    console.print(goals)

    for name, by_load in report.get("profile", {}).items():
        for load, prof in by_load.items():
            for kind, shares in prof.items():
                top = ", ".join(f"{k} {v:.1f}%" for k, v in list(shares.items())[:8])
                console.print(f"profile {name} {load} {kind}: {escape(top)}")
    console.print(f"load average (1 min): {report['load_1m']['start']:.2f} at start, "
                  f"{report['load_1m']['end']:.2f} at end; {report['measured_s']} s")


# -- main ----------------------------------------------------------------------------------------------
def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    budget = Budget.quick() if args.quick else Budget()
    if args.repeats:
        budget = Budget(**{**asdict(budget), "repeats": args.repeats})
    load_start = os.getloadavg()[0]
    block = args.block or pick_block()
    work = Path(tempfile.mkdtemp(prefix="bench-meter-"))
    procs = Processes(f"bench-{uuid.uuid4().hex[:12]}", work)
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        stack.callback(procs.stop_all)
        echo = start_echo(block, procs)
        upstreams = [Upstream("echo", echo, procs.children[-1][1].pid), start_nginx(block, work, procs)]
        console.log(f"upstreams: {', '.join(u.name + ' on ' + u.address for u in upstreams)}; "
                    f"load average {load_start:.2f}")
        started = time.monotonic()
        realtime = not args.no_realtime and realtime_available()
        report: dict[str, Any] = {"budget": asdict(budget), "block": block, "realtime_diagnostic": realtime,
                                  "parts": list(args.only), **measure_all(upstreams, budget, console, realtime, args.only)}
        if args.profile:
            report["profile"] = {"nginx": profile(upstreams[1], work, console)}
        report["measured_s"] = round(time.monotonic() - started, 1)
    report["targets"] = targets(report)
    report["load_1m"] = {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)}
    report["date"] = datetime.date.today().isoformat()
    report["method"] = {
        "wrk_cpu": "ru_utime + ru_stime of the wrk process (os.wait4), over requests answered",
        "meter_cpu": "LoadResult.cpu_s: time.process_time() of the meter process from t0 to its result",
        "upstream_cpu": "utime+stime of the upstream process over the run, over requests answered",
        "send_lag": "actual send time - intended send time of each request, µs, HdrHistogram",
        "capacity": "harness.load.capacity.meter_capacity: doubling from the lowest rate, then bisection; "
                    "a step passes with send lag p99 <= limit and no errors; 2 processes: rate split "
                    "in two, LoadResult.merge (worst send lag)",
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~20 s instead of ~2 min")
    parser.add_argument("--repeats", type=int, help="interleaved repeats of (a), (b), (d) (default 3, quick 1)")
    parser.add_argument("--json", type=Path, help="write the results here (default results/meter-<date>.json)")
    parser.add_argument("--block", help="loopback block 127.A.B to use (default: a free one)")
    parser.add_argument("--profile", action="store_true", help="also profile the meter (perf, py-spy)")
    parser.add_argument("--only", default=",".join(PARTS),
                        help="comma-separated parts to run, to rerun a noisy row: closed (a, b), fixed (d), "
                             "capacity (c); default all")
    parser.add_argument("--no-realtime", action="store_true",
                        help="skip the diagnostic open-loop row with the meter under chrt -f 1")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.only = tuple(p.strip() for p in args.only.split(",") if p.strip())
    unknown = [p for p in args.only if p not in PARTS]
    if unknown or not args.only:
        parser.error(f"--only: {', '.join(unknown) or 'nothing'} is not one of {', '.join(PARTS)}")
    if args.block:
        try:
            args.block = normalise_block(args.block)
        except ValueError as exc:
            parser.error(f"--block: {exc}")
    console = Console(width=None if sys.stdout.isatty() else 160)
    report = run(args, console)
    print_report(console, report)
    path = args.json or RESULTS / f"meter-{report['date']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    console.print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
