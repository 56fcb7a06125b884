"""A check under Locust load (``--background-load``, harness/locust/background.py).

The runs are real ``pytest suites/routing --mesh=reference --background-load=20`` subprocesses, as users
run them: one weighted-split check, a real reference mesh, real Locust in processes of its own, short (20
users for the ~2 s the check takes). What ran is read from the YAML report the run writes; Locust
processes are found by the run id every one of them carries (meshruntime/sweep.py). A probe plugin
records whether ``locust`` (or gevent) was ever imported in pytest's own process. The usage errors run
in-process through pytester: nothing starts before the options are checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from meshruntime.sweep import tagged_processes

ROOT = Path(__file__).resolve().parents[3]
RUN_DEADLINE_S = 180
USERS = 20
CHECK = "MeshWeightedSplit50x50"

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
PROBE = '''
import json, os, sys

def pytest_unconfigure(config):
    found = sorted(m for m in sys.modules if m.split(".")[0] in ("locust", "gevent"))
    with open(os.environ["MC_PROBE_OUT"], "w") as f:
        json.dump(found, f)
'''


def _split_check_under_load(tmp_path: Path, *extra: str) -> tuple[dict, list[str], subprocess.CompletedProcess]:
    """Run CHECK with --background-load=USERS; (its report entry, modules the probe saw, the run)."""
    (tmp_path / "mc_no_locust_probe.py").write_text(PROBE)
    out = tmp_path / "reports"
    probe_out = tmp_path / "probe.json"
    env = {**os.environ, "MC_PROBE_OUT": str(probe_out),
           "PYTHONPATH": os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p)}
    run = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "suites" / "routing"), "--mesh=reference",
                          f"--run-test={CHECK}", f"--background-load={USERS}", f"--report-output={out}",
                          "-p", "mc_no_locust_probe", "-p", "no:cacheprovider", "-q", "--no-header", *extra],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_DEADLINE_S)
    report = out / "conformance-reference.yaml"
    assert report.exists(), f"no report (exit {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    (entry,) = [t for t in yaml.safe_load(report.read_text())["tests"] if t["shortName"] == CHECK]
    return entry, json.loads(probe_out.read_text()), run


def _assert_load_ran_and_is_gone(entry: dict, tmp_path: Path) -> dict:
    load = entry["evidence"]["background_load"]
    assert load["users"] == USERS and load["locustfiles"] == ["mesh_routes.py"]
    assert load["requests"] > 0
    assert load["requests"] == load["locust"]["requests"]  # our histogram saw every request Locust made
    p = load["percentiles_us"]
    assert 0 < p["p50"] <= p["p99"] <= p["max"] < 10_000_000
    assert any(n.startswith("under background load: 20 Locust users") for n in entry["evidence"]["notes"])
    # Locust quit on the stop request by itself (the supervisor had nothing to kill) and nothing is left
    assert load["leftover_locust_processes"] == []
    assert tagged_processes(load["run_id"]) == []
    directory = Path(load["files"]["directory"])
    assert directory.is_relative_to(tmp_path / "reports" / "background-load")
    assert json.loads((directory / "percentiles-us.json").read_text())["count"] == load["requests"]
    page = (directory / "meshconform-load.html").read_text()
    assert "Split against the declared weights" in page and page.count("data:image/png;base64,") >= 2
    return load


@pytest.mark.slow
def test_a_split_check_runs_under_locust_load_and_leaves_no_locust_process(tmp_path):
    entry, imported, run = _split_check_under_load(tmp_path)
    assert entry["outcome"] == "PASSED", f"{entry.get('reason')}\n{run.stdout[-3000:]}"
    load = _assert_load_ran_and_is_gone(entry, tmp_path)
    assert load["failures"] == 0
    assert imported == []  # neither locust nor gevent in pytest's process
    html = (tmp_path / "reports" / "conformance-reference.html").read_text()
    assert "Under background load:" in html and f"<td>{load['requests']:,}</td>" in html


@pytest.mark.slow
def test_a_failing_check_under_load_still_stops_locust_and_records_the_load(tmp_path):
    # the reference mesh's "weights" defect turns every split into 76/24: the 50/50 check must fail
    entry, imported, _ = _split_check_under_load(tmp_path, '--mesh-option=defects={"weights": [76, 24]}')
    assert entry["outcome"] == "FAILED" and "split 50/50 deviates" in entry["reason"], entry.get("reason")
    _assert_load_ran_and_is_gone(entry, tmp_path)
    assert imported == []


@pytest.mark.parametrize("value", ["-3", "abc", "1.5", ""])
def test_a_bad_user_count_is_a_usage_error_naming_the_flag(pytester, value):
    pytester.makeini(INI)
    pytester.makepyfile(test_plain="def test_ok():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", f"--background-load={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: meshconform: --background-load *{value!r}*"])


def test_the_ini_twin_and_the_locustfile_are_checked_too(pytester):
    pytester.makepyfile(test_plain="def test_ok():\n    pass\n")
    pytester.makeini(INI + "meshconform_background_load = many\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: meshconform: --background-load wants a whole number *'many'*"])
    result = pytester.runpytest("-p", "no:cacheprovider", "--background-load=5",
                                "--background-load-locustfile=no_such_file.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: meshconform: --background-load-locustfile: cannot read no_such_file.py*"])


def test_off_by_default_the_fixture_is_none_and_starts_nothing(pytester):
    pytester.makeini(INI)
    pytester.makepyfile(test_off='''
import sys

def test_off(background_load):
    assert background_load is None
    assert not any(m.split(".")[0] in ("locust", "gevent") for m in sys.modules)
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()
