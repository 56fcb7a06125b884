"""Quick closed-loop latency probe: p50 added by two sidecars (outbound + inbound, mTLS between them)
versus calling the app directly, and the sidecars' CPU per request. Not a test; run it by hand:

    python tests/meshproxy/sidecar/latency_probe.py [--requests 5000] [--repeats 3]

The app is a minimal uvloop protocol answering a fixed 200, so the numbers are the proxies' own cost.
One keep-alive connection, one request at a time (http.client), runs interleaved direct / mesh /
HAProxy (two single-threaded HAProxy processes arranged like the two sidecars: plain in, mTLS between
them with client certificates verified, plain to the app), so a loaded machine shows up in all three.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from sidecar_testkit import ADMIN_PORT, APP_PORT, INBOUND_PORT, OUTBOUND_PORT, TD, spiffe  # noqa: E402

from fixtures.certs import ForeignCA, write_pair  # noqa: E402

APP = r"""
import asyncio, sys, uvloop
BODY = b'{"ok":true}'
RESP = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t
    def data_received(self, d):
        for _ in range(d.count(b"\r\n\r\n")): self.t.write(RESP)
async def main():
    srv = await asyncio.get_running_loop().create_server(P, sys.argv[1], int(sys.argv[2]))
    print("ready", flush=True); await srv.serve_forever()
uvloop.run(main())
"""


def wait_port(ip: str, port: int, path: str | None = None, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            c = http.client.HTTPConnection(ip, port, timeout=0.5)
            c.request("GET", path or "/")
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)  # polling a port that is not up yet
    raise TimeoutError(f"{ip}:{port} not up")


def closed_loop(ip: str, port: int, host: str, n: int) -> list[float]:
    conn = http.client.HTTPConnection(ip, port)
    out = []
    for _ in range(200):  # warm-up
        conn.request("GET", "/", headers={"Host": host})
        conn.getresponse().read()
    for _ in range(n):
        t0 = time.perf_counter_ns()
        conn.request("GET", "/", headers={"Host": host})
        conn.getresponse().read()
        out.append((time.perf_counter_ns() - t0) / 1000)
    conn.close()
    return out


def haproxy_pair(tmp: Path, ca, bundle: Path, cip: str, bip: str) -> list[subprocess.Popen]:
    """HAProxy as the same two hops (ports 25001 -> 25006 -> app), mTLS between them."""
    pems = {}
    for name in ("client", "backend"):
        cert, key = ca.issue_svid(spiffe(name))
        pems[name] = tmp / f"haproxy-{name}.pem"
        pems[name].write_bytes(cert + key)
    common = ("global\n  nbthread 1\n  maxconn 1000\ndefaults\n  mode http\n  timeout connect 5s\n"
              "  timeout client 30s\n  timeout server 30s\n  http-reuse always\n")
    configs = {
        "out": common + f"frontend out\n  bind {cip}:25001\n  default_backend mesh\nbackend mesh\n"
               f"  server b {bip}:25006 ssl verify required ca-file {bundle} crt {pems['client']}\n",
        "in": common + f"frontend in\n  bind {bip}:25006 ssl crt {pems['backend']} ca-file {bundle} verify required\n"
              f"  default_backend app\nbackend app\n  server a {bip}:{APP_PORT}\n",
    }
    procs = []
    for name, text in configs.items():
        (tmp / f"haproxy-{name}.cfg").write_text(text)
        procs.append(subprocess.Popen(["haproxy", "-db", "-f", str(tmp / f"haproxy-{name}.cfg")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    block = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}"
    cip, bip = f"{block}.11", f"{block}.12"
    tmp = Path(tempfile.mkdtemp(prefix="meshproxy-probe-"))
    ca = ForeignCA("probe mesh CA")
    bundle = ca.write_bundle(tmp / "bundle.pem")
    scenario = {"trust_domain": TD, "services": [{"name": "client"}, {"name": "backend"}],
                "policies": [{"service": "backend", "mtls": {"mode": "STRICT"},
                              "authz": {"allowed_principals": [spiffe("client")]}}]}
    endpoints = {"backend-v1-0": {"service": "backend", "version": "v1", "instance": 0,
                                  "address": f"{bip}:{INBOUND_PORT}"}}
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-c", APP, bip, str(APP_PORT)], stdout=subprocess.PIPE))
        procs[-1].stdout.readline()
        sidecar_pids = []
        for service, ip in (("backend", bip), ("client", cip)):
            cert, key = write_pair(tmp, service, *ca.issue_svid(spiffe(service)))
            boot = {"workload": f"{service}-v1-0", "service": service, "namespace": "default", "version": "v1",
                    "instance": 0, "spiffe_id": spiffe(service), "trust_domain": TD, "ip": ip,
                    "inbound_port": INBOUND_PORT, "outbound_port": OUTBOUND_PORT, "admin_port": ADMIN_PORT,
                    "app": f"{ip}:{APP_PORT}", "bundle": str(bundle), "work_dir": str(tmp / service),
                    "static": {"scenario": scenario, "endpoints": endpoints, "cert": str(cert), "key": str(key)}}
            (tmp / f"{service}.json").write_text(json.dumps(boot))
            p = subprocess.Popen([sys.executable, "-m", "meshproxy.sidecar", "--bootstrap", str(tmp / f"{service}.json"),
                                  "--log-level", "WARNING"])
            procs.append(p)
            sidecar_pids.append(p.pid)
            wait_port(ip, ADMIN_PORT, "/ready")
        haproxies = haproxy_pair(tmp, ca, bundle, cip, bip)
        procs += haproxies
        wait_port(cip, 25001)
        direct, mesh, haproxy = [], [], []
        cpu_mesh = cpu_haproxy = 0.0
        for _ in range(args.repeats):
            direct.append(statistics.median(closed_loop(bip, APP_PORT, "backend", args.requests)))
            cpu0 = sum(cpu_seconds(p) for p in sidecar_pids)
            mesh.append(statistics.median(closed_loop(cip, OUTBOUND_PORT, "backend", args.requests)))
            cpu_mesh += sum(cpu_seconds(p) for p in sidecar_pids) - cpu0
            cpu0 = sum(cpu_seconds(p.pid) for p in haproxies)
            haproxy.append(statistics.median(closed_loop(cip, 25001, "backend", args.requests)))
            cpu_haproxy += sum(cpu_seconds(p.pid) for p in haproxies) - cpu0
        mesh_requests = args.repeats * (args.requests + 200)
        cpu = cpu_mesh
        print(f"direct  p50 µs per repeat: {[round(x, 1) for x in direct]}")
        print(f"mesh    p50 µs per repeat: {[round(x, 1) for x in mesh]}")
        print(f"haproxy p50 µs per repeat: {[round(x, 1) for x in haproxy]}")
        added = statistics.median(mesh) - statistics.median(direct)
        added_haproxy = statistics.median(haproxy) - statistics.median(direct)
        print(f"added by two sidecars: {added:.1f} µs p50 ({added / 2:.1f} µs per hop)")
        print(f"added by two HAProxies: {added_haproxy:.1f} µs p50 ({added_haproxy / 2:.1f} µs per hop); "
              f"sidecar/HAProxy = {added / added_haproxy:.2f}x")
        print(f"HAProxy CPU: {cpu_haproxy / mesh_requests * 1e6:.1f} µs per request for both")
        print(f"sidecar CPU: {cpu / mesh_requests * 1e6:.1f} µs per request for both sidecars "
              f"(~{mesh_requests / cpu / 2:,.0f} req/s per core per sidecar)")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
