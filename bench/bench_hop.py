"""Added latency per hop and requests per CPU second: reference sidecars vs HAProxy, in one run.

    python bench/bench_hop.py [--quick] [--repeats N] [--json FILE]

Three paths to the same echo upstream (fixtures.echo):
  direct   client → echo
  mesh     client → outbound sidecar → mTLS → inbound sidecar → echo      (meshproxy.runtime.LocalMesh)
  haproxy  client → HAProxy (plain in, mTLS out) → HAProxy (mTLS in, plain out) → echo
           (bench/haproxy/*.cfg, one thread each, SVIDs from the same mesh CA)

Latency is measured by harness.load's meter in its own process: open loop at 500 and 2,000 req/s
(timed from each request's intended send time) and closed loop on one connection. Per hop =
(two-hop − direct) / 2, computed within each repeat; repeats interleave the paths (alternating order)
and the table shows the median and [min–max] over repeats. Requests per core: wrk (or the meter,
closed loop) drives each two-hop path; requests / CPU seconds of the busier proxy process, from
/proc/<pid>/stat utime+stime. Default run ~3 minutes; --quick ~30 s.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import re
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

from harness.load import ClosedLoop, LoadResult, OpenLoop, Target, measure  # noqa: E402
from harness.load.cpu import CpuSample  # noqa: E402

HAPROXY_DIR = Path(__file__).resolve().parent / "haproxy"
TRUST_DOMAIN = "cluster.local"
PERCENTILES = ("p50", "p90", "p99", "p99_9")
TARGET_P50_RATIO, TARGET_P99_RATIO, TARGET_RPS_PER_CORE = 2.5, 3.0, 12_000
READY_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Budget:
    """How long each measurement runs; --quick shrinks everything to ~30 s in total."""

    repeats: int = 3
    open_s: float = 4.0
    closed_s: float = 2.0
    throughput_s: float = 5.0
    throughput_connections: int = 16

    @classmethod
    def quick(cls) -> "Budget":
        return cls(repeats=2, open_s=1.0, closed_s=0.7, throughput_s=2.0)

    def modes(self) -> dict[str, OpenLoop | ClosedLoop]:
        return {
            # a cap of 64 connections: an overloaded path queues requests in the meter (their clocks
            # running) instead of being sent hundreds of new TLS handshakes that deepen the overload
            "open 500/s": OpenLoop(rate=500, duration_s=self.open_s, max_connections=64),
            "open 2000/s": OpenLoop(rate=2000, duration_s=self.open_s, max_connections=64),
            "closed 1 conn": ClosedLoop(connections=1, duration_s=self.closed_s),
        }


@dataclass
class Path_:
    """One way to reach the echo: where the meter sends, with which Host, and which proxies it crosses."""

    name: str
    entry: str
    host: str
    proxy_pids: dict[str, int] = field(default_factory=dict)

    def target(self) -> Target:
        return Target(self.entry, path="/bench", host=self.host)


# -- processes ---------------------------------------------------------------------------------------
class Processes:
    """Children of this script; all are stopped (TERM, then KILL after 5 s) on exit."""

    def __init__(self, run_id: str, log_dir: Path):
        self.run_id, self.log_dir, self.children = run_id, log_dir, []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")
        env = {**os.environ, "MESHCONFORM_RUN_ID": self.run_id, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        log.close()
        self.children.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for _, proc in self.children:
            if proc.poll() is None:
                proc.terminate()
        for _, proc in self.children:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_tail(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-1500:] if path.exists() else ""


def http_get_status(address: str, host: str, path: str = "/bench", timeout: float = 1.0) -> int | None:
    hostname, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(hostname, int(port), timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host})
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def wait_until_answers(address: str, host: str, proc: subprocess.Popen | None, what: str,
                       procs: Processes) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{procs.log_tail(what)}")
        if http_get_status(address, host) == 200:
            return
        time.sleep(0.05)  # polling an observable condition, with a deadline
    raise RuntimeError(f"{what} did not answer 200 on {address} within {READY_TIMEOUT_S} s")


# -- the three paths ---------------------------------------------------------------------------------
def start_mesh(block: str, work: Path) -> tuple[Any, dict[str, Any]]:
    """The reference mesh with two services; raises whatever LocalMesh raises if it cannot start."""
    from meshscenario import parse_scenario
    from meshproxy.runtime import LocalMesh

    scenario = parse_scenario({"name": "bench-hop", "trust_domain": TRUST_DOMAIN,
                               "services": [{"name": "client"}, {"name": "backend"}]})
    mesh = LocalMesh(scenario, block=block, log_dir=work / "mesh-logs")
    return mesh, mesh.start()


def start_echo(block: str, procs: Processes) -> str:
    """A stand-alone echo for when the mesh (and its echo) is not available."""
    app, control = f"{block}.60:8080", f"{block}.60:9000"
    proc = procs.start("echo", [sys.executable, "-m", "fixtures.echo", "--listen", app, "--control", control,
                                "--service", "backend", "--version", "v1", "--instance", "0"])
    wait_until_answers(app, "backend", proc, "echo", procs)
    return app


def mesh_ca(state: dict[str, Any] | None):
    """The mesh's own CA when the mesh runs (same roots the sidecars trust), else a fresh one."""
    from meshproxy.ca import CertificateAuthority

    if state is not None:
        return CertificateAuthority.load_or_create(Path(state["state_dir"]), TRUST_DOMAIN)
    return CertificateAuthority.create(TRUST_DOMAIN)


def write_svid(ca, service: str, work: Path) -> Path:
    """An X.509-SVID for spiffe://<td>/ns/default/sa/<service> as HAProxy wants it: cert + key in one PEM."""
    from meshproxy.ca import cert_pem, key_pem

    key = ec.generate_private_key(ec.SECP256R1())
    cert = ca.issue_svid(f"spiffe://{TRUST_DOMAIN}/ns/default/sa/{service}", key.public_key(),
                         ttl=3600, workload=service)
    path = work / f"{service}.pem"
    path.write_bytes(cert_pem(cert) + key_pem(key))
    path.chmod(0o600)
    return path


def start_haproxy_pair(block: str, echo: str, ca, work: Path, procs: Processes) -> Path_:
    bundle = work / "bundle.pem"
    bundle.write_bytes(ca.bundle_pem())
    outbound, inbound = f"{block}.50:15001", f"{block}.51:15006"
    configs = {
        "haproxy-inbound": ("inbound.cfg", {"listen": inbound, "upstream": echo,
                                            "cert_and_key": write_svid(ca, "haproxy-inbound", work)}),
        "haproxy-outbound": ("outbound.cfg", {"listen": outbound, "upstream": inbound,
                                              "cert_and_key": write_svid(ca, "haproxy-outbound", work)}),
    }
    pids, started = {}, {}
    for name, (template, values) in configs.items():
        text = string.Template((HAPROXY_DIR / template).read_text()).substitute(bundle=bundle, **values)
        cfg = work / f"{name}.cfg"
        cfg.write_text(text)
        # -db: stay in the foreground, no master process, so the pid we hold is the one doing the work
        started[name] = procs.start(name, ["haproxy", "-db", "-f", str(cfg)])
        pids[name] = started[name].pid
    for name, proc in started.items():
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{procs.log_tail(name)}")
    wait_until_answers(outbound, "backend", started["haproxy-outbound"], "haproxy-outbound", procs)
    return Path_("haproxy", outbound, "backend", pids)


# -- measuring ---------------------------------------------------------------------------------------
def settle(path: Path_, timeout_s: float = 10.0) -> None:
    """Wait until the path answers one request in under 5 ms, so a backlog left by one run (on a busy
    machine) is not charged to the next."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        started = time.monotonic()
        if http_get_status(path.entry, path.host) == 200 and time.monotonic() - started < 0.005:
            return
        time.sleep(0.05)  # polling an observable condition, with a deadline


def summary(result: LoadResult) -> dict[str, Any]:
    return {"p50": result.p50_us, "p90": result.p90_us, "p99": result.p99_us, "p99_9": result.p99_9_us,
            "max": result.max_us, "count": result.count, "errors": result.errors,
            "achieved_rate": round(result.achieved_rate, 1), "send_lag_p99": result.send_lag_p99_us}


def measure_latency(paths: list[Path_], budget: Budget, console: Console) -> dict[str, dict[str, list]]:
    """results[mode][path] = one summary per repeat; path order alternates between repeats."""
    results: dict[str, dict[str, list]] = {m: {p.name: [] for p in paths} for m in budget.modes()}
    for path in paths:  # warm-up: connections, caches, the proxies' pools; not recorded
        measure(path.target(), ClosedLoop(connections=1, duration_s=0.3))
    for repeat in range(budget.repeats):
        order = paths if repeat % 2 == 0 else list(reversed(paths))
        for mode, load in budget.modes().items():
            for path in order:
                result = measure(path.target(), load)
                results[mode][path.name].append(summary(result))
                settle(path)
                console.log(f"repeat {repeat + 1}/{budget.repeats} {mode:13} {path.name:8} "
                            f"p50 {result.p50_us} µs p99 {result.p99_us} µs errors {result.errors}")
    return results


def per_hop(results: dict[str, dict[str, list]], two_hop_path: str) -> dict[str, dict[str, dict]]:
    """per_hop[mode][percentile] = {"median", "min", "max", "repeats": [...]}: (two-hop − direct) / 2."""
    out: dict[str, dict[str, dict]] = {}
    for mode, by_path in results.items():
        if two_hop_path not in by_path or not by_path[two_hop_path]:
            continue
        out[mode] = {}
        for pct in PERCENTILES:
            values = [(two[pct] - direct[pct]) / 2 for two, direct in zip(by_path[two_hop_path], by_path["direct"])]
            out[mode][pct] = {"median": statistics.median(values), "min": min(values), "max": max(values),
                              "repeats": values}
    return out


_WRK_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")
_WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def drive_closed_loop(path: Path_, budget: Budget) -> tuple[int, int, str]:
    """(requests answered, errors, tool): wrk when installed, else the meter in closed loop."""
    wrk = shutil.which("wrk")
    fallback = "meter closed loop"
    if wrk:
        hostname = path.entry
        # wrk refuses fractional durations ("-d5.0s" prints its usage and runs nothing): whole seconds
        out = subprocess.run([wrk, "-t1", f"-c{budget.throughput_connections}",
                              f"-d{max(1, round(budget.throughput_s))}s",
                              "-H", f"Host: {path.host}", f"http://{hostname}/bench"],
                             capture_output=True, text=True, timeout=budget.throughput_s + 30).stdout
        total = _WRK_TOTAL.search(out)
        non_2xx = _WRK_NON_2XX.search(out)
        if total and int(total.group(1)) > 0:  # wrk's summary text, not HTTP
            return int(total.group(1)), int(non_2xx.group(1)) if non_2xx else 0, "wrk -t1"
        fallback = "meter closed loop (wrk gave no summary)"
    result = measure(path.target(), ClosedLoop(connections=budget.throughput_connections,
                                               duration_s=budget.throughput_s))
    return result.count, result.errors, fallback


def measure_throughput(path: Path_, budget: Budget) -> dict[str, Any]:
    sample = CpuSample(path.proxy_pids)
    requests, errors, tool = drive_closed_loop(path, budget)
    cpu = sample.elapsed()
    busier = max(cpu, key=cpu.get)
    return {"tool": f"{tool}, {budget.throughput_connections} connections, {budget.throughput_s} s",
            "requests": requests, "errors": errors, "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
            "busier_proxy": busier,
            "rps_per_core": requests / cpu[busier] if cpu[busier] > 0 else None,
            "cpu_us_per_request": {k: round(v / requests * 1e6, 1) for k, v in cpu.items()} if requests else {}}


# -- reporting ---------------------------------------------------------------------------------------
def fmt(cell: dict) -> str:
    return escape(f"{cell['median']:.0f} [{cell['min']:.0f}–{cell['max']:.0f}]")


def targets(hops: dict[str, dict], throughput: dict[str, dict]) -> list[dict[str, Any]]:
    rows = []
    mesh, haproxy = hops.get("mesh", {}), hops.get("haproxy", {})
    for mode in mesh:
        if mode not in haproxy:
            continue
        for pct, limit in (("p50", TARGET_P50_RATIO), ("p99", TARGET_P99_RATIO)):
            ours, theirs = mesh[mode][pct]["median"], haproxy[mode][pct]["median"]
            ratio = ours / theirs if theirs > 0 else None
            rows.append({"what": f"sidecar/HAProxy {pct} per hop, {mode}", "measured": ratio,
                         "target": f"≤ {limit}×", "ok": ratio is not None and ratio <= limit})
    if "mesh" in throughput:
        rps = throughput["mesh"]["rps_per_core"]
        rows.append({"what": "sidecar requests per CPU second (busier sidecar)", "measured": rps,
                     "target": f"≥ {TARGET_RPS_PER_CORE:,}", "ok": rps is not None and rps >= TARGET_RPS_PER_CORE})
    return rows


def print_report(console: Console, report: dict[str, Any]) -> None:
    direct = Table(title=escape("Direct to the echo (µs, median [min–max] over repeats)"))
    direct.add_column("mode")
    for pct in PERCENTILES:
        direct.add_column(pct, justify="right")
    for mode, repeats in report["latency"].items():
        cells = [{"median": statistics.median(r[p] for r in repeats["direct"]),
                  "min": min(r[p] for r in repeats["direct"]), "max": max(r[p] for r in repeats["direct"])}
                 for p in PERCENTILES]
        direct.add_row(mode, *(fmt(c) for c in cells))
    console.print(direct)

    hop = Table(title=escape("Added latency per hop = (two-hop − direct) / 2 (µs, median [min–max] over repeats)"))
    hop.add_column("mode")
    hop.add_column("path")
    for pct in PERCENTILES:
        hop.add_column(pct, justify="right")
    for name, by_mode in report["per_hop"].items():
        for mode, cells in by_mode.items():
            hop.add_row(mode, name, *(fmt(cells[p]) for p in PERCENTILES))
    console.print(hop)

    tp = Table(title="Requests per core = requests answered / CPU seconds (utime+stime from "
                     "/proc/<pid>/stat) of the busier proxy process of the path, over one closed-loop run")
    for col in ("path", "driver", "requests", "errors", "proxy CPU s", "CPU µs/request", "req/s per core"):
        tp.add_column(col)
    for name, t in report["throughput"].items():
        tp.add_row(name, t["tool"], str(t["requests"]), str(t["errors"]),
                   ", ".join(f"{k} {v}" for k, v in t["cpu_s"].items()),
                   ", ".join(f"{k} {v}" for k, v in t["cpu_us_per_request"].items()),
                   f"{t['rps_per_core']:,.0f}" if t["rps_per_core"] else "-")
    console.print(tp)

    goals = Table(title="Targets")
    for col in ("target", "measured", "goal", "verdict"):
        goals.add_column(col)
    for row in report["targets"]:
        measured = row["measured"]
        text = "-" if measured is None else (f"{measured:.2f}×" if measured < 100 else f"{measured:,.0f}")
        goals.add_row(row["what"], text, row["target"], "[green]met" if row["ok"] else "[red]missed")
    console.print(goals)
    for name, why in report["unavailable"].items():
        console.print(f"[yellow]path {name} not measured:[/yellow] {escape(why)}")


# -- main ----------------------------------------------------------------------------------------------
def random_block() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}"


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    budget = Budget.quick() if args.quick else Budget()
    if args.repeats:
        budget = Budget(**{**budget.__dict__, "repeats": args.repeats})
    block = args.block or random_block()
    work = Path(tempfile.mkdtemp(prefix="bench-hop-"))
    procs = Processes(f"bench-{uuid.uuid4().hex[:12]}", work)
    unavailable: dict[str, str] = {}
    mesh = state = None
    with contextlib.ExitStack() as stack:
        if not args.keep_work:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        stack.callback(procs.stop_all)
        paths: list[Path_] = []
        if not args.no_mesh:
            try:
                mesh, state = start_mesh(block, work)
                stack.callback(mesh.stop)
            except Exception as exc:  # the mesh is optional here; the report says why it is missing
                unavailable["mesh"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                mesh = state = None
        if state is not None:
            backend = next(w for w in state["workloads"].values() if w["service"] == "backend")
            client = next(w for w in state["workloads"].values() if w["service"] == "client")
            echo = backend["app"]
            mesh_path = Path_("mesh", client["outbound"], "backend",
                              {"sidecar-client": client["pids"]["sidecar"],
                               "sidecar-backend": backend["pids"]["sidecar"]})
        else:
            echo = start_echo(block, procs)
            mesh_path = None
        paths.append(Path_("direct", echo, "backend"))
        if mesh_path is not None:
            paths.append(mesh_path)
        try:
            paths.append(start_haproxy_pair(block, echo, mesh_ca(state), work, procs))
        except Exception as exc:
            unavailable["haproxy"] = f"{type(exc).__name__}: {exc}"
        console.log(f"paths: {', '.join(p.name + ' via ' + p.entry for p in paths)}; block {block}.0/24")

        started = time.monotonic()
        latency = measure_latency(paths, budget, console)
        hops = {p.name: per_hop(latency, p.name) for p in paths if p.name != "direct"}
        throughput = {p.name: measure_throughput(p, budget) for p in paths if p.proxy_pids}
        report = {
            "budget": budget.__dict__, "block": block, "measured_s": round(time.monotonic() - started, 1),
            "latency": latency, "per_hop": hops, "throughput": throughput,
            "targets": targets(hops, throughput), "unavailable": unavailable,
            "method": {
                "per_hop": "(two-hop percentile - direct percentile) / 2, within each repeat; median and "
                           "min/max over repeats; paths interleaved, order reversed every other repeat",
                "open_loop": "latency from intended send time (t0 + i/rate) to last response byte, µs, HdrHistogram",
                "rps_per_core": "requests answered / (utime+stime seconds of the busier proxy process of the path)",
            },
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~30 s instead of ~3 min")
    parser.add_argument("--repeats", type=int, help="interleaved repeats (default 3, quick 2)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--block", help="loopback block 127.A.B to use (default random)")
    parser.add_argument("--keep-work", action="store_true", help="keep configs, certificates and logs")
    parser.add_argument("--no-mesh", action="store_true", help="skip the reference mesh path")
    args = parser.parse_args(argv)
    console = Console()
    report = run(args, console)
    print_report(console, report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        console.print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
