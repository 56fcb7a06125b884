"""chaostoolkit-toxiproxy's own functions (every action and probe it has, called as Chaos Toolkit calls
them) against ``meshconform faults serve``; then Chaos Toolkit (the real ``chaos`` CLI) runs
examples/chaostoolkit/latency-between-workloads.json against ``meshconform faults serve`` and a
reference mesh of two workloads: the journal shows the 200 ms on the client -> backend hop
and a steady state met before and after, and the rollbacks leave no proxy and the mesh as it was.
"""

import http.client
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from client_helpers import ROOT, ThreadedHttp, clean_env, connect_error, http_get, round_trip_s

from harness.faults.chaostoolkit import mesh_environment

EXAMPLE = ROOT / "examples" / "chaostoolkit"
MESH_START_TIMEOUT_S = 60.0
CHAOS_TIMEOUT_S = 60.0

pytestmark = pytest.mark.skipif(shutil.which("chaos") is None,
                                reason="no chaos CLI: pip install -e '.[chaos]' (scripts/install.sh)")


@pytest.fixture
def mesh_state(tmp_path):
    """The reference mesh with the example's two workloads (what ``meshconform up --scenario
    examples/chaostoolkit/two-workloads.yaml --state FILE`` runs), and its state file."""
    from meshproxy.runtime import LocalMesh
    from meshscenario import load_scenario

    mesh = LocalMesh(load_scenario(EXAMPLE / "two-workloads.yaml"))
    try:
        mesh.start(timeout=MESH_START_TIMEOUT_S)  # returns once every sidecar has its config
        yield mesh.write_state(tmp_path / "mesh-state.json")
    finally:
        mesh.stop()


@pytest.fixture
def chaostoxi(service, monkeypatch):
    """chaostoxi's modules, with proxy variables removed (it calls requests) and the ``<proxy>_PORT``
    variables it writes into os.environ undone at the end."""
    pytest.importorskip("chaostoxi", reason="chaostoolkit-toxiproxy: pip install -e '.[chaos]'")
    from chaostoxi.proxy import actions as proxy_actions
    from chaostoxi.proxy import probes as proxy_probes
    from chaostoxi.toxic import actions as toxic_actions

    for name, value in clean_env().items():
        monkeypatch.setenv(name, value)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("hop_PORT", "")
    return proxy_actions, proxy_probes, toxic_actions


def test_chaostoxi_actions_and_probes(service, chaostoxi, echo, service_ip):
    proxy_actions, proxy_probes, toxic_actions = chaostoxi
    configuration = {"toxiproxy_url": service.url}
    echo_host, echo_port = echo.address
    assert proxy_actions.create_proxy("hop", echo_host, echo_port, listen_host=service_ip, listen_port=0,
                                      configuration=configuration) is True
    port = configuration["hop_PORT"]  # chaostoxi parses it from the answer's "listen"
    assert port.isdigit() and port != "0"
    listen = f"{service_ip}:{port}"
    assert round_trip_s(listen) < 0.15
    assert proxy_probes.proxy_exist("hop", configuration=configuration) is True
    assert proxy_probes.proxy_exist("nope", configuration=configuration) is False
    assert proxy_probes.get_proxy_attribute("hop", "upstream", configuration=configuration) == echo.hostport

    # disable/enable: POST /proxies/hop {"enabled": false|true}, the answer's "listen" read again
    assert proxy_actions.disable_proxy("hop", configuration=configuration) is True
    assert connect_error(listen) == "ConnectionRefusedError"
    assert proxy_probes.get_proxy_attribute("hop", "enabled", configuration=configuration) is False
    assert proxy_actions.enable_proxy("hop", configuration=configuration) is True
    assert configuration["hop_PORT"] == port
    assert round_trip_s(listen) < 0.15

    # every toxic helper it has, then the list as the service shows it
    c = {"for_proxy": "hop", "configuration": configuration}
    assert toxic_actions.create_latency_toxic(toxic_name="lat", latency=50, jitter=10, **c) is True
    assert toxic_actions.create_bandwith_degradation_toxic(toxic_name="bw", rate=100_000, **c) is True
    assert toxic_actions.create_slow_connection_close_toxic(toxic_name="sc", delay=1, **c) is True
    assert toxic_actions.create_slicer_toxic(toxic_name="sl", average_size=1024, size_variation=10, delay=1, **c)
    assert toxic_actions.create_limiter_toxic(toxic_name="lim", bytes_limit=10_000_000, **c) is True
    assert toxic_actions.create_toxic(toxic_name="up", toxic_type="latency", stream="upstream", toxicity=0.5,
                                      attributes={"latency": 1}, **c) is True
    status, toxics = service.call("GET", "/proxies/hop/toxics")
    assert status == 200
    assert {t["name"]: (t["type"], t["stream"], t["toxicity"], t["attributes"]) for t in toxics} == {
        "lat": ("latency", "downstream", 1.0, {"latency": 50, "jitter": 10}),
        "bw": ("bandwidth", "downstream", 1.0, {"rate": 100_000}),
        "sc": ("slow_close", "downstream", 1.0, {"delay": 1}),
        "sl": ("slicer", "downstream", 1.0, {"average_size": 1024, "size_variation": 10, "delay": 1}),
        "lim": ("limit_data", "downstream", 1.0, {"bytes": 10_000_000}),
        "up": ("latency", "upstream", 0.5, {"latency": 1, "jitter": 0}),
    }
    assert round_trip_s(listen) >= 0.039  # 50 ± 10 ms
    assert toxic_actions.delete_toxic("hop", "lat", configuration=configuration) is True
    assert toxic_actions.delete_toxic("hop", "lat", configuration=configuration) is False  # 404 now
    assert toxic_actions.create_timeout_toxic(toxic_name="to", timeout=0, **c) is True
    assert proxy_actions.reset(configuration=configuration) is True
    assert service.call("GET", "/proxies/hop/toxics") == (200, [])

    proxy_actions.delete_proxy("hop", configuration=configuration)
    assert proxy_probes.proxy_exist("hop", configuration=configuration) is False
    assert connect_error(listen) == "ConnectionRefusedError"


def test_chaostoxi_modify_proxy_moves_the_listener_and_the_upstream(service, chaostoxi, echo, service_ip):
    """modify_proxy sends only what changes: POST /proxies/hop {"listen": ...} or {"upstream": ...}."""
    proxy_actions, proxy_probes, _ = chaostoxi
    configuration = {"toxiproxy_url": service.url}
    assert proxy_actions.create_proxy("hop", *echo.address, listen_host=service_ip, listen_port=0,
                                      configuration=configuration) is True
    old = f"{service_ip}:{configuration['hop_PORT']}"
    assert proxy_actions.modify_proxy("hop", listen_address=f"{service_ip}:0", configuration=configuration) is True
    new = f"{service_ip}:{configuration['hop_PORT']}"
    assert new != old, "a new listen address (port 0) must answer the port it got"
    assert proxy_probes.get_proxy_attribute("hop", "listen", configuration=configuration) == new
    assert connect_error(old) == "ConnectionRefusedError"
    assert round_trip_s(new) < 0.15
    web = ThreadedHttp(service_ip)
    try:
        assert proxy_actions.modify_proxy("hop", upstream_address=web.hostport, configuration=configuration)
        assert proxy_probes.get_proxy_attribute("hop", "upstream", configuration=configuration) == web.hostport
        assert [status for status, _, _ in http_get(new)] == [200], "new connections must go to the new upstream"
    finally:
        web.close()
    proxy_actions.delete_proxy("hop", configuration=configuration)


def call_backend(outbound: str) -> tuple[int, float]:
    """GET / from the client workload's app side (its outbound listener, Host: backend): status, seconds."""
    host, _, port = outbound.rpartition(":")
    start = time.monotonic()
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": "backend"})
        response = conn.getresponse()
        response.read()
        return response.status, time.monotonic() - start
    finally:
        conn.close()


def chaos_run(experiment: Path, service, state: Path, tmp_path: Path,
              exit_code: int = 0) -> tuple[dict, dict[str, str]]:
    """``chaos run`` the experiment (rollbacks always played); its journal and the environment it had.
    ``chaos run`` exits 1 when the experiment deviated."""
    env = clean_env(TOXIPROXY_URL=service.url, MESHCONFORM_STATE=str(state), **mesh_environment(str(state)))
    journal_path = tmp_path / "journal.json"
    done = subprocess.run(
        ["chaos", "--no-version-check", "--log-file", str(tmp_path / "chaostoolkit.log"),
         "--settings", str(tmp_path / "settings.yaml"),
         "run", "--rollback-strategy", "always", "--journal-path", str(journal_path), str(experiment)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=CHAOS_TIMEOUT_S)
    log = (tmp_path / "chaostoolkit.log").read_text() if (tmp_path / "chaostoolkit.log").exists() else ""
    assert done.returncode == exit_code and journal_path.exists(), \
        f"chaos run exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n{log[-4000:]}"
    return json.loads(journal_path.read_text()), env


def assert_rolled_back(journal: dict, service, outbound: str) -> None:
    rollbacks = {r["activity"]["name"]: r for r in journal["rollbacks"]}
    assert sorted(rollbacks) == ["point-backend-callers-back", "remove-backend-hop-proxy", "remove-the-latency"]
    assert all(r["status"] == "succeeded" for r in rollbacks.values()), rollbacks
    assert service.call("GET", "/proxies") == (200, {}), "the rollbacks left a proxy behind"
    # 200 with the proxy gone: the callers are back on backend's own inbound; and no latency is left
    # (through the 200 ms toxic a new connection took >= 0.4 s: the TLS handshake and the answer)
    status, seconds = call_backend(outbound)
    assert status == 200, f"after the rollbacks client -> backend answers {status}"
    assert seconds < 0.35, f"after the rollbacks the hop still takes {seconds:.3f} s"


def test_latency_between_workloads_experiment(service, mesh_state, tmp_path):
    outbound = mesh_environment(str(mesh_state))["MESHCONFORM_CLIENT_V1_0_OUTBOUND"]
    # the README's `eval "$(python3 -m harness.faults.chaostoolkit env --state FILE)"`
    shown = subprocess.run(["bash", "-c", 'eval "$(python3 -m harness.faults.chaostoolkit env --state "$1")" && '
                            'echo "$MESHCONFORM_CLIENT_V1_0_OUTBOUND $MESHCONFORM_BACKEND_V1_0_INBOUND_PORT"',
                            "bash", str(mesh_state)], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert shown.stdout.split() == [outbound, "15006"], (shown.stdout, shown.stderr)
    assert call_backend(outbound)[0] == 200
    journal, env = chaos_run(EXAMPLE / "latency-between-workloads.json", service, mesh_state, tmp_path)
    assert journal["status"] == "completed" and journal["deviated"] is False, journal["status"]

    before, after = journal["steady_states"]["before"], journal["steady_states"]["after"]
    assert before["steady_state_met"] is True and after["steady_state_met"] is True
    assert before["probes"][0]["output"]["status"] == 200 and after["probes"][0]["output"]["status"] == 200

    run = {r["activity"]["name"]: r for r in journal["run"]}
    assert all(r["status"] == "succeeded" for r in run.values()), {n: r["status"] for n, r in run.items()}
    assert run["create-backend-hop-proxy"]["output"] is True
    assert run["add-200ms-latency-to-backend-answers"]["output"] is True
    hop = run["send-backend-traffic-through-the-proxy"]["output"]
    assert hop["workload"] == "backend-v1-0" and hop["address"] != env["MESHCONFORM_BACKEND_V1_0_INBOUND"]
    toxics = run["backend-hop-toxics"]["output"]
    assert toxics["status"] == 200
    # chaoslib decodes a body only when Content-Type is exactly "application/json", as Toxiproxy sends it
    assert toxics["headers"].get("Content-Type") == "application/json", toxics["headers"]
    assert [(t["name"], t["type"], t["attributes"]["latency"]) for t in toxics["body"]] == \
        [("latency_200ms", "latency", 200)]
    # the latency on the wire: a call through the hop takes at least the toxic's 200 ms, the baseline
    # (steady state before) far less
    through = run["client-calls-backend-through-the-latency"]
    assert through["output"]["status"] == 200
    assert through["duration"] >= 0.19, through["duration"]
    assert after["probes"][0]["duration"] >= 0.19, after["probes"][0]["duration"]
    assert before["probes"][0]["duration"] < through["duration"] - 0.1, (before["probes"][0]["duration"],
                                                                          through["duration"])

    assert_rolled_back(journal, service, outbound)


def test_the_steady_state_catches_latency_beyond_its_tolerance(service, mesh_state, tmp_path):
    """The same experiment with 1500 ms: more than the probe's 1 s timeout, so the hypothesis after the
    method fails (the experiment is sensitive to the fault it injects); the rollbacks still heal."""
    experiment = json.loads((EXAMPLE / "latency-between-workloads.json").read_text())
    [toxic] = [a for a in experiment["method"] if a["name"] == "add-200ms-latency-to-backend-answers"]
    toxic["provider"]["arguments"]["latency"] = 1500
    path = tmp_path / "latency-1500ms.json"
    path.write_text(json.dumps(experiment))
    journal, env = chaos_run(path, service, mesh_state, tmp_path, exit_code=1)
    assert journal["deviated"] is True, journal["status"]
    assert journal["steady_states"]["before"]["steady_state_met"] is True
    assert journal["steady_states"]["after"]["steady_state_met"] is False
    assert_rolled_back(journal, service, env["MESHCONFORM_CLIENT_V1_0_OUTBOUND"])
