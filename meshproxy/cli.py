"""``meshconform up``, ``down`` and ``sweep``: the reference mesh as local processes on this machine.

    meshconform up [--scenario FILE] [--state FILE] [--defects JSON]   # foreground until Ctrl-C / SIGTERM
    meshconform down [--state FILE]                                    # stop a mesh started elsewhere
    meshconform sweep [--run-id ID]                                    # kill leftovers of dead runs

Registered on the ``meshconform`` command by :func:`add_mesh_commands`. Exit codes: 0 ok, 1 runtime
failure, 2 bad input (scenario, defects, state file).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from meshruntime.processes import alive

DEFAULT_STATE = "meshconform-state.json"
DOWN_TIMEOUT_S = 15.0

# piped output (CI logs) gets a width that fits instead of rich's 80-column default
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, highlight=False)


class _Stop(Exception):
    """Raised from the SIGTERM handler so `up` unwinds through its finally: block."""


def add_mesh_commands(sub: Any) -> None:
    """Add ``up``, ``down`` and ``sweep`` to the ``meshconform`` command's subcommands."""
    up = sub.add_parser("up", help="start the reference mesh as local processes and stay in the foreground")
    up.add_argument("--scenario", type=Path, help="scenario YAML/JSON (default: the bundled default scenario)")
    up.add_argument("--state", type=Path, default=Path(DEFAULT_STATE), help=f"state file (default {DEFAULT_STATE})")
    up.add_argument("--defects", help='deliberate defects as JSON, e.g. \'{"ignore_authz": true}\'')
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the mesh to be ready")
    up.set_defaults(run=_up)
    down = sub.add_parser("down", help="stop a mesh started by `meshconform up`")
    down.add_argument("--state", type=Path, default=Path(DEFAULT_STATE))
    down.set_defaults(run=_down)
    sweep = sub.add_parser("sweep", help="kill processes left behind by runs whose owner is gone")
    sweep.add_argument("--run-id", help="only this run (default: every run)")
    sweep.set_defaults(run=_sweep)


def _up(args: argparse.Namespace) -> int:
    from meshscenario import DEFAULT_SCENARIO_PATH, ScenarioError, load_scenario
    from meshproxy import defects as defects_module
    from meshproxy.runtime import LocalMesh, MeshStartError

    try:
        scenario = load_scenario(args.scenario or DEFAULT_SCENARIO_PATH)
    except ScenarioError as exc:
        errors.print(str(exc), markup=False)
        return 2
    try:
        defects = defects_module.parse(args.defects)
    except ValueError as exc:
        errors.print(f"--defects: {exc}", markup=False)
        return 2

    mesh = LocalMesh(scenario, defects=defects)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        with console.status(f"starting {len(scenario.workloads())} workloads…"):
            mesh.start(timeout=args.timeout)
        mesh.write_state(args.state)
        _print_mesh(mesh.state, args.state)
        while True:
            signal.pause()  # until SIGINT (KeyboardInterrupt) or SIGTERM (_Stop)
    except MeshStartError as exc:
        errors.print(f"the mesh did not start: {exc}", markup=False)
        return 1
    except (KeyboardInterrupt, _Stop):
        console.print("stopping…")
        return 0
    finally:
        # a second signal must not interrupt the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        mesh.stop()
        _remove_own_state(args.state, mesh.run_id)
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _raise_stop(signum, frame):
    raise _Stop()


def _remove_own_state(path: Path, run_id: str) -> None:
    try:
        if json.loads(path.read_text()).get("run_id") == run_id:
            path.unlink()
    except (OSError, ValueError):
        pass


def _print_mesh(state: dict, state_path: Path) -> None:
    table = Table(title=f"meshconform run {state['run_id']}")
    for column in ("workload", "outbound (app → mesh)", "inbound (mTLS)", "echo control", "admin"):
        table.add_column(column, no_wrap=True)
    table.add_column("spiffe id", overflow="fold")
    for name, w in state["workloads"].items():
        table.add_row(name, w["outbound"], w["inbound"], w["echo_control"], w["admin"], w["spiffe_id"])
    console.print(table)
    console.print(f"control plane {state['controlplane']['url']}  ·  state file {state_path}  ·  "
                  f"Ctrl-C or `meshconform down --state {state_path}` to stop", markup=False)


def _down(args: argparse.Namespace) -> int:
    from meshproxy.runtime import sweep

    try:
        state = json.loads(args.state.read_text())
        run_id = state["run_id"]
    except (OSError, ValueError, KeyError) as exc:
        errors.print(f"cannot read the state file {args.state}: {exc}", markup=False)
        return 2
    pids = _pids_of(state)
    owner = state.get("owner_pid")
    if owner and alive(owner):
        os.kill(owner, signal.SIGTERM)
    deadline = time.monotonic() + DOWN_TIMEOUT_S
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling pace while the owner stops its processes
    swept = sweep(run_id)
    left = [p for p in pids if alive(p)]
    if left:
        errors.print(f"still running after {DOWN_TIMEOUT_S:.0f} s: {left}", markup=False)
        return 1
    console.print(f"run {run_id} is down ({len(pids)} processes"
                  + (f", {len(swept)} swept" if swept else "") + ")", markup=False)
    try:
        args.state.unlink()
    except FileNotFoundError:
        pass
    return 0


def _pids_of(state: dict) -> list[int]:
    pids = [state.get("owner_pid"), state.get("controlplane", {}).get("pid")]
    for workload in state.get("workloads", {}).values():
        pids += workload.get("pids", {}).values()
    return [p for p in pids if isinstance(p, int)]


def _sweep(args: argparse.Namespace) -> int:
    from meshproxy.runtime import sweep

    swept = sweep(args.run_id)
    for proc in swept:
        console.print(f"killed {proc.pid} (run {proc.run_id}): {proc.cmdline[:100]}", markup=False)
    console.print(f"{len(swept)} leftover processes" + (f" of run {args.run_id}" if args.run_id else ""),
                  markup=False)
    return _sweep_docker(args.run_id)


def _sweep_docker(run_id: str | None) -> int:
    """Containers, networks and volumes of dead runs (meshproxy/runtime/docker.py), when Docker answers."""
    from meshproxy.runtime.docker import DockerUnavailable, sweep as docker_sweep

    try:
        swept = docker_sweep(run_id)
    except DockerUnavailable as exc:
        console.print(f"docker: nothing swept ({exc})", markup=False)
        return 0
    for thing in swept:
        console.print(f"removed {thing.kind} {thing.name} (run {thing.run_id})", markup=False)
    console.print(f"{len(swept)} leftover containers, networks and volumes", markup=False)
    return 0

