"""Chaos Toolkit actions that put a Toxiproxy proxy on a hop of the reference mesh, and back.

chaostoolkit-toxiproxy creates the proxy (``upstream`` = a workload's inbound address) and its toxics on
``meshconform faults serve``; these actions make the mesh send that workload's traffic through it, as
:func:`harness.faults.hop.proxy_on_hop` does inside a test: every caller of the workload is pointed at
the proxy's listen address, and the call returns once every sidecar acked that. They read the state
file ``meshconform up --state FILE`` wrote (control plane, admin token, CA bundle, addresses)::

    {"type": "action", "name": "send-backend-traffic-through-the-proxy",
     "provider": {"type": "python", "module": "harness.faults.chaostoolkit",
                  "func": "point_callers_at_proxy",
                  "arguments": {"workload": "backend-v1-0", "proxy": "backend_hop",
                                "toxiproxy_url": "${toxiproxy_url}", "state": "${mesh_state}"}}}

``python3 -m harness.faults.chaostoolkit env --state FILE`` prints the mesh's addresses as shell
``export`` lines (``MESHCONFORM_<WORKLOAD>_{INBOUND,OUTBOUND}`` and their ``_HOST``/``_PORT``) for an
experiment's ``env`` configuration and chaostoolkit-toxiproxy's ``env:`` arguments.
examples/chaostoolkit/ has a whole experiment.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_STATE = "meshconform-state.json"
DEFAULT_TIMEOUT_S = 15.0

# the Toxiproxy API is on loopback: never through a proxy from the environment
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def point_callers_at_proxy(workload: str, proxy: str, toxiproxy_url: str, state: str = DEFAULT_STATE,
                           timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, str]:
    """Send ``workload``'s traffic through the Toxiproxy proxy named ``proxy`` (its ``listen`` address,
    read from ``toxiproxy_url``), once every sidecar has the change."""
    with _OPENER.open(f"{toxiproxy_url.rstrip('/')}/proxies/{proxy}", timeout=timeout) as resp:
        listen = json.loads(resp.read())["listen"]
    _point(state, workload, listen, timeout)
    return {"workload": workload, "address": listen}


def restore_callers(workload: str, state: str = DEFAULT_STATE, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, str]:
    """Point ``workload``'s callers back at its own inbound address (idempotent)."""
    inbound = _load(state)["workloads"][workload]["inbound"]
    _point(state, workload, inbound, timeout)
    return {"workload": workload, "address": inbound}


def mesh_environment(state: str = DEFAULT_STATE) -> dict[str, str]:
    """``MESHCONFORM_<WORKLOAD>_<INBOUND|OUTBOUND>[_HOST|_PORT]`` for every workload in the state file."""
    env: dict[str, str] = {}
    for name, w in _load(state)["workloads"].items():
        prefix = "MESHCONFORM_" + name.upper().replace("-", "_").replace(".", "_")
        for kind in ("inbound", "outbound"):
            host, _, port = w[kind].rpartition(":")
            key = f"{prefix}_{kind.upper()}"
            env[key], env[f"{key}_HOST"], env[f"{key}_PORT"] = w[kind], host, port
    return env


def _load(state: str) -> dict[str, Any]:
    try:
        return json.loads(Path(state).read_text())
    except OSError as exc:
        raise RuntimeError(f"cannot read the mesh state file {state} (written by `meshconform up --state`): "
                           f"{exc}") from None


def _point(state_file: str, workload: str, address: str, timeout: float) -> None:
    from meshproxy.cpclient import ControlPlaneClient

    state = _load(state_file)
    w = state["workloads"][workload]
    cp = state["controlplane"]
    client = ControlPlaneClient(cp["url"], state["bundle"], admin_token=cp["admin_token"], timeout=timeout)
    client.override_endpoint(workload=workload, address=address, service=w["service"], namespace=w["namespace"],
                             version=w["version"], instance=w["instance"])
    client.wait_generation(client.status()["generation"], timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m harness.faults.chaostoolkit",
                                     description="the reference mesh's addresses for a Chaos Toolkit experiment")
    sub = parser.add_subparsers(dest="command", required=True)
    env = sub.add_parser("env", help="print `export NAME=VALUE` lines for every workload's addresses")
    env.add_argument("--state", default=DEFAULT_STATE, help=f"state file of `meshconform up` (default {DEFAULT_STATE})")
    args = parser.parse_args(argv)
    try:
        variables = mesh_environment(args.state)
    except (RuntimeError, KeyError, ValueError) as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    for key, value in variables.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
