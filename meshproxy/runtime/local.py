"""A whole reference mesh as local processes: one control plane, and per workload an echo and a sidecar.

    mesh = LocalMesh(scenario)
    state = mesh.start()          # everything up, the scenario in effect everywhere
    mesh.apply(new_scenario)      # seconds until the new scenario is in effect
    mesh.restart("sidecar", "backend-v1-0")
    mesh.stop()                   # idempotent; also runs at interpreter exit

Addresses, command lines, bootstrap and state formats are those of docs/architecture.md. Children
cannot outlive the owner (see :mod:`meshruntime.processes`); :func:`meshruntime.sweep.sweep`
removes leftovers of owners that were killed before the kernel could help.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

from meshscenario import Scenario, Workload
from meshproxy import defects as defects_module
from meshproxy.runtime.common import ControlPlaneMesh
from meshruntime import layout as layout_module
from meshruntime.control import ProcessControlled
from meshruntime.processes import ManagedProcess, http_ok, stop_all, wait_ready, wait_until

COMPONENTS = ("controlplane", "sidecar", "echo")
JOIN_TOKEN_TTL_S = 300


class MeshStartError(RuntimeError):
    """A component did not become ready; the message carries the tail of its log."""


class LocalMesh(ControlPlaneMesh, ProcessControlled):
    def __init__(self, scenario: Scenario, *, state_dir: str | Path | None = None, run_id: str | None = None,
                 defects: Mapping[str, Any] | None = None, block: str | None = None,
                 python: str = sys.executable, log_dir: str | Path | None = None):
        self.scenario = scenario
        self.run_id = run_id or f"mc-{uuid.uuid4().hex[:12]}"
        self._owns_state_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else None
        self.log_dir = Path(log_dir) if log_dir else None
        self.defects = defects_module.Defects.of(defects)
        self._defects_env = defects_module.encode(self.defects) if self.defects else None
        self.block = layout_module.normalise_block(block) if block else None
        self.python = python
        self.admin_token = secrets.token_urlsafe(32)
        self.layout: layout_module.Layout | None = None
        self._controlplane: ManagedProcess | None = None
        self._sidecars: dict[str, ManagedProcess] = {}
        self._echoes: dict[str, ManagedProcess] = {}
        self._client = None
        self._lock = threading.RLock()
        self._started = False

    # -- paths -----------------------------------------------------------------------------------
    @property
    def controlplane_url(self) -> str:
        return f"https://{self.layout.controlplane}"

    def _logs(self) -> Path:
        return self.log_dir or self.state_dir / "logs"

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> dict[str, Any]:
        """Start every process and return the state once the scenario is in effect everywhere.

        Raises MeshStartError (after stopping what it started) when a part is not ready in ``timeout`` s.
        """
        with self._lock:
            if self._started:
                raise RuntimeError("this LocalMesh is already started")
            deadline = time.monotonic() + timeout
            if self.state_dir is None:
                self.state_dir = Path(tempfile.mkdtemp(prefix=f"meshconform-{self.run_id}-"))
            self.state_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.state_dir, 0o700)
            self.block = self.block or layout_module.random_block()
            self.layout = layout_module.plan(self.scenario, self.block)
            self._started = True
            atexit.register(self.stop)
            try:
                # a fresh mesh starts from no endpoints (a restart of its control plane keeps them)
                (self.state_dir / "endpoints.json").unlink(missing_ok=True)
                self._start_controlplane(deadline)
                self._client.put_scenario(self.scenario)
                for workload in self.scenario.workloads():
                    self._start_echo(workload)
                    self._start_sidecar(workload)
                for workload in self.scenario.workloads():
                    self._wait_echo_ready(workload.name, deadline)
                    self._wait_sidecar_ready(workload.name, deadline)
                self._wait_in_effect(deadline)
            except BaseException:
                self.stop()
                raise
            return self.state

    def stop(self) -> None:
        """SIGTERM every process group, SIGKILL after 3 s, remove a temporary state dir. Idempotent."""
        with self._lock:
            # the data plane first, so sidecars that deregister on SIGTERM still find the control plane
            stop_all([*self._sidecars.values(), *self._echoes.values()], grace=3.0)
            if self._controlplane:
                stop_all([self._controlplane], grace=3.0)
            self._sidecars.clear()
            self._echoes.clear()
            self._controlplane = None
            if self._client is not None and hasattr(self._client, "close"):
                self._client.close()
            self._client = None
            if self._owns_state_dir and self.state_dir and self.state_dir.exists():
                shutil.rmtree(self.state_dir, ignore_errors=True)
            self._started = False
            atexit.unregister(self.stop)

    # -- ProcessControl (meshruntime.control): kill/pause/resume/restart("<component>") ---------------
    # -- reaching the harness from the mesh (DockerMesh has the same three) ----------------------------
    def reachable_from_mesh(self, address: str) -> str:
        """Where the mesh reaches the harness's ``address``: on loopback, the address itself."""
        return address

    def release_relay(self, address: str) -> None:
        """Nothing to release: on loopback there is no relay."""

    def mesh_inbound(self, workload: str) -> str:
        """The workload's inbound address as the mesh sees it."""
        return self.state["workloads"][workload]["inbound"]

    def component_process(self, kind: str, workload: str | None) -> ManagedProcess:
        if kind == "controlplane":
            proc = self._controlplane
        elif kind in ("sidecar", "echo"):
            table = self._sidecars if kind == "sidecar" else self._echoes
            proc = table.get(workload)
            if proc is None:
                raise KeyError(f"no workload {workload!r} (have {', '.join(sorted(table))})")
        else:
            raise ValueError(f"component must be one of {', '.join(COMPONENTS)}, not {kind!r}")
        if proc is None:
            raise RuntimeError("the mesh is not started")
        return proc

    def start_component(self, kind: str, workload: str | None, deadline: float) -> None:
        # the lock covers starting, not the waits: a sidecar started while the control plane is down
        # waits (on another thread) for the control plane, whose own restart must not wait for it
        if kind == "controlplane":
            with self._lock:
                self._start_controlplane(deadline)
            self._wait_in_effect(deadline)  # every sidecar found it again and acked
        elif kind == "echo":
            with self._lock:
                self._start_echo(self._workload(workload))
            self._wait_echo_ready(workload, deadline)
        else:
            with self._lock:
                self._start_sidecar(self._workload(workload))
            self._wait_sidecar_ready(workload, deadline)
            self._wait_in_effect(deadline)

    # -- state --------------------------------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        """The state-file mapping of docs/architecture.md, plus ``owner_pid`` (this process)."""
        if self.layout is None:
            raise RuntimeError("the mesh is not started")
        workloads = {}
        for w in self.scenario.workloads():
            addr = self.layout.workloads[w.name]
            workloads[w.name] = {
                "service": w.service, "namespace": w.namespace, "version": w.version, "instance": w.instance,
                "spiffe_id": w.spiffe_id, "ip": addr.ip, "app": addr.app, "inbound": addr.inbound,
                "outbound": addr.outbound, "admin": addr.admin, "echo_control": addr.echo_control,
                "pids": {"sidecar": _pid(self._sidecars.get(w.name)), "echo": _pid(self._echoes.get(w.name))},
            }
        return {
            "run_id": self.run_id, "owner_pid": os.getpid(), "trust_domain": self.scenario.trust_domain,
            "state_dir": str(self.state_dir), "bundle": str(self.bundle_path),
            "controlplane": {"url": self.controlplane_url, "admin_token": self.admin_token,
                             "pid": _pid(self._controlplane)},
            "workloads": workloads,
        }

    # -- starting parts -------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop(defects_module.ENV, None)
        if self._defects_env:
            env[defects_module.ENV] = self._defects_env
        # children must import this checkout's packages whatever their working directory
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        return env

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        return ManagedProcess(name, argv, run_id=self.run_id, env=self._env(),
                              log_path=self._logs() / f"{name}.log", cwd=str(self.state_dir)).start()

    def _start_controlplane(self, deadline: float) -> None:
        token_file = self.state_dir / "admin-token"
        _write_private(token_file, self.admin_token)
        argv = [self.python, "-m", "meshproxy.controlplane", "--listen", self.layout.controlplane,
                "--state-dir", str(self.state_dir), "--trust-domain", self.scenario.trust_domain,
                "--admin-token-file", str(token_file)]
        proc = self._controlplane = self._spawn("controlplane", argv)
        what = f"control plane on {self.layout.controlplane}"
        self._wait(proc, what, deadline, self.bundle_path.exists)
        if self._client is None:
            from meshproxy.cpclient import ControlPlaneClient

            self._client = ControlPlaneClient(self.controlplane_url, self.bundle_path,
                                              admin_token=self.admin_token)
        self._wait(proc, what, deadline, self._client_healthy)

    def _start_echo(self, workload: Workload) -> None:
        addr = self.layout.workloads[workload.name]
        argv = [self.python, "-m", "fixtures.echo", "--listen", addr.app, "--control", addr.echo_control,
                "--service", workload.service, "--version", workload.version,
                "--instance", str(workload.instance)]
        self._echoes[workload.name] = self._spawn(f"echo-{workload.name}", argv)

    def _start_sidecar(self, workload: Workload) -> None:
        addr = self.layout.workloads[workload.name]
        work_dir = self._work_dir(workload.name)
        work_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(work_dir, 0o700)
        from meshproxy.cpclient import ControlPlaneUnavailable

        try:
            token = self._client.create_join_token(workload.name, workload.spiffe_id, ttl_s=JOIN_TOKEN_TTL_S)
        except ControlPlaneUnavailable:
            if not (work_dir / "svid.pem").exists():
                raise
            token = None  # the control plane is down: the sidecar joins with its previous SVID once it is back
        bootstrap = {
            "workload": workload.name, "service": workload.service, "namespace": workload.namespace,
            "version": workload.version, "instance": workload.instance, "spiffe_id": workload.spiffe_id,
            "trust_domain": self.scenario.trust_domain, "ip": addr.ip,
            "inbound_port": layout_module.INBOUND_PORT, "outbound_port": layout_module.OUTBOUND_PORT,
            "admin_port": layout_module.ADMIN_PORT, "app": addr.app, "controlplane": self.controlplane_url,
            "bundle": str(self.bundle_path), "join_token": token, "work_dir": str(work_dir),
        }
        if token is None:
            del bootstrap["join_token"]
        path = work_dir / "bootstrap.json"
        _write_private(path, json.dumps(bootstrap, indent=2))
        argv = [self.python, "-m", "meshproxy.sidecar", "--bootstrap", str(path)]
        self._sidecars[workload.name] = self._spawn(f"sidecar-{workload.name}", argv)

    # -- waiting ------------------------------------------------------------------------------------------
    def _wait(self, proc: ManagedProcess, what: str, deadline: float, ready) -> None:
        try:
            wait_ready(proc, what, deadline, ready)
        except TimeoutError as exc:
            raise MeshStartError(str(exc)) from None

    def _wait_echo_ready(self, name: str, deadline: float) -> None:
        addr = self.layout.workloads[name]
        self._wait(self._echoes[name], f"echo of {name} on {addr.echo_control}", deadline,
                   lambda: http_ok(addr.echo_control, "/healthz"))

    def _wait_sidecar_ready(self, name: str, deadline: float) -> None:
        addr = self.layout.workloads[name]
        self._wait(self._sidecars[name], f"sidecar of {name} (admin {addr.admin}/ready)", deadline,
                   lambda: http_ok(addr.admin, "/ready"))

    def _wait_in_effect(self, deadline: float) -> None:
        expected = {w.name for w in self.scenario.workloads()}
        try:
            wait_until(lambda: expected <= set(self._client.status().get("workloads", {})),
                       timeout=max(0.0, deadline - time.monotonic()), what="every workload registered")
        except TimeoutError as exc:
            raise MeshStartError(f"{exc}\nstatus: {self._status_or_error()}") from None
        generation = self._client.status()["generation"]
        remaining = max(0.1, deadline - time.monotonic())
        try:
            self._client.wait_generation(generation, timeout=remaining)
        except Exception as exc:
            raise MeshStartError(f"generation {generation} not in effect everywhere within {remaining:.1f} s: "
                                 f"{exc}\nstatus: {self._status_or_error()}") from None

    def _status_or_error(self) -> str:
        try:
            return json.dumps(self._client.status())
        except Exception as exc:
            return f"(status unavailable: {exc})"

    def _workload(self, name: str) -> Workload:
        for w in self.scenario.workloads():
            if w.name == name:
                return w
        raise KeyError(name)


def _pid(proc: ManagedProcess | None) -> int | None:
    return proc.pid if proc and proc.running() else None


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that already existed
