"""toxiproxy-node-client (npm), unchanged, against ``meshconform faults serve``.

Each test runs one scenario of ``tests/clients/node/scenarios.js`` with ``node``: the script drives the
client, measures the toxic on the wire through this test's echo upstream and prints JSON; the
assertions are here. scripts/install.sh installs the client into tests/clients/node/node_modules
(``npm ci``, pinned by package-lock.json).
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from client_helpers import clean_env

NODE_DIR = Path(__file__).resolve().parent / "node"
SCENARIO_TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="no node on PATH (scripts/install.sh)")


def run(scenario: str, service, echo=None, service_ip=None) -> dict:
    assert (NODE_DIR / "node_modules" / "toxiproxy-node-client").is_dir(), \
        "toxiproxy-node-client is not installed: run scripts/install.sh (npm ci in tests/clients/node)"
    args = {"api": service.url, "listenHost": service_ip or service.host,
            "upstream": echo.hostport if echo else ""}
    done = subprocess.run(["node", "scenarios.js", scenario, json.dumps(args)], cwd=NODE_DIR, env=clean_env(),
                          capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S)
    assert done.stdout.strip(), f"node {scenario} printed nothing (exit {done.returncode}): {done.stderr}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0 and "error" not in result, \
        f"node {scenario} failed (exit {done.returncode}): {result} {done.stderr}"
    return result


def test_version(service):
    version = run("version", service)["version"]
    assert json.loads(version)["version"], version


def test_create_list_get_disable_enable_remove(service, echo, service_ip):
    r = run("lifecycle", service, echo, service_ip)
    created = r["created"]
    assert created["name"] == "echo" and created["upstream"] == echo.hostport and created["enabled"] is True
    host, _, port = created["listen"].rpartition(":")
    assert host == service_ip and int(port) != 0, created["listen"]
    assert r["listed"] == ["echo"]
    assert r["fetched"] == created
    assert r["rttMs"] < 150
    # the client's Proxy.update is POST /proxies/{name} with the whole proxy
    assert r["disabled"]["enabled"] is False
    assert r["whileDisabled"] == "ECONNREFUSED"
    assert r["enabled"]["enabled"] is True and r["enabled"]["listen"] == created["listen"]
    assert r["rttAfterMs"] < 150
    assert r["afterRemove"] == [] and r["afterRemoveConnect"] == "ECONNREFUSED"


def test_latency_added_updated_removed(service, echo):
    r = run("latency", service, echo)
    assert r["baselineMs"] < 150
    assert r["added"] == {"name": "latency_downstream", "type": "latency", "stream": "downstream",
                          "toxicity": 1, "attributes": {"latency": 200, "jitter": 0}}
    assert r["withToxicMs"] >= 190, r
    assert r["fetched"] == r["added"]
    assert r["updated"]["attributes"]["latency"] == 400
    assert r["updatedMs"] >= 380, r
    assert r["removedMs"] < 150, r
    assert r["afterRemove"] and "404" in r["afterRemove"]["message"], r["afterRemove"]


def test_bandwidth(service, echo):
    r = run("bandwidth", service, echo)
    assert r["toxic"]["name"] == "slow_down" and r["toxic"]["attributes"] == {"rate": 400}
    assert r["unlimited"]["ok"] and r["limited"]["ok"]
    # 200 KB at 400 KB/s: about 500 ms
    assert 350 <= r["limited"]["ms"] < 10_000, r
    assert r["unlimited"]["ms"] < r["limited"]["ms"] / 2, r


def test_timeout(service, echo):
    r = run("timeout", service, echo)
    assert r["toxic"]["attributes"] == {"timeout": 500}
    assert r["bytes"] == 0
    assert r["ending"] in ("eof", "reset"), r
    assert 450 <= r["ms"] < 4000, r


def test_reset_peer(service, echo):
    r = run("reset_peer", service, echo)
    assert r["connectError"] is None, r
    assert (r["idleEnding"], r["idleBytes"]) == ("timeout", 0), f"an idle connection was ended: {r}"
    assert r["ending"] == "reset", r
    assert r["bytes"] == 0


def test_slicer(service, echo):
    r = run("slicer", service, echo)
    assert r["toxic"]["attributes"] == {"average_size": 100, "size_variation": 0, "delay": 20000}
    assert r["bytes"] == 2000 and r["same"], r
    assert r["reads"] >= 5, r
    assert r["ms"] >= 250, r


def test_limit_data(service, echo):
    r = run("limit_data", service, echo)
    assert r["bytes"] == 100 and r["prefix"], r
    assert r["ending"] in ("eof", "reset"), r


def test_populate(service, echo):
    r = run("populate", service, echo)
    assert r["names"] == ["one", "two"] and r["listed"] == ["one", "two"]
    assert all(not listen.endswith(":0") for listen in r["listens"]), r
    assert all(ms < 150 for ms in r["rttsMs"]), r


def test_reset(service, echo):
    r = run("reset", service, echo)
    assert r["whileDisabled"] == "ECONNREFUSED"
    assert r["after"]["enabled"] is True
    assert r["rttMs"] < 150, r
    assert r["toxicAfter"] and "404" in r["toxicAfter"]["message"], r


def test_errors_carry_toxiproxys_status_codes(service, echo):
    r = run("errors", service, echo)
    expected = {"duplicateProxy": 409, "unknownProxy": 404, "unknownToxicType": 400, "unknownToxic": 404,
                "missingUpstream": 400}
    for case, status in expected.items():
        error = r[case]
        assert error is not None, f"{case}: the client saw no error"
        assert error["isToxiproxyError"] and f"status code {status}" in error["message"], (case, error)
