"""``meshconform load``: real Locust in its own processes, through a real reference mesh, short runs.

One reference mesh (``meshconform up`` with this folder's scenario) serves the runs that use ``--state``;
the first run starts its own mesh through the adapter registry (``--mesh=reference``). Locust processes
are recognised by the ``MESHCONFORM_OWNER`` tag naming the CLI process (meshruntime/processes.py).
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.load import hdr
from meshruntime.processes import alive, wait_until
from meshruntime.sweep import tagged_processes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = Path(__file__).with_name("scenario.yaml")
RUN_DEADLINE_S = 120
UP_DEADLINE_S = 90


def _owned_by(pid: int) -> list:
    return [p for p in tagged_processes() if (p.owner or "").split("/")[0] == str(pid)]


def _locust_of(pid: int) -> list:
    return [p for p in _owned_by(pid) if " -m locust " in f" {p.cmdline} "]


def _load(*args: str) -> tuple[int, subprocess.CompletedProcess]:
    """Run ``meshconform load ARGS`` to its end; returns (its pid, the finished process)."""
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "load", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=RUN_DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.pid, subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _csv_total(out: Path) -> tuple[int, int]:
    rows = {row["Name"]: row for row in csv.DictReader((out / "locust_stats.csv").open())}
    return int(rows["Aggregated"]["Request Count"]), int(rows["Aggregated"]["Failure Count"])


@pytest.fixture(scope="module")
def mesh_state(tmp_path_factory):
    """A reference mesh running the mix scenario, as `meshconform up --state FILE`."""
    state = tmp_path_factory.mktemp("mesh") / "state.json"
    up = subprocess.Popen([sys.executable, "-m", "harness.cli", "up", "--scenario", str(SCENARIO),
                           "--state", str(state)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    try:
        wait_until(state.exists, timeout=UP_DEADLINE_S, what="meshconform up wrote its state",
                   abort=lambda: None if up.poll() is None else f"up exited: {up.stderr.read()[-2000:]}")
        yield state, up
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()


def test_a_run_writes_locust_reports_and_exact_percentiles_of_every_request(tmp_path):
    out = tmp_path / "out"
    pid, run = _load("--mesh=reference", "--users", "2", "--spawn-rate", "2", "--run-time", "3s", "--out", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "locust.html",
                 "percentiles-us.json", "smp.yaml", "meshconform-load.html"):
        assert (out / name).stat().st_size > 0, name
    doc = json.loads((out / "percentiles-us.json").read_text())
    histogram = hdr.decode(doc["histogram"])
    requests, failures = _csv_total(out)
    assert doc["count"] > 0
    assert doc["count"] == histogram.get_total_count() == requests == doc["locust"]["requests"]
    assert failures == doc["failures"] == 0
    p = doc["percentiles_us"]
    assert 0 < p["min"] <= p["p50"] <= p["p90"] <= p["p99"] <= p["p99_9"] <= p["max"] < 10_000_000
    assert set(doc["split"]["backend"]["observed"]) == {"v1", "v2"}
    smp = yaml.safe_load((out / "smp.yaml").read_text())["results"][0]
    assert smp["mesh"]["type"] == "reference"
    assert smp["latencies_ms"]["p99"] == pytest.approx(p["p99"] / 1000, rel=1e-3)
    assert smp["actual_qps"] > 0
    assert "locust" in (out / "locust.html").read_text().lower()
    page = (out / "meshconform-load.html").read_text()
    assert f"<td>{doc['count']:,}</td>" in page and "data:image/png;base64," in page
    assert _owned_by(pid) == []  # neither Locust nor the mesh it started outlives the command


def test_two_workers_histograms_merge_to_locusts_own_count(tmp_path, mesh_state):
    state, _ = mesh_state
    out = tmp_path / "out"
    pid, run = _load("--state", str(state), "--users", "4", "--spawn-rate", "4", "--run-time", "4s",
                     "--workers", "2", "--out", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads((out / "percentiles-us.json").read_text())
    workers = doc["workers"]
    assert len(workers) == 2 and all(w["count"] > 0 for w in workers.values()), workers
    requests, failures = _csv_total(out)
    assert doc["count"] == sum(w["count"] for w in workers.values()) == requests == doc["locust"]["requests"]
    assert hdr.decode(doc["histogram"]).get_total_count() == doc["count"]
    assert failures == doc["failures"] == 0
    assert (out / "locust-worker-1.log").exists() and (out / "locust-worker-2.log").exists()
    assert _locust_of(pid) == []


def test_route_mix_and_retries_under_injected_faults(tmp_path, mesh_state):
    state, _ = mesh_state
    out = tmp_path / "out"
    _, run = _load("--state", str(state), "--locustfile", "routes,retries", "--users", "4", "--spawn-rate", "4",
                   "--run-time", "4s", "--out", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads((out / "percentiles-us.json").read_text())
    counts = doc["counts"]
    assert doc["failures"] == 0 and doc["count"] > 0
    assert counts["flaky/retried faulted"] > 0
    assert counts["flaky/retried recovered"] == counts["flaky/retried faulted"]  # no 503 reached the caller
    assert counts.get("backend/pinned-v2 → v2", 0) > 0 and "backend/pinned-v2 → v1" not in counts


@pytest.mark.parametrize("sig, workers", [(signal.SIGINT, "2"), (signal.SIGTERM, "0")], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_leaves_no_locust_process(tmp_path, mesh_state, sig, workers):
    state, up = mesh_state
    out = tmp_path / "out"
    status = out / "status.json"
    cli = subprocess.Popen([sys.executable, "-m", "harness.cli", "load", "--state", str(state), "--users", "2",
                            "--run-time", "60s", "--workers", workers, "--out", str(out)],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    expected = 1 + int(workers)
    try:
        def load_flows() -> bool:
            try:
                return json.loads(status.read_text())["requests"] > 0 and len(_locust_of(cli.pid)) == expected
            except (OSError, ValueError):
                return False
        wait_until(load_flows, timeout=60, what="requests flowing",
                   abort=lambda: None if cli.poll() is None else f"load exited: {cli.stderr.read()[-2000:]}")
        began = time.monotonic()
        cli.send_signal(sig)
        assert cli.wait(timeout=30) == 130
        stopped_s = time.monotonic() - began
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert _locust_of(cli.pid) == [], f"left after {stopped_s:.1f} s"
    assert stopped_s < 15
    assert up.poll() is None and alive(up.pid)  # a mesh given by --state is not the run's to stop


@pytest.mark.parametrize("argv, flag", [
    (["--users", "0"], "--users"),
    (["--mesh", "no-such-mesh"], "--mesh"),
    (["--run-time", "5x"], "--run-time"),
    (["--locustfile", "/nonexistent/locustfile.py"], "--locustfile"),
    (["--spawn-rate", "-1"], "--spawn-rate"),
    (["--workers", "2", "--local-workers", "3"], "--local-workers"),
    (["--locustfile", "retries"], "--locustfile retries"),  # the default scenario declares no retries
])
def test_a_bad_flag_exits_2_with_one_line_naming_it(argv, flag, capsys):
    from harness.cli import main

    assert main(["load", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err, err
    assert "locust" not in sys.modules  # nothing imported Locust into this interpreter


def test_the_command_itself_exits_2_on_a_bad_flag():
    run = subprocess.run([sys.executable, "-m", "harness.cli", "load", "--users", "many"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--users" in run.stderr and len(run.stderr.strip().splitlines()) == 1
