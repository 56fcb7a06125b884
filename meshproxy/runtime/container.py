"""What runs inside the reference mesh's containers besides the processes themselves (docker/Dockerfile).

    python -m meshproxy.runtime.container controlplane --state-dir /state [--scenario FILE]  # compose/
    python -m meshproxy.runtime.container sidecar --workload client-v1-0 --state-dir /state  # compose/

The harness's Docker runtime (:mod:`meshproxy.runtime.docker`) starts the control plane and sidecars
with their own command lines (docs/architecture.md) and writes each sidecar's bootstrap itself, so it
uses neither. They are for ``compose/``, where no harness is
around: the control plane entrypoint writes an admin token into the shared state volume, serves on
the container's own address and puts the scenario; a sidecar entrypoint reads that token, asks for its
own join token and bootstrap, then becomes the sidecar. The shared admin token is a demo's shortcut (a
node agent's job in a real mesh): compose/README.md says so.

The images' HEALTHCHECK is docker/healthcheck.py (standard library only: it runs every few seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path



def own_ip() -> str:
    """This container's address on its (first) network: what Docker put in /etc/hosts for its hostname."""
    return socket.gethostbyname(socket.gethostname())


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise SystemExit(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.1)  # polling pace


def _forward_signals(child: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))


def run_controlplane(args: argparse.Namespace) -> int:
    from meshproxy.cpclient import ControlPlaneClient
    from meshruntime import layout
    from meshscenario import DEFAULT_SCENARIO_PATH, load_scenario

    state = Path(args.state_dir)
    token_file = state / "admin-token"
    if not token_file.exists():
        _write_private(token_file, secrets.token_urlsafe(32))
    token = token_file.read_text().strip()
    listen = f"{own_ip()}:{layout.CONTROLPLANE_PORT}"
    argv = [sys.executable, "-m", "meshproxy.controlplane", "--listen", listen, "--state-dir", str(state),
            "--trust-domain", args.trust_domain, "--admin-token-file", str(token_file)]
    child = subprocess.Popen(argv)
    _forward_signals(child)
    bundle = state / "bundle.pem"
    _until(lambda: bundle.exists() or child.poll() is not None, 60, "the control plane's bundle")
    if child.poll() is None:
        client = ControlPlaneClient(f"https://{listen}", bundle, admin_token=token)
        _until(lambda: client.healthz() or child.poll() is not None, 60, "the control plane's /healthz")
        scenario = load_scenario(args.scenario or DEFAULT_SCENARIO_PATH)
        version = client.put_scenario(scenario)
        print(f"scenario {scenario.name!r} put (version {version}); serving on {listen}", flush=True)
    return child.wait()


def run_sidecar(args: argparse.Namespace) -> int:
    from meshproxy.cpclient import ControlPlaneClient
    from meshruntime import layout
    from meshscenario import DEFAULT_SCENARIO_PATH, load_scenario

    state = Path(args.state_dir)
    scenario = load_scenario(args.scenario or DEFAULT_SCENARIO_PATH)
    workload = next((w for w in scenario.workloads() if w.name == args.workload), None)
    if workload is None:
        raise SystemExit(f"no workload {args.workload!r} in {scenario.name!r}: "
                         f"{', '.join(w.name for w in scenario.workloads())}")
    cp_ip = socket.gethostbyname(args.controlplane_host)
    url = f"https://{cp_ip}:{layout.CONTROLPLANE_PORT}"
    token_file, bundle = state / "admin-token", state / "bundle.pem"
    _until(lambda: token_file.exists() and bundle.exists(), 60, "the control plane's admin token and bundle")
    client = ControlPlaneClient(url, bundle, admin_token=token_file.read_text().strip())
    _until(client.healthz, 60, f"the control plane at {url}")
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o700)
    bootstrap = {
        "workload": workload.name, "service": workload.service, "namespace": workload.namespace,
        "version": workload.version, "instance": workload.instance, "spiffe_id": workload.spiffe_id,
        "trust_domain": scenario.trust_domain, "ip": own_ip(),
        "inbound_port": layout.INBOUND_PORT, "outbound_port": layout.OUTBOUND_PORT,
        "admin_port": layout.ADMIN_PORT, "app": f"127.0.0.1:{layout.APP_PORT}", "controlplane": url,
        "bundle": str(bundle), "work_dir": str(work),
        "join_token": client.create_join_token(workload.name, workload.spiffe_id, ttl_s=300),
    }
    path = work / "bootstrap.json"
    _write_private(path, json.dumps(bootstrap, indent=2))
    os.execv(sys.executable, [sys.executable, "-m", "meshproxy.sidecar", "--bootstrap", str(path)])
    return 0  # pragma: no cover - execv does not return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshproxy.runtime.container", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cp = sub.add_parser("controlplane", help="compose: serve on this container's address and put the scenario")
    cp.add_argument("--state-dir", default="/state")
    cp.add_argument("--trust-domain", default="cluster.local")
    cp.add_argument("--scenario", help="scenario file (default: the bundled default scenario)")
    sc = sub.add_parser("sidecar", help="compose: bootstrap this workload's sidecar and become it")
    sc.add_argument("--workload", required=True)
    sc.add_argument("--state-dir", default="/state")
    sc.add_argument("--controlplane-host", default="controlplane")
    sc.add_argument("--work-dir", default="/tmp/sidecar")
    sc.add_argument("--scenario", help="scenario file (default: the bundled default scenario)")
    args = parser.parse_args(argv)
    if args.command == "controlplane":
        return run_controlplane(args)
    return run_sidecar(args)


if __name__ == "__main__":
    sys.exit(main())
