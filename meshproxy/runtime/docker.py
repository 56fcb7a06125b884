"""The reference mesh in Docker containers: the sibling of :class:`meshproxy.runtime.local.LocalMesh`.

    mesh = DockerMesh(scenario)   # images: meshconform/{controlplane,sidecar,echo}:<version> (scripts/docker/)
    state = mesh.start()          # the same state mapping as LocalMesh's; addresses are 127.0.0.1:<published>
    mesh.kill("backend-v1-0")     # ProcessControl: docker kill / pause / unpause / restart of its container
    mesh.stop()                   # removes every container and the network; idempotent, also at exit

Per run: one bridge network of its own (a random /24 in 172.16.0.0/12 with a fixed plan like the loopback
layout's: the gateway on .1, the control plane on .2, workload *i* on .(10+i)); the control plane's
container; and per workload a *pod*: a pause container that owns the network namespace and publishes its
ports, with the echo and the sidecar joining that namespace (``network_mode: container:``), as a pod's
containers do. Killing or restarting the echo or the sidecar leaves the pod's address alone.

The harness reaches containers only through ports published on 127.0.0.1 (random host ports, read back
from Docker), never through a container's own address. The control plane's certificate names its
container address, so the harness's admin client checks the chain against the run's own CA (made for
this run, its key in this run's state directory) without the IP match. A proxy the harness puts on a
hop listens on the run network's gateway address (the host's side of the bridge, used only by this run's
containers; closing it refuses connections as on loopback) and reaches the real inbound through a relay
there to its port published on 127.0.0.1 (:meth:`reachable_from_mesh`).

Every container and network carries the labels ``io.meshconform.run-id`` and ``io.meshconform.owner``
(``<pid>/<start ticks>`` of this process): :func:`sweep` removes those whose owner is gone, and every
start sweeps first, so a run killed with SIGKILL leaves nothing once the next one (or ``meshconform
sweep``) ran. This runtime creates no volume (the state directory is a bind mount), and sweep removes
labelled volumes too, should a version create one.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import ipaddress
import json
import os
import random
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from meshproxy import defects as defects_module
from meshproxy.runtime.common import ControlPlaneMesh
from meshproxy.runtime.local import JOIN_TOKEN_TTL_S, MeshStartError
from meshruntime import layout as layout_module
from meshruntime.control import split_component
from meshruntime.processes import owner_alive, owner_token, wait_until
from meshscenario import Scenario, Workload

LABEL_RUN = "io.meshconform.run-id"
LABEL_OWNER = "io.meshconform.owner"
LABEL_COMPONENT = "io.meshconform.component"
LABEL_STATE_DIR = "io.meshconform.state-dir"
IMAGE_REPOSITORY = "meshconform"
IMAGES = ("controlplane", "sidecar", "echo")
POD_PORTS = (layout_module.APP_PORT, layout_module.ECHO_CONTROL_PORT, layout_module.ADMIN_PORT,
             layout_module.OUTBOUND_PORT, layout_module.INBOUND_PORT)
STATE_IN_CONTAINER = "/state"
CONTAINER_UID = 10001  # the images' user (docker/Dockerfile)
STOP_GRACE_S = 3
PID_CACHE_S = 1.0
PARALLEL_API_CALLS = 8


class DockerUnavailable(RuntimeError):
    """No Docker daemon answers, the SDK is missing, or the images are not built; the message says which."""


def image_tag(name: str) -> str:
    version = os.environ.get("MESHCONFORM_IMAGE_TAG")
    if not version:
        try:
            version = importlib.metadata.version("meshconform")
        except importlib.metadata.PackageNotFoundError:
            version = "latest"
    return f"{IMAGE_REPOSITORY}/{name}:{version}"


def docker_client(timeout: float = 30.0):
    """A Docker SDK client talking to the daemon (DOCKER_HOST or the local socket), or DockerUnavailable."""
    try:
        import docker
    except ImportError:
        raise DockerUnavailable("the Docker SDK is not installed (pip install 'meshconform[docker]')") from None
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:
        raise DockerUnavailable(f"no Docker daemon answers: {exc}") from None
    return client


def unavailable_reason() -> str | None:
    """Why the Docker runtime cannot run here (no SDK, no daemon, images not built), or None when it can."""
    try:
        client = docker_client(timeout=5)
    except DockerUnavailable as exc:
        return str(exc)
    try:
        missing = [image_tag(i) for i in IMAGES if not _image_present(client, image_tag(i))]
    finally:
        client.close()
    if missing:
        return f"images not built: {', '.join(missing)} (run scripts/docker/build-images.sh)"
    return None


def _image_present(client, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


@dataclass
class _Pod:
    workload: Workload
    ip: str                      # the pod's address on the run network (what the mesh uses)
    published: dict[int, int]    # container port -> host port on 127.0.0.1
    pod: str = ""                # container ids
    echo: str = ""
    sidecar: str = ""

    def host(self, port: int) -> str:
        return f"127.0.0.1:{self.published[port]}"


class DockerMesh(ControlPlaneMesh):
    """A whole reference mesh in containers; same surface as LocalMesh (start, apply, state, stop, and
    ProcessControl by component name: "controlplane", "<workload>", "<workload>/echo")."""

    def __init__(self, scenario: Scenario, *, run_id: str | None = None, defects: Mapping[str, Any] | None = None,
                 state_dir: str | Path | None = None, log_dir: str | Path | None = None):
        self.scenario = scenario
        self.run_id = run_id or f"mc-{uuid.uuid4().hex[:12]}"
        self._owns_state_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else None
        self.log_dir = Path(log_dir) if log_dir else None
        self.defects = defects_module.Defects.of(defects)
        self._defects_env = defects_module.encode(self.defects) if self.defects else None
        self.admin_token = secrets.token_urlsafe(32)
        self.owner = owner_token()
        self._docker = None
        self._network_id: str | None = None
        self.subnet: ipaddress.IPv4Network | None = None
        self._controlplane: str | None = None
        self._cp_published: int | None = None
        self._pods: dict[str, _Pod] = {}
        self._client = None
        self._relays: dict[str, Any] = {}
        self._pid_cache: dict[str, tuple[float, int | None]] = {}
        self._lock = threading.RLock()
        self._started = False

    # -- addresses ----------------------------------------------------------------------------------
    @property
    def gateway_ip(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def controlplane_ip(self) -> str:
        return str(self.subnet.network_address + 2)

    @property
    def controlplane_url(self) -> str:
        """What the harness uses: the control plane's port published on 127.0.0.1."""
        return f"https://127.0.0.1:{self._cp_published}"

    @property
    def mesh_controlplane_url(self) -> str:
        """What the sidecars use: the control plane's address on the run network."""
        return f"https://{self.controlplane_ip}:{layout_module.CONTROLPLANE_PORT}"

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        with self._lock:
            if self._started:
                raise RuntimeError("this DockerMesh is already started")
            deadline = time.monotonic() + timeout
            self._docker = docker_client()
            sweep(client=self._docker)  # what dead runs left (owners gone); live runs are left alone
            missing = [image_tag(i) for i in IMAGES if not _image_present(self._docker, image_tag(i))]
            if missing:
                raise DockerUnavailable(f"images not built: {', '.join(missing)} (scripts/docker/build-images.sh)")
            if self.state_dir is None:
                self.state_dir = Path(tempfile.mkdtemp(prefix=f"meshconform-{self.run_id}-"))
            self.state_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.state_dir, 0o700)
            self._own(self.state_dir)
            self._started = True
            atexit.register(self.stop)
            try:
                self._create_network()
                self._start_controlplane(deadline)
                self._client.put_scenario(self.scenario)
                # each workload's pod, echo and sidecar in parallel: Docker API calls are what this waits on
                with ThreadPoolExecutor(PARALLEL_API_CALLS, thread_name_prefix="docker-start") as pool:
                    list(pool.map(lambda iw: self._start_workload(*iw), enumerate(self.scenario.workloads())))
                for workload in self.scenario.workloads():
                    self._wait_echo_ready(workload.name, deadline)
                    self._wait_sidecar_ready(workload.name, deadline)
                self._wait_in_effect(deadline)
            except BaseException:
                self.stop()
                raise
            return self.state

    def stop(self) -> None:
        """Remove every container of this run (sidecars first, so they can deregister) and its network."""
        with self._lock:
            for relay in self._relays.values():
                with contextlib.suppress(Exception):
                    relay.__exit__(None, None, None)
            self._relays.clear()
            if self._docker is not None:
                if self.log_dir is not None:
                    self._save_logs()
                # the whole run goes at once (SIGKILL): a sidecar's deregistration would only reach a
                # control plane that is going too
                _remove_run(self._docker, self.run_id)
                self._docker.close()
            self._docker = None
            self._pods.clear()
            self._controlplane = None
            self._network_id = None
            if self._client is not None and hasattr(self._client, "close"):
                self._client.close()
            self._client = None
            if self._owns_state_dir and self.state_dir and self.state_dir.exists():
                shutil.rmtree(self.state_dir, ignore_errors=True)
            self._started = False
            atexit.unregister(self.stop)

    # -- ProcessControl: containers --------------------------------------------------------------------
    def container_of(self, component: str) -> str:
        """The id of the container behind a component name."""
        kind, workload = split_component(component)
        if kind == "controlplane":
            if self._controlplane is None:
                raise RuntimeError("the mesh is not started")
            return self._controlplane
        pod = self._pods.get(workload)
        if pod is None:
            raise KeyError(f"no workload {workload!r} (have {', '.join(sorted(self._pods))})")
        return pod.sidecar if kind == "sidecar" else pod.echo

    def component_status(self, component: str) -> str:
        """Docker's word for the component's container: "running", "paused", "exited", or "removed"."""
        import docker.errors

        try:
            return self._docker.api.inspect_container(self.container_of(component))["State"]["Status"]
        except docker.errors.NotFound:
            return "removed"

    def component_running(self, component: str) -> bool:
        return self.component_status(component) == "running"

    def kill(self, component: str) -> None:
        """SIGKILL the component's container (``docker kill``); it stays down until ``restart``."""
        import docker.errors

        cid = self.container_of(component)
        with contextlib.suppress(docker.errors.APIError):  # already dead
            self._docker.api.kill(cid)
        wait_until(lambda: self._status(cid) not in ("running", "paused"), timeout=10,
                   what=f"container of {component} to die")
        self._pid_cache.clear()

    def pause(self, component: str) -> None:
        """Freeze every process of the container (``docker pause``: the cgroup freezer, like SIGSTOP)."""
        self._pid_cache.clear()
        self._docker.api.pause(self.container_of(component))

    def resume(self, component: str) -> None:
        self._pid_cache.clear()
        self._docker.api.unpause(self.container_of(component))

    def restart(self, component: str, timeout: float = 30.0) -> float:
        """Stop the container (gracefully if it runs) and start it again; seconds until it is ready."""
        began = time.monotonic()
        self.stop_component(component)
        self.start_component(*split_component(component), began + timeout)
        return time.monotonic() - began

    def stop_component(self, component: str, grace: float = STOP_GRACE_S) -> None:
        self._pid_cache.clear()
        cid = self.container_of(component)
        if self._status(cid) == "paused":
            self._docker.api.unpause(cid)
        self._stop_containers([cid], grace=grace)
        self._pid_cache.clear()

    def component_process(self, kind: str, workload: str | None) -> "_ContainerHandle":
        """What LocalMesh's callers use (``.stop()``, ``.running()``) for one component's container."""
        component = "controlplane" if kind == "controlplane" else f"{workload}/{kind}"
        self.container_of(component)
        return _ContainerHandle(self, component)

    def start_component(self, kind: str, workload: str | None, deadline: float) -> None:
        self._pid_cache.clear()
        with self._lock:
            if kind == "controlplane":
                self._docker.api.start(self._controlplane)
                self._cp_published = self._published(self._controlplane, layout_module.CONTROLPLANE_PORT)
                self._client.url = self.controlplane_url
                self._wait_container(self._controlplane, "control plane", deadline, self._client_healthy)
                self._wait_in_effect(deadline)
            elif kind == "echo":
                self._docker.api.start(self._pods[workload].echo)
                self._wait_echo_ready(workload, deadline)
            else:
                self._write_bootstrap(self._pods[workload])  # a fresh one-time join token
                self._docker.api.start(self._pods[workload].sidecar)
                self._wait_sidecar_ready(workload, deadline)
                self._wait_in_effect(deadline)

    # -- reaching the harness from the mesh -------------------------------------------------------------
    def reachable_from_mesh(self, address: str) -> str:
        """An address on the run network's gateway that relays to ``address`` on 127.0.0.1 (a hop's proxy
        uses it as its upstream and listens on its IP). Relays live until release_relay() or stop()."""
        from harness.faults.proxy import FaultProxy  # a toxic-free FaultProxy is a plain TCP relay

        ip, _, port = address.rpartition(":")
        relay = FaultProxy.running_in_thread((self.gateway_ip, 0), (ip, int(port)))
        proxy = relay.__enter__()
        host, bound = proxy.address
        self._relays[f"{host}:{bound}"] = relay
        return f"{host}:{bound}"

    def release_relay(self, address: str) -> None:
        """Stop the relay of :meth:`reachable_from_mesh` (once nothing is pointed at it any more)."""
        relay = self._relays.pop(address, None)
        if relay is not None:
            relay.__exit__(None, None, None)

    def mesh_inbound(self, workload: str) -> str:
        """The workload's inbound address as the mesh sees it (its pod's address on the run network)."""
        return f"{self._pods[workload].ip}:{layout_module.INBOUND_PORT}"

    # -- state ----------------------------------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        if self._cp_published is None:
            raise RuntimeError("the mesh is not started")
        workloads = {}
        for w in self.scenario.workloads():
            pod = self._pods[w.name]
            workloads[w.name] = {
                "service": w.service, "namespace": w.namespace, "version": w.version, "instance": w.instance,
                "spiffe_id": w.spiffe_id, "ip": "127.0.0.1",
                "app": pod.host(layout_module.APP_PORT), "inbound": pod.host(layout_module.INBOUND_PORT),
                "outbound": pod.host(layout_module.OUTBOUND_PORT), "admin": pod.host(layout_module.ADMIN_PORT),
                "echo_control": pod.host(layout_module.ECHO_CONTROL_PORT),
                "pids": {"sidecar": self._pid(pod.sidecar), "echo": self._pid(pod.echo)},
                "containers": {"pod": pod.pod, "sidecar": pod.sidecar, "echo": pod.echo},
                "mesh_address": pod.ip,
            }
        return {
            "run_id": self.run_id, "owner_pid": os.getpid(), "runtime": "docker",
            "trust_domain": self.scenario.trust_domain,
            "state_dir": str(self.state_dir), "bundle": str(self.bundle_path),
            "network": {"id": self._network_id, "subnet": str(self.subnet)},
            "controlplane": {"url": self.controlplane_url, "admin_token": self.admin_token,
                             "pid": self._pid(self._controlplane), "container": self._controlplane,
                             "mesh_url": self.mesh_controlplane_url},
            "workloads": workloads,
        }

    # -- creating things --------------------------------------------------------------------------------
    def _labels(self, component: str) -> dict[str, str]:
        labels = {LABEL_RUN: self.run_id, LABEL_OWNER: self.owner, LABEL_COMPONENT: component}
        if self._owns_state_dir and self.state_dir is not None:
            labels[LABEL_STATE_DIR] = str(self.state_dir)
        return labels

    def _user(self) -> str:
        # never root in a container: the images' user when we are root, else our own uid (bind mounts)
        return f"{CONTAINER_UID}:{CONTAINER_UID}" if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"

    def _own(self, path: Path) -> None:
        if os.getuid() == 0:
            os.chown(path, CONTAINER_UID, CONTAINER_UID)

    def _create_network(self) -> None:
        import docker.errors
        import docker.types

        rng = random.SystemRandom()
        last: Exception | None = None
        for _ in range(30):
            subnet = ipaddress.ip_network(f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.0/24")
            if subnet.subnet_of(ipaddress.ip_network("172.17.0.0/16")):
                continue  # docker0's
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
                subnet=str(subnet), gateway=str(subnet.network_address + 1))])
            try:
                net = self._docker.api.create_network(self.run_id, driver="bridge", ipam=ipam,
                                                      labels=self._labels("network"), check_duplicate=True)
            except docker.errors.APIError as exc:  # overlaps another network: draw again
                last = exc
                continue
            self._network_id, self.subnet = net["Id"], subnet
            return
        raise MeshStartError(f"no free /24 in 172.16.0.0/12 for the run network: {last}")

    def _create(self, component: str, image: str, *, entrypoint: list[str], command: list[str] | None = None,
                ip: str | None = None, ports: tuple[int, ...] = (), network_mode: str | None = None,
                environment: Mapping[str, str] | None = None, healthcheck: dict | None = None,
                fixed_ports: Mapping[int, int] | None = None) -> str:
        api = self._docker.api
        host_config = api.create_host_config(
            binds={str(self.state_dir): {"bind": STATE_IN_CONTAINER, "mode": "rw"}},
            port_bindings={p: ("127.0.0.1", (fixed_ports or {}).get(p)) if (fixed_ports or {}).get(p)
                           else ("127.0.0.1",) for p in ports} or None,
            network_mode=network_mode or self.run_id, init=True,
            cap_drop=["ALL"], security_opt=["no-new-privileges"])
        networking = None
        if network_mode is None:
            networking = api.create_networking_config({self.run_id: api.create_endpoint_config(ipv4_address=ip)})
        env = dict(environment or {})
        if self._defects_env:
            env[defects_module.ENV] = self._defects_env
        container = api.create_container(
            image_tag(image), entrypoint=entrypoint, command=command, name=f"{self.run_id}-{component}",
            user=self._user(), labels=self._labels(component), environment=env, host_config=host_config,
            networking_config=networking, ports=list(ports) or None,
            # the harness polls readiness itself; the images' HEALTHCHECKs are for compose/
            healthcheck=healthcheck or {"test": ["NONE"]},
            stop_signal="SIGTERM", hostname=None if network_mode else component.replace("/", "-")[:63])
        return container["Id"]

    def _start_controlplane(self, deadline: float) -> None:
        from meshproxy.cpclient import ControlPlaneClient

        token_file = self.state_dir / "admin-token"
        _write_private(token_file, self.admin_token)
        self._own(token_file)
        cid = self._controlplane = self._create(
            "controlplane", "controlplane", ip=self.controlplane_ip, ports=(layout_module.CONTROLPLANE_PORT,),
            # a host port of our choosing, so that a restarted control plane is where the harness looks
            # (Docker draws a new random one at every start otherwise)
            fixed_ports={layout_module.CONTROLPLANE_PORT: _free_loopback_port()},
            entrypoint=["python", "-m", "meshproxy.controlplane"],
            command=["--listen", f"{self.controlplane_ip}:{layout_module.CONTROLPLANE_PORT}",
                     "--state-dir", STATE_IN_CONTAINER, "--trust-domain", self.scenario.trust_domain,
                     "--admin-token-file", f"{STATE_IN_CONTAINER}/admin-token"])
        self._docker.api.start(cid)
        self._cp_published = self._published(cid, layout_module.CONTROLPLANE_PORT)
        self._wait_container(cid, "control plane (its bundle)", deadline, self.bundle_path.exists)
        if self._client is None:
            self._client = ControlPlaneClient(self.controlplane_url, self.bundle_path, admin_token=self.admin_token)
            # the serving certificate names the container's address, not 127.0.0.1: the chain is still
            # checked against this run's own CA, the name is not
            self._client._ctx.check_hostname = False
        self._wait_container(cid, "control plane (healthz)", deadline, self._client_healthy)

    def _start_workload(self, index: int, workload: Workload) -> None:
        self._start_pod(index, workload)
        self._start_echo(workload)
        self._start_sidecar(workload)

    def _start_pod(self, index: int, workload: Workload) -> None:
        ip = str(self.subnet.network_address + layout_module.FIRST_WORKLOAD_HOST + index)
        pod = _Pod(workload, ip, {})
        pod.pod = self._create(f"{workload.name}-pod", "sidecar", ip=ip, ports=POD_PORTS,
                               entrypoint=["sleep", "infinity"])
        self._docker.api.start(pod.pod)
        pod.published = {p: self._published(pod.pod, p) for p in POD_PORTS}
        self._pods[workload.name] = pod

    def _start_echo(self, workload: Workload) -> None:
        pod = self._pods[workload.name]
        pod.echo = self._create(
            f"{workload.name}-echo", "echo", network_mode=f"container:{pod.pod}",
            entrypoint=["python", "-m", "fixtures.echo"],
            command=["--listen", f"0.0.0.0:{layout_module.APP_PORT}",
                     "--control", f"0.0.0.0:{layout_module.ECHO_CONTROL_PORT}",
                     "--service", workload.service, "--version", workload.version,
                     "--instance", str(workload.instance)])
        self._docker.api.start(pod.echo)

    def _write_bootstrap(self, pod: _Pod) -> str:
        w = pod.workload
        work = self._work_dir(w.name)
        work.mkdir(parents=True, exist_ok=True)
        os.chmod(work, 0o700)
        self._own(work)
        inner = f"{STATE_IN_CONTAINER}/workloads/{w.name}"
        bootstrap = {
            "workload": w.name, "service": w.service, "namespace": w.namespace, "version": w.version,
            "instance": w.instance, "spiffe_id": w.spiffe_id, "trust_domain": self.scenario.trust_domain,
            "ip": pod.ip, "inbound_port": layout_module.INBOUND_PORT, "outbound_port": layout_module.OUTBOUND_PORT,
            "admin_port": layout_module.ADMIN_PORT, "app": f"127.0.0.1:{layout_module.APP_PORT}",
            "controlplane": self.mesh_controlplane_url, "bundle": f"{STATE_IN_CONTAINER}/bundle.pem",
            "work_dir": inner,
        }
        from meshproxy.cpclient import ControlPlaneUnavailable

        try:
            bootstrap["join_token"] = self._client.create_join_token(w.name, w.spiffe_id, ttl_s=JOIN_TOKEN_TTL_S)
        except ControlPlaneUnavailable:
            if not (work / "svid.pem").exists():
                raise
            # the control plane is down: the sidecar proves itself with the SVID its previous life left
        path = work / "bootstrap.json"
        _write_private(path, json.dumps(bootstrap, indent=2))
        self._own(path)
        return f"{inner}/bootstrap.json"

    def _start_sidecar(self, workload: Workload) -> None:
        pod = self._pods[workload.name]
        inner = self._write_bootstrap(pod)
        pod.sidecar = self._create(f"{workload.name}-sidecar", "sidecar", network_mode=f"container:{pod.pod}",
                                   entrypoint=["python", "-m", "meshproxy.sidecar", "--bootstrap", inner])
        self._docker.api.start(pod.sidecar)

    # -- waiting ----------------------------------------------------------------------------------------------
    def _status(self, cid: str) -> str:
        import docker.errors

        try:
            return self._docker.api.inspect_container(cid)["State"]["Status"]
        except docker.errors.NotFound:
            return "removed"

    def _pid(self, cid: str | None) -> int | None:
        """The pid (on this host) of the mesh process in a running container, else None. ``state`` is read
        on every request the adapter sends, so this is cached for PID_CACHE_S (our own kill, pause, stop
        and start forget it at once; one by someone else shows within that time)."""
        if not cid or self._docker is None:
            return None
        cached = self._pid_cache.get(cid)
        if cached is not None and time.monotonic() - cached[0] < PID_CACHE_S:
            return cached[1]
        pid = self._read_pid(cid)
        self._pid_cache[cid] = (time.monotonic(), pid)
        return pid

    def _read_pid(self, cid: str) -> int | None:
        try:
            state = self._docker.api.inspect_container(cid)["State"]
        except Exception:
            return None
        if state["Status"] != "running" or not state["Pid"]:
            return None
        # the container's init (docker-init) is its pid 1; the mesh process is that init's child
        import psutil

        try:
            children = psutil.Process(state["Pid"]).children()
        except psutil.Error:
            children = []
        return children[0].pid if children else state["Pid"]

    def _published(self, cid: str, port: int) -> int:
        ports = self._docker.api.inspect_container(cid)["NetworkSettings"]["Ports"]
        bindings = ports.get(f"{port}/tcp") or []
        for b in bindings:
            if b.get("HostIp") == "127.0.0.1":
                return int(b["HostPort"])
        raise MeshStartError(f"container {cid[:12]} has no port {port} published on 127.0.0.1: {bindings}")

    def _logs_of(self, cid: str, lines: int = 30) -> str:
        try:
            return self._docker.api.logs(cid, tail=lines).decode(errors="replace") or "(empty log)"
        except Exception as exc:
            return f"(no log: {exc})"

    def _wait_container(self, cid: str, what: str, deadline: float, ready) -> None:
        def exited() -> str | None:
            status = self._status(cid)
            return None if status in ("running", "created") else f"container is {status}"
        try:
            wait_until(ready, timeout=max(0.0, deadline - time.monotonic()), what=what, abort=exited)
        except TimeoutError as exc:
            raise MeshStartError(f"{exc}\n--- last lines of container {cid[:12]} ---\n{self._logs_of(cid)}") from None

    def _wait_echo_ready(self, name: str, deadline: float) -> None:
        from meshruntime.processes import http_ok

        pod = self._pods[name]
        self._wait_container(pod.echo, f"echo of {name}", deadline,
                             lambda: http_ok(pod.host(layout_module.ECHO_CONTROL_PORT), "/healthz"))

    def _wait_sidecar_ready(self, name: str, deadline: float) -> None:
        from meshruntime.processes import http_ok

        pod = self._pods[name]
        self._wait_container(pod.sidecar, f"sidecar of {name} (admin /ready)", deadline,
                             lambda: http_ok(pod.host(layout_module.ADMIN_PORT), "/ready"))

    def _wait_in_effect(self, deadline: float) -> None:
        expected = {w.name for w in self.scenario.workloads()}
        try:
            wait_until(lambda: expected <= set(self._client.status().get("workloads", {})),
                       timeout=max(0.0, deadline - time.monotonic()), what="every workload registered")
        except TimeoutError as exc:
            raise MeshStartError(str(exc)) from None
        generation = self._client.status()["generation"]
        try:
            self._client.wait_generation(generation, timeout=max(0.1, deadline - time.monotonic()))
        except Exception as exc:
            raise MeshStartError(f"generation {generation} not in effect everywhere: {exc}") from None

    def _stop_containers(self, ids: list[str], grace: float) -> None:
        threads = [threading.Thread(target=_quiet_stop, args=(self._docker, cid, grace)) for cid in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=grace + 10)

    def _save_logs(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for c in self._docker.api.containers(all=True, filters={"label": f"{LABEL_RUN}={self.run_id}"}):
            name = c["Names"][0].lstrip("/").removeprefix(f"{self.run_id}-")
            (self.log_dir / f"{name}.log").write_text(self._logs_of(c["Id"], lines=10_000))


class _ContainerHandle:
    """``component_process`` for a container: ``stop()`` (graceful: the sidecar deregisters) and ``running()``."""

    def __init__(self, mesh: DockerMesh, component: str):
        self.mesh, self.component = mesh, component

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        self.mesh.stop_component(self.component, grace)

    def running(self) -> bool:
        return self.mesh.component_running(self.component)

    @property
    def pid(self) -> int | None:
        return self.mesh._pid(self.mesh.container_of(self.component))


def _free_loopback_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _quiet_stop(client, cid: str, grace: float) -> None:
    with contextlib.suppress(Exception):
        client.api.stop(cid, timeout=int(grace))


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)


# -- sweep ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DockerLeftover:
    kind: str      # "container" | "network" | "volume"
    name: str
    run_id: str
    owner: str | None


def labelled(client, run_id: str | None = None) -> list[DockerLeftover]:
    """Every container, network and volume carrying a meshconform run id (that run's only, if given)."""
    label = f"{LABEL_RUN}={run_id}" if run_id else LABEL_RUN
    found = []
    for c in client.api.containers(all=True, filters={"label": label}):
        found.append(DockerLeftover("container", c["Names"][0].lstrip("/"), c["Labels"][LABEL_RUN],
                                    c["Labels"].get(LABEL_OWNER)))
    for n in client.api.networks(filters={"label": label}):
        labels = n.get("Labels") or {}
        found.append(DockerLeftover("network", n["Name"], labels[LABEL_RUN], labels.get(LABEL_OWNER)))
    for v in (client.api.volumes(filters={"label": label}).get("Volumes") or []):
        labels = v.get("Labels") or {}
        found.append(DockerLeftover("volume", v["Name"], labels[LABEL_RUN], labels.get(LABEL_OWNER)))
    return found


def sweep(run_id: str | None = None, *, client=None, include_live: bool = False) -> list[DockerLeftover]:
    """Remove the containers, networks and volumes of runs whose owner is gone (of ``run_id`` only, when
    given; also live runs' with ``include_live``), and their temporary state directories. Returns them."""
    own = client is None
    client = client or docker_client()
    try:
        leftovers = [x for x in labelled(client, run_id)
                     if include_live or x.owner is None or not owner_alive(x.owner)]
        for run in sorted({x.run_id for x in leftovers}):
            _remove_run(client, run)
        return leftovers
    finally:
        if own:
            client.close()


def _remove_run(client, run_id: str) -> None:
    import docker.errors

    label = {"label": f"{LABEL_RUN}={run_id}"}
    state_dirs = set()
    containers = client.api.containers(all=True, filters=label)

    def remove(c: dict) -> None:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.api.remove_container(c["Id"], force=True, v=True)

    # sidecars and echoes leave their pod's namespace before the pod goes
    pods = [c for c in containers if c["Labels"].get(LABEL_COMPONENT, "").endswith("-pod")]
    with ThreadPoolExecutor(PARALLEL_API_CALLS, thread_name_prefix="docker-remove") as pool:
        list(pool.map(remove, [c for c in containers if c not in pods]))
        list(pool.map(remove, pods))
    state_dirs.update(c["Labels"].get(LABEL_STATE_DIR) for c in containers)
    for n in client.api.networks(filters=label):
        state_dirs.add((n.get("Labels") or {}).get(LABEL_STATE_DIR))
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_network(n["Id"])
    for v in (client.api.volumes(filters=label).get("Volumes") or []):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_volume(v["Name"], force=True)
    tmp = Path(tempfile.gettempdir()).resolve()
    for d in filter(None, state_dirs):
        path = Path(d)
        # only a temporary state directory this runtime made (never a path a label could point anywhere)
        if path.parent.resolve() == tmp and path.name.startswith(f"meshconform-{run_id}-"):
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def running(scenario: Scenario, **kwargs: Any) -> Iterator[DockerMesh]:
    mesh = DockerMesh(scenario, **kwargs)
    mesh.start()
    try:
        yield mesh
    finally:
        mesh.stop()
