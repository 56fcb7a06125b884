"""A third-party data plane as local processes: per workload one echo and one proxy (inbound + outbound).

The layout is the reference runtime's (docs/architecture.md, "Addresses"): one random ``127.A.B.0/24``
block per run, workload *i* on ``.(10+i)``, echo app 8080 / control 9000, proxy outbound 15001, inbound
15006, admin 15000. Processes are :class:`meshruntime.processes.ManagedProcess` children (own
session, ``PR_SET_PDEATHSIG``, run id in the environment), so none outlives the harness and
``meshconform sweep`` finds leftovers.

A :class:`ProxyFlavor` (HAProxy or nginx) renders a :class:`~.topology.ProxyView` into its config and
knows how to start, reload and check its proxy. "In effect" is observed: every proxy's admin port
answers ``{"generation": G}`` for the new generation, and every worker process that existed before the
reload has exited, so no request can still be served by the old configuration.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from meshscenario import Scenario, Workload
from harness.adapters.thirdparty.identity import WorkloadIdentities
from harness.adapters.thirdparty.topology import ADMIN_PORT, APP_PORT, INBOUND_PORT, OUTBOUND_PORT, ProxyView, \
    proxy_view, server_name
from meshruntime.layout import ECHO_CONTROL_PORT, plan, port_is_free, random_block
from meshruntime.control import ProcessControlled
from meshruntime.processes import ManagedProcess, alive, children_of, http_ok, stop_all, wait_ready

POLL_S = 0.02
RELOAD_TIMEOUT_S = 15.0  # old workers finish in-flight requests; the proxies' hard stop is 5 s


class ProxyFlavor(Protocol):
    name: str
    config_name: str  # file name of the config in the workload's work dir

    def render(self, view: ProxyView) -> str: ...

    def argv(self, binary: str, config: Path) -> list[str]: ...

    def reload(self, proc: ManagedProcess, binary: str, config: Path) -> None: ...

    def certificate_renewed(self, view: ProxyView) -> None:
        """Make the running proxy use the SVID just written to ``view.svid_path``."""
        ...

    def check(self, binary: str, config: Path) -> None:
        """Raise RuntimeError with the proxy's own message if ``config`` does not validate."""
        ...


def admin_generation(ip: str, timeout: float = 1.0) -> int | None:
    conn = http.client.HTTPConnection(ip, ADMIN_PORT, timeout=timeout)
    try:
        conn.request("GET", "/config")
        resp = conn.getresponse()
        body = resp.read()
        return int(json.loads(body)["generation"]) if resp.status == 200 else None
    except (OSError, ValueError, KeyError, http.client.HTTPException):
        return None
    finally:
        conn.close()


class ThirdPartyMesh(ProcessControlled):
    """Echoes and proxies of one scenario; :meth:`apply` re-renders and reloads every proxy."""

    def __init__(self, flavor: ProxyFlavor, binary: str, scenario: Scenario, *, run_id: str,
                 block: str | None = None, on_reload: Callable[[], None] = lambda: None):
        self.on_reload = on_reload  # e.g. close the harness's idle client connections to the old workers
        self.flavor = flavor
        self.binary = binary
        self.scenario = scenario
        self.run_id = run_id
        self.block = block or _free_block()
        self.layout = plan(scenario, self.block)
        self.state_dir = Path(tempfile.mkdtemp(prefix=f"meshconform-{flavor.name}-"))
        self.generation = 0
        self.overrides: dict[str, str] = {}  # workload -> address callers use instead of its inbound
        self.withdrawn: set[str] = set()  # workloads left out of their service's servers (EndpointMembership)
        self.identities = WorkloadIdentities(scenario.trust_domain, self.state_dir, scenario.cert_ttl,
                                             on_renewed=self._renewed)
        self.proxies: dict[str, ManagedProcess] = {}
        self.echoes: dict[str, ManagedProcess] = {}
        self._lock = threading.RLock()
        self.running = False

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        try:
            for w in self.scenario.workloads():
                work = self.work_dir(w.name)
                work.mkdir(parents=True, exist_ok=True)
                self.identities.issue(w.name, w.spiffe_id, work / "svid.pem", server_name(w.service, w.namespace))
                self._start_echo(w)
            self.generation = 1
            for w in self.scenario.workloads():
                self._start_proxy(w)
            for w in self.scenario.workloads():
                self._wait_echo(w, deadline)
                self._wait_proxy(w, deadline)
            self.identities.start()
            self.running = True
        except BaseException:
            self.stop()
            raise

    def can_apply(self, scenario: Scenario) -> bool:
        """Same workloads and trust domain: a reload suffices (else the processes must change)."""
        return (self.running and scenario.trust_domain == self.scenario.trust_domain
                and [w.name for w in scenario.workloads()] == [w.name for w in self.scenario.workloads()])

    def apply(self, scenario: Scenario | None = None) -> float:
        """Render, reload every proxy, and return the seconds until the new generation is in effect."""
        with self._lock:
            began = time.monotonic()
            if scenario is not None:
                self.scenario = scenario
                self.identities.set_ttl(scenario.cert_ttl)
            self.generation += 1
            old_workers: dict[str, set[int]] = {}
            for w in self.scenario.workloads():
                config = self._write_config(w)
                proc = self.proxies[w.name]
                old_workers[w.name] = children_of(proc.pid)
                self.flavor.reload(proc, self.binary, config)
            self.on_reload()
            deadline = began + RELOAD_TIMEOUT_S
            for w in self.scenario.workloads():
                ip = self.layout.workloads[w.name].ip
                olds = old_workers[w.name]
                wait_ready(self.proxies[w.name], f"{self.flavor.name} of {w.name} at generation {self.generation}",
                           deadline, lambda ip=ip, olds=olds: admin_generation(ip) == self.generation
                           and not any(alive(p) for p in olds), interval=POLL_S)
            return time.monotonic() - began

    def override(self, workload: str, address: str | None) -> float:
        """Point every caller of ``workload`` at ``address`` (None: back at its inbound); in effect."""
        with self._lock:
            if address is None:
                self.overrides.pop(workload, None)
            else:
                self.overrides[workload] = address
            return self.apply()

    def withdraw(self, workload: str, out: bool = True) -> float:
        """Leave ``workload`` out of every proxy's servers (``out=False``: put it back); in effect."""
        with self._lock:
            if out:
                self.withdrawn.add(workload)
            else:
                self.withdrawn.discard(workload)
            return self.apply()

    def stop(self) -> None:
        self.running = False
        self.identities.stop()
        stop_all([*self.proxies.values(), *self.echoes.values()], grace=3.0)
        self.proxies.clear()
        self.echoes.clear()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def _start_echo(self, w: Workload) -> None:
        ip = self.layout.workloads[w.name].ip
        self.echoes[w.name] = self._spawn(f"echo-{w.name}", [
            sys.executable, "-m", "fixtures.echo", "--listen", f"{ip}:{APP_PORT}",
            "--control", f"{ip}:{ECHO_CONTROL_PORT}", "--service", w.service, "--version", w.version,
            "--instance", str(w.instance)]).start()

    def _start_proxy(self, w: Workload) -> None:
        config = self._write_config(w)
        self.proxies[w.name] = self._spawn(f"{self.flavor.name}-{w.name}", self.flavor.argv(self.binary, config)).start()

    def _wait_echo(self, w: Workload, deadline: float) -> None:
        ip = self.layout.workloads[w.name].ip
        wait_ready(self.echoes[w.name], f"echo of {w.name}", deadline,
                   lambda: http_ok(f"{ip}:{ECHO_CONTROL_PORT}", "/healthz"), interval=POLL_S)

    def _wait_proxy(self, w: Workload, deadline: float) -> None:
        ip = self.layout.workloads[w.name].ip
        wait_ready(self.proxies[w.name], f"{self.flavor.name} of {w.name}", deadline,
                   lambda: admin_generation(ip) == self.generation, interval=POLL_S)

    # -- ProcessControl (meshruntime.control): "<workload>" is its proxy; there is no control plane ------
    def component_process(self, kind: str, workload: str | None) -> ManagedProcess:
        if kind == "controlplane":
            raise ValueError(f"{self.flavor.name} has no control plane: the harness renders its config")
        table = self.proxies if kind == "sidecar" else self.echoes
        if workload not in table:
            raise KeyError(f"no workload {workload!r} (have {', '.join(sorted(table))})")
        return table[workload]

    def start_component(self, kind: str, workload: str | None, deadline: float) -> None:
        with self._lock:
            w = next(x for x in self.scenario.workloads() if x.name == workload)
            if kind == "echo":
                self._start_echo(w)
                self._wait_echo(w, deadline)
            else:
                self._start_proxy(w)
                self._wait_proxy(w, deadline)

    # -- views ------------------------------------------------------------------------------------------
    def work_dir(self, workload: str) -> Path:
        return self.state_dir / workload

    def addresses(self) -> dict[str, str]:
        return {name: self.overrides.get(name, f"{a.ip}:{INBOUND_PORT}")
                for name, a in self.layout.workloads.items() if name not in self.withdrawn}

    def view(self, workload: Workload) -> ProxyView:
        return proxy_view(self.scenario, workload, ip=self.layout.workloads[workload.name].ip,
                          addresses=self.addresses(), generation=self.generation,
                          work_dir=self.work_dir(workload.name), bundle_path=self.identities.bundle_path)

    @property
    def state(self) -> dict[str, Any]:
        """The state-file shape of docs/architecture.md (no control plane)."""
        workloads = {}
        for w in self.scenario.workloads():
            ip = self.layout.workloads[w.name].ip
            workloads[w.name] = {
                "service": w.service, "namespace": w.namespace, "version": w.version, "instance": w.instance,
                "spiffe_id": w.spiffe_id, "ip": ip, "app": f"{ip}:{APP_PORT}", "inbound": f"{ip}:{INBOUND_PORT}",
                "outbound": f"{ip}:{OUTBOUND_PORT}", "admin": f"{ip}:{ADMIN_PORT}",
                "echo_control": f"{ip}:{ECHO_CONTROL_PORT}",
                "pids": {"sidecar": self.proxies[w.name].pid if w.name in self.proxies else None,
                         "echo": self.echoes[w.name].pid if w.name in self.echoes else None}}
        return {"run_id": self.run_id, "trust_domain": self.scenario.trust_domain, "state_dir": str(self.state_dir),
                "bundle": str(self.identities.bundle_path), "workloads": workloads}

    # -- helpers ---------------------------------------------------------------------------------------
    def _write_config(self, workload: Workload) -> Path:
        path = self.work_dir(workload.name) / self.flavor.config_name
        path.write_text(self.flavor.render(self.view(workload)))
        return path

    def _renewed(self, workload: str) -> None:
        with self._lock:
            if not self.running:
                return
            w = next(x for x in self.scenario.workloads() if x.name == workload)
            self.flavor.certificate_renewed(self.view(w))

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        return ManagedProcess(name, argv, run_id=self.run_id, log_path=self.state_dir / "logs" / f"{name}.log",
                              cwd=str(self.state_dir))


def _free_block() -> str:
    """A block whose first workload's outbound and app ports are free (there is no control plane)."""
    return random_block(free=lambda block: port_is_free(f"{block}.10", OUTBOUND_PORT)
                        and port_is_free(f"{block}.10", APP_PORT))


def find_binary(name: str, option: str | None) -> str:
    """The proxy binary: ``option`` (a path) if given, else ``name`` on PATH."""
    found = shutil.which(option or name)
    if not found:
        raise RuntimeError(f"{option or name!r} not found on PATH (give --mesh-option binary=/path/to/{name})")
    return found


def run_check(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
