"""CPU per request of each reference sidecar, closed loop, for a plain and an mTLS hop between them.

    python bench/profile_sidecar.py [--requests 20000] [--connections 16] [--repeats 3]
                                    [--modes mtls,plain] [--py-spy] [--compare DIR]

Path: driver → outbound sidecar (client, :15001) → inbound sidecar (backend, :15006) → app. The hop
between the two sidecars is mTLS (backend policy STRICT) or plaintext (DISABLE). Both sidecars are
real ``python -m meshproxy.sidecar`` processes with static bootstraps; the app is a minimal uvloop
protocol answering a fixed 200, so nothing but the sidecars' own work is measured.

The measure is CPU time, not wall time: utime+stime of each sidecar process (``/proc/<pid>/stat``)
over exactly N answered requests (after a warm-up that opens every pooled connection), divided by N.
It barely moves when other processes load the machine, unlike latency. Resolution is one clock tick
(10 ms): N=20,000 at ~60 µs is 1.2 s of CPU, ±1%. "req/s per core" is 1e6 / (µs per request).

``--compare DIR`` also runs sidecars from another checkout (e.g. a copy of ``meshproxy/`` from before a
change) and interleaves its repeats with this checkout's, so both see the same machine load.

``--py-spy`` (needs ``pip install py-spy``; not a project dependency) samples each sidecar during an
extra run and prints where its CPU goes: self time by function and by module, as shares of samples.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httptools
import uvloop

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fixtures.certs import ForeignCA, write_pair  # noqa: E402
from harness.load.cpu import cpu_seconds  # noqa: E402

TD = "cluster.local"
APP_PORT, INBOUND_PORT, OUTBOUND_PORT, ADMIN_PORT = 8080, 15006, 15001, 15000
READY_TIMEOUT_S = 15.0
RUN_TIMEOUT_S = 120.0

APP = r"""
import asyncio, sys, uvloop
BODY = b'{"ok":true}'
RESP = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t
    def data_received(self, d):
        # GET requests only (the driver sends nothing else): one answer per end of headers
        for _ in range(d.count(b"\r\n\r\n")): self.t.write(RESP)
async def main():
    srv = await asyncio.get_running_loop().create_server(P, sys.argv[1], int(sys.argv[2]))
    print("ready", flush=True); await srv.serve_forever()
uvloop.run(main())
"""


def spiffe(service: str) -> str:
    return f"spiffe://{TD}/ns/default/sa/{service}"


# -- driver ------------------------------------------------------------------------------------------
class _Client(asyncio.Protocol):
    """One keep-alive connection sending GETs back to back while the shared budget lasts."""

    def __init__(self, run: "_Run"):
        self._run = run
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._next()

    def _next(self) -> None:
        if self._run.take():
            self._transport.write(self._run.request)
        else:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_message_complete(self) -> None:
        self._run.answered(self._parser.get_status_code())
        self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self._run.closed()


class _Run:
    def __init__(self, n: int, connections: int, host: str):
        self.request = f"GET /profile HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        self.left = n
        self.ok = self.errors = 0
        self.open = connections
        self.done = asyncio.get_running_loop().create_future()

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True

    def answered(self, status: int) -> None:
        if status == 200:
            self.ok += 1
        else:
            self.errors += 1

    def closed(self) -> None:
        self.open -= 1
        if self.open == 0 and not self.done.done():
            self.done.set_result(None)


async def _drive(ip: str, port: int, host: str, n: int, connections: int) -> tuple[int, int]:
    loop = asyncio.get_running_loop()
    run = _Run(n, connections, host)
    for _ in range(connections):
        await loop.create_connection(lambda: _Client(run), ip, port)
    await asyncio.wait_for(run.done, RUN_TIMEOUT_S)
    return run.ok, run.errors


def drive(ip: str, port: int, host: str, n: int, connections: int) -> tuple[int, int]:
    """Send exactly ``n`` GETs over ``connections`` keep-alive connections; (answered 200, other)."""
    return uvloop.run(_drive(ip, port, host, n, connections))


# -- processes ---------------------------------------------------------------------------------------
def wait_ready(ip: str, port: int, path: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection(ip, port, timeout=0.5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)  # polling an observable condition, with a deadline
    raise RuntimeError(f"{ip}:{port}{path} not ready within {READY_TIMEOUT_S} s")


class Setup:
    """App + backend sidecar + client sidecar for one mode, on a fresh 127.A.B.0/24 block."""

    def __init__(self, mode: str, work: Path, ca: ForeignCA, bundle: Path, source: Path = REPO,
                 label: str = "current"):
        block = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}"
        self.cip, self.bip = f"{block}.11", f"{block}.12"
        self.procs: list[subprocess.Popen] = []
        self.pids: dict[str, int] = {}
        self.mode, self.work, self.ca, self.bundle = mode, work / f"{mode}-{label}", ca, bundle
        self.source, self.label = source, label
        self.work.mkdir()

    def start(self) -> None:
        app = subprocess.Popen([sys.executable, "-c", APP, self.bip, str(APP_PORT)], stdout=subprocess.PIPE)
        self.procs.append(app)
        app.stdout.readline()  # "ready"
        scenario = {"trust_domain": TD, "services": [{"name": "client"}, {"name": "backend"}],
                    "policies": [{"service": "backend",
                                  "mtls": {"mode": "STRICT" if self.mode == "mtls" else "DISABLE"}}]}
        endpoints = {"backend-v1-0": {"service": "backend", "version": "v1", "instance": 0,
                                      "address": f"{self.bip}:{INBOUND_PORT}"}}
        for service, ip in (("backend", self.bip), ("client", self.cip)):
            cert, key = write_pair(self.work, service, *self.ca.issue_svid(spiffe(service)))
            boot = {"workload": f"{service}-v1-0", "service": service, "namespace": "default", "version": "v1",
                    "instance": 0, "spiffe_id": spiffe(service), "trust_domain": TD, "ip": ip,
                    "inbound_port": INBOUND_PORT, "outbound_port": OUTBOUND_PORT, "admin_port": ADMIN_PORT,
                    "app": f"{ip}:{APP_PORT}", "bundle": str(self.bundle), "work_dir": str(self.work / service),
                    "static": {"scenario": scenario, "endpoints": endpoints, "cert": str(cert), "key": str(key)}}
            path = self.work / f"{service}.json"
            path.write_text(json.dumps(boot))
            path.chmod(0o600)
            proc = subprocess.Popen([sys.executable, "-m", "meshproxy.sidecar", "--bootstrap", str(path),
                                     "--log-level", "WARNING"], cwd=self.source,
                                    env={**os.environ, "PYTHONPATH": str(self.source)})
            self.procs.append(proc)
            self.pids[f"{service} ({'inbound' if service == 'backend' else 'outbound'})"] = proc.pid
            wait_ready(ip, ADMIN_PORT, "/ready", proc)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def measure(setup: Setup, n: int, connections: int) -> dict[str, float]:
    """µs of CPU per request of each sidecar over exactly ``n`` requests."""
    before = {name: cpu_seconds(pid) for name, pid in setup.pids.items()}
    ok, errors = drive(setup.cip, OUTBOUND_PORT, "backend", n, connections)
    if errors or ok != n:
        raise RuntimeError(f"{setup.mode}: {ok} answered 200 and {errors} not, of {n}")
    return {name: (cpu_seconds(pid) - before[name]) / n * 1e6 for name, pid in setup.pids.items()}


# -- py-spy ------------------------------------------------------------------------------------------
def py_spy_profile(setup: Setup, n: int, connections: int, top: int) -> None:
    """Sample both sidecars under the same load; print self-time shares by function and by module."""
    exe = shutil.which("py-spy")
    if exe is None:
        print("py-spy is not installed (pip install py-spy): no profile")
        return
    spies = {}
    for name, pid in setup.pids.items():
        out = setup.work / f"{pid}.txt"
        spies[name] = (out, subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", "500", "--nonblocking", "--format", "raw",
             "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # py-spy attaches asynchronously and has no ready signal; this only shortens the profile
    drive(setup.cip, OUTBOUND_PORT, "backend", n, connections)
    for name, (out, spy) in spies.items():
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            spy.wait(timeout=20)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
        if out.exists():
            print_profile(f"{setup.mode} hop, {name}", out.read_text(), top)


def print_profile(title: str, collapsed: str, top: int) -> None:
    """Collapsed stacks ("frame;frame;leaf count" per line): self time is the leaf frame's."""
    by_function: collections.Counter[str] = collections.Counter()
    by_module: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        count = int(count)
        leaf = stack.rsplit(";", 1)[-1]
        total += count
        function, _, where = leaf.partition(" (")
        module = where.split(":", 1)[0].rstrip(")")
        if "run_forever" in function or "select" in function:
            idle += count
        by_function[f"{function} ({_short(module)})"] += count
        by_module[_short(module)] += count
    if not total:
        print(f"{title}: no samples")
        return
    print(f"\n{title}: {total} samples (a leaf in the loop's run_forever/select is mostly waiting: "
          f"{idle / total:.0%})")
    print("  self time by module:")
    for module, count in by_module.most_common(top):
        print(f"    {count / total:6.1%}  {module}")
    print("  self time by function:")
    for function, count in by_function.most_common(top):
        print(f"    {count / total:6.1%}  {function}")


def _short(path: str) -> str:
    for marker in ("site-packages/", "meshconform/", "/main/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# -- main --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per measurement (default 20,000)")
    parser.add_argument("--connections", type=int, default=16, help="closed-loop connections (default 16)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per mode (default 3)")
    parser.add_argument("--modes", default="mtls,plain", help="comma-separated: mtls, plain")
    parser.add_argument("--py-spy", action="store_true", help="also profile each sidecar with py-spy")
    parser.add_argument("--top", type=int, default=15, help="rows per py-spy table")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--compare", type=Path, help="a checkout (holding meshproxy/) to compare against")
    args = parser.parse_args(argv)
    sources = {"current": REPO} | ({"compare": args.compare.resolve()} if args.compare else {})

    work = Path(tempfile.mkdtemp(prefix="profile-sidecar-"))
    ca = ForeignCA("profile_sidecar mesh CA")
    bundle = ca.write_bundle(work / "bundle.pem")
    results: dict[str, dict] = {}
    try:
        for mode in args.modes.split(","):
            setups = [Setup(mode, work, ca, bundle, source, label) for label, source in sources.items()]
            try:
                for setup in setups:
                    setup.start()
                    measure(setup, 2_000, args.connections)  # warm-up: pools, caches, branch predictors
                runs: dict[str, list] = {setup.label: [] for setup in setups}
                for repeat in range(args.repeats):  # interleaved, alternating order
                    for setup in setups if repeat % 2 == 0 else setups[::-1]:
                        runs[setup.label].append(measure(setup, args.requests, args.connections))
                for setup in setups:
                    key = mode if setup.label == "current" else f"{mode} ({setup.label})"
                    results[key] = {name: {"median": statistics.median(r[name] for r in runs[setup.label]),
                                           "runs": [round(r[name], 1) for r in runs[setup.label]]}
                                    for name in setup.pids}
                if args.py_spy:
                    py_spy_profile(setups[0], args.requests, args.connections, args.top)
            finally:
                for setup in setups:
                    setup.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()
    print(f"\nCPU µs per request per sidecar: closed loop, {args.connections} connections, "
          f"{args.requests:,} requests x {args.repeats} repeats; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'hop between sidecars':24} {'sidecar':22} {'µs/request (median)':>20} {'req/s per core':>15}  runs")
    for mode, by_sidecar in results.items():
        for name, r in by_sidecar.items():
            print(f"{mode:24} {name:22} {r['median']:20.1f} {1e6 / r['median']:15,.0f}  {r['runs']}")
    if args.json:
        args.json.write_text(json.dumps({"load_average": load, "requests": args.requests,
                                         "connections": args.connections, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
