"""DockerMesh with the real images: start/stop leaves nothing, labels, ProcessControl as container
operations, a container killed behind its back, a SIGKILLed owner swept, images built from a clean tree.

These need a Docker daemon. Without one (no SDK, no daemon) they skip and say why, except under CI
(``CI`` set) or ``MESHCONFORM_REQUIRE_DOCKER=1``, where a missing daemon fails them: CI must run them.
With a daemon but no images, the first test builds them (scripts/docker/build-images.sh).
"""

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from meshproxy.runtime import docker as docker_runtime
from meshproxy.runtime.docker import LABEL_OWNER, LABEL_RUN, DockerMesh, labelled, sweep
from meshruntime.processes import wait_until

from runtime_helpers import echo_json, get_through, small_scenario

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def _docker_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("MESHCONFORM_REQUIRE_DOCKER") == "1"


@pytest.fixture(scope="module")
def docker_client():
    try:
        client = docker_runtime.docker_client(timeout=60)
    except docker_runtime.DockerUnavailable as exc:
        if _docker_required():
            pytest.fail(f"CI needs the Docker runtime's tests to run: {exc}")
        pytest.skip(f"Docker is not available here: {exc}")
    reason = docker_runtime.unavailable_reason()
    if reason and "images not built" in reason:
        offline = [] if _has_image(client, "python:3.11-slim") else ["--offline"]
        subprocess.run(["bash", str(ROOT / "scripts/docker/build-images.sh"), *offline], check=True, timeout=900)
        reason = docker_runtime.unavailable_reason()
    assert reason is None, reason
    yield client
    client.close()


def _has_image(client, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except Exception:
        return False


def _of_run(client, run_id: str):
    return labelled(client, run_id)


def test_start_stop_leaves_nothing_and_labels_everything(docker_client):
    mesh = DockerMesh(small_scenario())
    try:
        state = mesh.start()
        things = _of_run(docker_client, mesh.run_id)
        containers = [t for t in things if t.kind == "container"]
        # a control plane, and per workload a pod, an echo and a sidecar; one network
        assert len(containers) == 1 + 3 * 2, things
        assert [t.kind for t in things].count("network") == 1
        for c in docker_client.api.containers(filters={"label": f"{LABEL_RUN}={mesh.run_id}"}):
            assert c["Labels"][LABEL_OWNER] == mesh.owner
            assert c["State"] == "running"
            # reached only through 127.0.0.1
            assert all(p.get("IP") in (None, "127.0.0.1") for p in c["Ports"]), c["Ports"]
        for key in ("outbound", "inbound", "admin", "app", "echo_control"):
            assert state["workloads"]["client-v1-0"][key].startswith("127.0.0.1:")
        assert state["controlplane"]["url"].startswith("https://127.0.0.1:")
        # processes run as the images' user, never root
        for name in ("client-v1-0", "client-v1-0/echo", "controlplane"):
            top = docker_client.api.top(mesh.container_of(name), ps_args="-o pid,uid,comm")
            uids = {row[1] for row in top["Processes"]}
            assert "0" not in uids and uids, (name, top)
        status, headers, body = get_through(state["workloads"]["client-v1-0"]["outbound"], "backend")
        assert status == 200, body
        assert echo_json(body)["service"] == "backend"
        # a sweep leaves a live run alone
        assert not [t for t in sweep(client=docker_client) if t.run_id == mesh.run_id]
        assert len(_of_run(docker_client, mesh.run_id)) == len(things)
    finally:
        mesh.stop()
    assert _of_run(docker_client, mesh.run_id) == []
    assert not mesh.state_dir.exists()


def test_process_control_and_a_container_killed_behind_its_back(docker_client):
    mesh = DockerMesh(small_scenario())
    try:
        state = mesh.start()
        outbound = state["workloads"]["client-v1-0"]["outbound"]
        # behind the runtime's back: docker kill of the backend's sidecar container
        docker_client.api.kill(mesh.container_of("backend-v1-0"))
        wait_until(lambda: mesh.component_status("backend-v1-0") == "exited", timeout=10, what="seen as exited")
        assert not mesh.component_running("backend-v1-0")
        wait_until(lambda: mesh.state["workloads"]["backend-v1-0"]["pids"]["sidecar"] is None, timeout=5,
                   what="state shows no sidecar pid")
        status, _, _ = get_through(outbound, "backend")
        assert status == 503
        seconds = mesh.restart("backend-v1-0")
        assert mesh.component_running("backend-v1-0") and seconds < 30
        assert get_through(outbound, "backend")[0] == 200
        # pause freezes the echo (cgroup freezer); resume thaws it
        mesh.pause("backend-v1-0/echo")
        assert mesh.component_status("backend-v1-0/echo") == "paused"
        with pytest.raises(OSError):
            get_through(state["workloads"]["backend-v1-0"]["echo_control"], "x", "/healthz", timeout=1.0)
        mesh.resume("backend-v1-0/echo")
        assert get_through(outbound, "backend")[0] == 200
        # kill through ProcessControl: stays down until restart
        mesh.kill("backend-v1-0/echo")
        assert mesh.component_status("backend-v1-0/echo") == "exited"
        assert get_through(outbound, "backend")[0] == 503
        mesh.restart("backend-v1-0/echo")
        # the sidecar's pooled connection to the old echo may answer one request with a reset
        wait_until(lambda: get_through(outbound, "backend")[0] == 200, timeout=5, what="served again")
        # the control plane: the data plane keeps serving while it is down
        mesh.kill("controlplane")
        assert get_through(outbound, "backend")[0] == 200
        mesh.restart("controlplane")
        assert mesh.client.healthz()
    finally:
        mesh.stop()
    assert _of_run(docker_client, mesh.run_id) == []


def test_a_sigkilled_owner_leaves_what_sweep_removes(docker_client, tmp_path):
    ready = tmp_path / "ready"
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from runtime_helpers import small_scenario
        from meshproxy.runtime.docker import DockerMesh
        mesh = DockerMesh(small_scenario())
        mesh.start()
        open({str(ready)!r}, "w").write(mesh.run_id)
        time.sleep(120)  # the owner holds its mesh until the test kills it
    """)
    owner = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        wait_until(lambda: ready.exists() and ready.read_text(), timeout=120, what="the owner's mesh",
                   abort=lambda: None if owner.poll() is None else f"owner exited {owner.returncode}")
        run_id = ready.read_text()
    finally:
        owner.kill()
        owner.wait(timeout=10)
    left = _of_run(docker_client, run_id)
    assert left and {t.kind for t in left} == {"container", "network"}
    swept = sweep(run_id, client=docker_client)
    assert {(t.kind, t.name) for t in swept} == {(t.kind, t.name) for t in left}
    assert _of_run(docker_client, run_id) == []
    state_dirs = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob(f"meshconform-{run_id}-*")]
    assert state_dirs == []


def test_images_rebuild_from_a_clean_tree(docker_client, tmp_path):
    """The files git tracks (and new ones it does not ignore), copied to a fresh directory, build the images."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    tree = tmp_path / "clone"
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    tag = f"cleantree-{os.getpid()}"
    base = "python:3.11-slim" if _has_image(docker_client, "python:3.11-slim") else "meshconform/base:bookworm"
    if not _has_image(docker_client, base):  # no registry here: the offline base (~40 s, once)
        subprocess.run(["bash", str(ROOT / "scripts/docker/build-base.sh"), base], check=True, timeout=900)
    began = time.monotonic()
    try:
        run = subprocess.run(["bash", "scripts/docker/build-images.sh"], cwd=tree, capture_output=True, text=True,
                             env={**os.environ, "MESHCONFORM_IMAGE_TAG": tag, "BASE_IMAGE": base}, timeout=900)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        for image in docker_runtime.IMAGES:
            attrs = docker_client.api.inspect_image(f"meshconform/{image}:{tag}")
            assert attrs["Config"]["User"] == "10001:10001"
            assert attrs["Config"]["Healthcheck"]["Test"][0] == "CMD"
            assert attrs["Size"] < 400e6, f"{image}: {attrs['Size'] / 1e6:.0f} MB"
        print(f"images built from a clean tree in {time.monotonic() - began:.0f} s")
    finally:
        for image in docker_runtime.IMAGES:
            try:
                docker_client.api.remove_image(f"meshconform/{image}:{tag}")
            except Exception:
                pass
