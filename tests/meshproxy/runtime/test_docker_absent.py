"""Without Docker, ``--runtime=docker`` reports every check NOT_SUPPORTED with the reason (never passed,
never skipped); options and flags of the Docker runtime are checked before anything starts."""

import subprocess
import sys
from pathlib import Path

import pytest

from harness.adapters.reference import ReferenceAdapter
from harness.features import Feature
from meshproxy.runtime import docker as docker_runtime

ROOT = Path(__file__).resolve().parents[3]
NO_DAEMON = "unix:///nonexistent/meshconform-docker.sock"


def test_no_daemon_is_a_reason(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NO_DAEMON)
    reason = docker_runtime.unavailable_reason()
    assert reason and "no Docker daemon answers" in reason


def test_adapter_without_docker_supports_nothing_and_says_why(monkeypatch):
    monkeypatch.setattr(docker_runtime, "unavailable_reason", lambda: "no Docker daemon answers: test")
    adapter = ReferenceAdapter(options={"runtime": "docker"})
    assert adapter.supported_features() == frozenset()
    assert "Docker runtime cannot run here: no Docker daemon answers: test" in \
        adapter.unsupported_reason(Feature.MTLS_STRICT)
    assert Feature.MTLS_STRICT in ReferenceAdapter().supported_features()  # the local runtime is unaffected


def test_unknown_runtime_is_refused():
    with pytest.raises(ValueError, match="local or docker"):
        ReferenceAdapter(options={"runtime": "podman"})


@pytest.mark.slow
def test_suite_without_docker_is_not_supported(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/routing", "--mesh=reference", "--runtime=docker",
         "--run-test=MeshHeaderMatch", "-p", "no:cacheprovider", f"--report-output={tmp_path}", "-rN"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "DOCKER_HOST": NO_DAEMON})
    out = run.stdout + run.stderr
    assert "1 not_supported" in out, out[-3000:]
    assert "the Docker runtime cannot run here" in (tmp_path / "conformance-reference.yaml").read_text()


def test_bad_runtime_flag_is_a_usage_error(tmp_path):
    run = subprocess.run([sys.executable, "-m", "pytest", "suites/routing", "--runtime=vm", "-p", "no:cacheprovider",
                          f"--report-output={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 4, run.stdout[-2000:] + run.stderr[-2000:]
    assert "--runtime must be local or docker" in run.stdout + run.stderr
